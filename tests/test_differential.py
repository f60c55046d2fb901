"""Differential fuzzing: needle's forward values and gradients against PyTorch.

Hypothesis draws broadcast-compatible shapes, a dtype (float32/float64) and values for
every op; PyTorch is the oracle. Runs only where torch is installed
(``make test-oracle`` installs torch==2.13.0 into the test environment).
"""

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import needle as ndl

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.oracle

EXAMPLES = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
COUNTS: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    yield
    line = "examples compared with PyTorch, per op: " + ", ".join(
        f"{name} {n}" for name, n in sorted(COUNTS.items())) + f"; total {sum(COUNTS.values())}"
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + line)


DTYPES = st.sampled_from(["float32", "float64"])


def values(shape, dtype, low=-3.0, high=3.0):
    return hnp.arrays(np.dtype(dtype), shape,
                      elements=st.floats(low, high, width=32 if dtype == "float32" else 64))


def tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-9, atol=1e-10)


def compare(name, needle_fn, torch_fn, arrays, dtype, grad=True):
    """Run both frameworks on the same arrays; compare the output and every input gradient."""
    COUNTS[name] += 1
    nts = [ndl.Tensor(a, dtype=dtype) for a in arrays]
    tts = [torch.tensor(a, requires_grad=grad) for a in arrays]
    out = needle_fn(*nts)
    ref = torch_fn(*tts)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), **tol(dtype),
                               err_msg=f"{name}: forward")
    if not grad:
        return
    seed = np.random.default_rng(0).standard_normal(ref.shape).astype(dtype)
    out.backward(ndl.Tensor(seed, dtype=dtype, requires_grad=False))
    ref.backward(torch.tensor(seed))
    for i, (n, t) in enumerate(zip(nts, tts)):
        np.testing.assert_allclose(n.grad.numpy(), t.grad.numpy(), **tol(dtype),
                                   err_msg=f"{name}: gradient of input {i}")


@st.composite
def binary_case(draw, low=-3.0, high=3.0):
    dtype = draw(DTYPES)
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                    max_side=4))
    a = draw(values(shapes.input_shapes[0], dtype, low, high))
    b = draw(values(shapes.input_shapes[1], dtype, low, high))
    return dtype, a, b


@st.composite
def unary_case(draw, low=-3.0, high=3.0, min_dims=0):
    dtype = draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=1, max_side=4))
    return dtype, draw(values(shape, dtype, low, high))


def _away_from(x, points, gap=0.05):
    """Nudge values off non-differentiable points so finite comparisons are meaningful."""
    x = x.copy()
    for p in points:
        near = np.abs(x - p) < gap
        x[near] = p + gap * 2
    return x


BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, (-3, 3)),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, (-3, 3)),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, (-3, 3)),
    "div": (lambda a, b: a / b, lambda a, b: a / b, (0.5, 3)),
    "power": (ndl.power, torch.pow, (0.5, 2)),
    "maximum": (ndl.maximum, torch.maximum, (-3, 3)),
    "minimum": (ndl.minimum, torch.minimum, (-3, 3)),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops(name):
    nfn, tfn, (low, high) = BINARY[name]

    @EXAMPLES
    @given(binary_case(low, high))
    def run(case):
        dtype, a, b = case
        compare(name, nfn, tfn, [a, b], dtype)

    run()


UNARY = {
    "negate": (ndl.negate, torch.neg, (-3, 3), []),
    "exp": (ndl.exp, torch.exp, (-3, 3), []),
    "log": (ndl.log, torch.log, (0.25, 3), []),
    "sqrt": (ndl.sqrt, torch.sqrt, (0.25, 3), []),
    "tanh": (ndl.tanh, torch.tanh, (-3, 3), []),
    "sigmoid": (ndl.sigmoid, torch.sigmoid, (-3, 3), []),
    "relu": (ndl.relu, torch.relu, (-3, 3), [0.0]),
    "abs": (ndl.abs, torch.abs, (-3, 3), [0.0]),
    "add_scalar": (lambda a: ndl.add_scalar(a, 1.5), lambda a: a + 1.5, (-3, 3), []),
    "mul_scalar": (lambda a: ndl.mul_scalar(a, -2.5), lambda a: a * -2.5, (-3, 3), []),
    "divide_scalar": (lambda a: ndl.divide_scalar(a, 4.0), lambda a: a / 4.0, (-3, 3), []),
    "power_scalar": (lambda a: ndl.power_scalar(a, 3), lambda a: a**3, (-3, 3), []),
    "power_scalar_frac": (lambda a: ndl.power_scalar(a, -1.5), lambda a: a**-1.5,
                          (0.375, 3), []),
    "rsub": (lambda a: 2.0 - a, lambda a: 2.0 - a, (-3, 3), []),
    "rdiv": (lambda a: 2.0 / a, lambda a: 2.0 / a, (0.5, 3), []),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops(name):
    nfn, tfn, (low, high), kinks = UNARY[name]

    @EXAMPLES
    @given(unary_case(low, high))
    def run(case):
        dtype, a = case
        compare(name, nfn, tfn, [_away_from(a, kinks)], dtype)

    run()


@st.composite
def reduction_case(draw, low=-3.0, high=3.0, distinct=False):
    dtype, a = draw(unary_case(low, high, min_dims=1))
    if distinct:
        # max: distinct values, so the arg-max is unique in both frameworks.
        a = (np.argsort(np.argsort(a.reshape(-1))).reshape(a.shape) * 0.37).astype(dtype)
    ndim = a.ndim
    axes = draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1),
                          st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                                   unique=True).map(tuple)))
    keepdims = draw(st.booleans())
    return dtype, a, axes, keepdims


def _torch_dims(axes, ndim):
    return tuple(range(ndim)) if axes is None else axes


REDUCTIONS = {
    "summation": (lambda a, ax, kd: ndl.summation(a, ax, keepdims=kd),
                  lambda a, ax, kd: torch.sum(a, _torch_dims(ax, a.ndim), keepdim=kd), False),
    "mean": (lambda a, ax, kd: ndl.mean(a, ax, keepdims=kd),
             lambda a, ax, kd: torch.mean(a, _torch_dims(ax, a.ndim), keepdim=kd), False),
    "max": (lambda a, ax, kd: ndl.max(a, ax, keepdims=kd),
            lambda a, ax, kd: torch.amax(a, _torch_dims(ax, a.ndim), keepdim=kd), True),
    "logsumexp": (lambda a, ax, kd: ndl.logsumexp(a, ax),
                  lambda a, ax, kd: torch.logsumexp(a, _torch_dims(ax, a.ndim)), False),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions(name):
    nfn, tfn, distinct = REDUCTIONS[name]

    @EXAMPLES
    @given(reduction_case(distinct=distinct))
    def run(case):
        dtype, a, axes, keepdims = case
        compare(name, lambda x: nfn(x, axes, keepdims), lambda x: tfn(x, axes, keepdims),
                [a], dtype)

    run()


@pytest.mark.parametrize("name", ["softmax", "logsoftmax"])
def test_softmax_family(name):
    nfn = {"softmax": ndl.softmax, "logsoftmax": ndl.logsoftmax}[name]
    tfn = {"softmax": torch.softmax, "logsoftmax": torch.log_softmax}[name]

    @EXAMPLES
    @given(unary_case(-10, 10, min_dims=1))
    def run(case):
        dtype, a = case
        compare(name, lambda x: nfn(x), lambda x: tfn(x, -1), [a], dtype)

    run()


@st.composite
def matmul_case(draw):
    dtype = draw(DTYPES)
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2,
                                                   max_side=3))
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    # 1-D operands too (numpy's and PyTorch's vector rules): a vector has no batch dims.
    vectors = draw(st.sampled_from(["", "", "left", "right", "both"]))
    a_shape = (k,) if vectors in ("left", "both") else batch.input_shapes[0] + (m, k)
    b_shape = (k,) if vectors in ("right", "both") else batch.input_shapes[1] + (k, n)
    a = draw(values(a_shape, dtype))
    b = draw(values(b_shape, dtype))
    return dtype, a, b


def test_matmul():
    @EXAMPLES
    @given(matmul_case())
    def run(case):
        dtype, a, b = case
        compare("matmul", ndl.matmul, torch.matmul, [a, b], dtype)

    run()


@st.composite
def shape_op_case(draw):
    dtype, a = draw(unary_case(min_dims=2))
    ndim = a.ndim
    perm = tuple(draw(st.permutations(range(ndim))))
    i, j = draw(st.integers(0, ndim - 1)), draw(st.integers(0, ndim - 1))
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    return dtype, a, perm, (i, j), tuple(lead)


def test_shape_ops():
    @EXAMPLES
    @given(shape_op_case())
    def run(case):
        dtype, a, perm, (i, j), lead = case
        compare("permute", lambda x: ndl.permute(x, perm), lambda x: x.permute(perm), [a],
                dtype)
        compare("transpose", lambda x: ndl.transpose(x, (i, j)),
                lambda x: torch.swapaxes(x, i, j), [a], dtype)
        compare("reshape", lambda x: ndl.reshape(x, (-1,)), lambda x: x.reshape(-1), [a],
                dtype)
        target = lead + a.shape
        compare("broadcast_to", lambda x: ndl.broadcast_to(x, target),
                lambda x: torch.broadcast_to(x, target), [a], dtype)
        axes = tuple(sorted({i, j}))
        compare("flip", lambda x: ndl.flip(x, axes), lambda x: torch.flip(x, axes), [a],
                dtype)
        pads = [(i % 2, j % 3) for _ in range(a.ndim)]
        torch_pads = [p for lo_hi in reversed(pads) for p in lo_hi]
        compare("pad", lambda x: ndl.pad(x, pads),
                lambda x: torch.nn.functional.pad(x, torch_pads), [a], dtype)
        compare("getitem", lambda x: x[1:, ::2], lambda x: x[1:, ::2], [a], dtype)

    run()


def test_stack_split():
    @EXAMPLES
    @given(unary_case(min_dims=1), st.integers(2, 3), st.data())
    def run(case, n, data):
        dtype, a = case
        axis = data.draw(st.integers(-a.ndim - 1, a.ndim))
        arrays = [a * (k + 1) for k in range(n)]
        compare("stack", lambda *xs: ndl.stack(list(xs), axis),
                lambda *xs: torch.stack(xs, axis), arrays, dtype)
        sp_axis = data.draw(st.integers(0, a.ndim - 1))
        compare("split", lambda x: ndl.split(x, sp_axis)[0] * 2 + ndl.split(x, sp_axis)[-1],
                lambda x: torch.unbind(x, sp_axis)[0] * 2 + torch.unbind(x, sp_axis)[-1],
                [a], dtype)

    run()


@st.composite
def conv_case(draw):
    dtype = draw(DTYPES)
    n, c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, k - 2 * padding), 7))
    w = draw(st.integers(max(1, k - 2 * padding), 7))
    x = draw(values((n, h, w, c_in), dtype))
    wt = draw(values((k, k, c_in, c_out), dtype))
    return dtype, x, wt, stride, padding


def test_conv():
    @EXAMPLES
    @given(conv_case())
    def run(case):
        dtype, x, wt, stride, padding = case

        def torch_conv(a, b):
            weight = b.permute(3, 2, 0, 1).contiguous()
            out = torch.nn.functional.conv2d(a.permute(0, 3, 1, 2), weight, stride=stride,
                                             padding=padding)
            return out.permute(0, 2, 3, 1)

        compare("conv", lambda a, b: ndl.conv(a, b, stride=stride, padding=padding),
                torch_conv, [x, wt], dtype)

    run()


COMPARISONS = {
    "greater": (ndl.greater, torch.gt), "greater_equal": (ndl.greater_equal, torch.ge),
    "less": (ndl.less, torch.lt), "less_equal": (ndl.less_equal, torch.le),
    "equal": (ndl.equal, torch.eq), "not_equal": (ndl.not_equal, torch.ne),
}


@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_comparisons(name):
    nfn, tfn = COMPARISONS[name]

    @EXAMPLES
    @given(binary_case(-2, 2))
    def run(case):
        dtype, a, b = case
        a, b = np.round(a), np.round(b)  # make ties likely
        compare(name, nfn, lambda x, y: tfn(x, y).to(x.dtype), [a, b], dtype, grad=False)

    run()
