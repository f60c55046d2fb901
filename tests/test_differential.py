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


# ----------------------------------------------------------------------------------------------
# The ops of ops_select, ops_reduce, ops_shape and ops_trig


NEW_UNARY = {
    "sin": (ndl.sin, torch.sin, (-3, 3), []),
    "cos": (ndl.cos, torch.cos, (-3, 3), []),
    "clamp": (lambda a: ndl.clamp(a, -1.0, 0.5), lambda a: torch.clamp(a, -1.0, 0.5), (-3, 3),
              [-1.0, 0.5]),
    "clamp_min": (lambda a: ndl.clamp(a, min=0.25), lambda a: torch.clamp(a, min=0.25),
                  (-3, 3), [0.25]),
    "clamp_max": (lambda a: a.clip(max=-0.5), lambda a: torch.clip(a, max=-0.5), (-3, 3),
                  [-0.5]),
    "unsqueeze": (lambda a: ndl.unsqueeze(a, -1) * 2, lambda a: torch.unsqueeze(a, -1) * 2,
                  (-3, 3), []),
    "squeeze": (lambda a: ndl.squeeze(ndl.unsqueeze(a, 0), dim=0) * 2,
                lambda a: torch.squeeze(torch.unsqueeze(a, 0), 0) * 2, (-3, 3), []),
}


@pytest.mark.parametrize("name", sorted(NEW_UNARY))
def test_new_unary_ops(name):
    nfn, tfn, (low, high), kinks = NEW_UNARY[name]

    @EXAMPLES
    @given(unary_case(low, high))
    def run(case):
        dtype, a = case
        compare(name, nfn, tfn, [_away_from(a, kinks)], dtype)

    run()


def test_clamp_on_the_bounds():
    for dtype in ["float32", "float64"]:
        a = np.array([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=dtype)
        compare("clamp_bounds", lambda x: ndl.clamp(x, -0.5, 0.5),
                lambda x: torch.clamp(x, -0.5, 0.5), [a], dtype)
        compare("clamp_bounds", lambda x: ndl.clamp(x, 0.5, -0.5),
                lambda x: torch.clamp(x, 0.5, -0.5), [a], dtype)


def test_where():
    @EXAMPLES
    @given(DTYPES, hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3,
                                                     max_side=4), st.data())
    def run(dtype, shapes, data):
        sc, sa, sb = shapes.input_shapes
        mask = data.draw(hnp.arrays(np.bool_, sc))
        a, b = data.draw(values(sa, dtype)), data.draw(values(sb, dtype))
        compare("where", lambda x, y: ndl.where(mask, x, y),
                lambda x, y: torch.where(torch.tensor(mask), x, y), [a, b], dtype)

    run()


@st.composite
def var_case(draw):
    # Distinct values: std is not differentiable where a group is constant, and there
    # PyTorch's float32 rounding (a non-zero std) decides its gradient.
    dtype, a, axes, keepdims = draw(reduction_case(distinct=True))
    dims = range(a.ndim) if axes is None else np.atleast_1d(np.array(axes) % a.ndim)
    count = int(np.prod([a.shape[i] for i in dims]))
    correction = draw(st.sampled_from([0, 1, 2]).filter(lambda c: c < count))
    return dtype, a, axes, keepdims, correction


@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std(name):
    nfn, tfn = getattr(ndl, name), getattr(torch, name)

    @EXAMPLES
    @given(var_case())
    def run(case):
        dtype, a, axes, keepdims, c = case
        compare(name, lambda x: nfn(x, axes, correction=c, keepdims=keepdims),
                lambda x: tfn(x, _torch_dims(axes, x.ndim), correction=c, keepdim=keepdims),
                [a], dtype)

    run()


def test_min():
    @EXAMPLES
    @given(reduction_case(distinct=True))
    def run(case):
        dtype, a, axes, keepdims = case
        compare("min", lambda x: ndl.min(x, dim=axes, keepdim=keepdims),
                lambda x: torch.amin(x, _torch_dims(axes, x.ndim), keepdim=keepdims), [a], dtype)

    run()


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin(name):
    @EXAMPLES
    @given(unary_case(-2, 2, min_dims=1), st.data())
    def run(case, data):
        dtype, a = case
        a = np.round(a)  # ties: both frameworks return the first index
        axis = data.draw(st.one_of(st.none(), st.integers(-a.ndim, a.ndim - 1)))
        keepdim = data.draw(st.booleans()) if axis is not None else False
        compare(name, lambda x: getattr(ndl, name)(x, dim=axis, keepdim=keepdim),
                lambda x: getattr(torch, name)(x, dim=axis, keepdim=keepdim), [a], dtype,
                grad=False)

    run()


def test_cat():
    @EXAMPLES
    @given(unary_case(min_dims=1), st.data())
    def run(case, data):
        dtype, a = case
        axis = data.draw(st.integers(-a.ndim, a.ndim - 1))
        sizes = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
        parts = [a]
        for k, n in enumerate(sizes):
            shape = list(a.shape)
            shape[axis] = n
            parts.append((np.ones(shape) * (k + 1)).astype(dtype))
        compare("cat", lambda *xs: ndl.cat(list(xs), dim=axis) ** 2,
                lambda *xs: torch.cat(xs, dim=axis) ** 2, parts, dtype)

    run()


@st.composite
def gather_case(draw):
    dtype, a = draw(unary_case(min_dims=1))
    axis = draw(st.integers(-a.ndim, a.ndim - 1))
    ax = axis % a.ndim
    ishape = tuple(draw(st.integers(1, 4)) if d == ax else draw(st.integers(1, n))
                   for d, n in enumerate(a.shape))
    index = draw(hnp.arrays(np.int64, ishape, elements=st.integers(0, a.shape[ax] - 1)))
    return dtype, a, axis, index


def test_gather_scatter_add():
    @EXAMPLES
    @given(gather_case())
    def run(case):
        dtype, a, axis, index = case
        compare("gather", lambda x: ndl.gather(x, axis, index),
                lambda x: torch.gather(x, axis, torch.tensor(index)), [a], dtype)
        src = np.linspace(-1, 1, index.size).reshape(index.shape).astype(dtype)
        compare("scatter_add", lambda x, s: ndl.scatter_add(x, axis, index, s),
                lambda x, s: torch.scatter_add(x, axis, torch.tensor(index), s), [a, src],
                dtype)

    run()


def test_take_along_axis():
    @EXAMPLES
    @given(unary_case(min_dims=1), st.data())
    def run(case, data):
        dtype, a = case
        axis = data.draw(st.integers(-a.ndim, a.ndim - 1))
        ax = axis % a.ndim
        ishape = tuple(data.draw(st.integers(1, 4)) if d == ax else
                       data.draw(st.sampled_from([1, n])) for d, n in enumerate(a.shape))
        index = data.draw(hnp.arrays(np.int64, ishape,
                                     elements=st.integers(0, a.shape[ax] - 1)))
        compare("take_along_axis", lambda x: ndl.take_along_axis(x, index, axis),
                lambda x: torch.take_along_dim(x, torch.tensor(index), axis), [a], dtype)

    run()


def test_embedding():
    @EXAMPLES
    @given(DTYPES, st.integers(1, 6), st.integers(1, 4), st.data())
    def run(dtype, vocab, dim, data):
        ids = data.draw(hnp.arrays(np.int64, (3, 2), elements=st.integers(0, vocab - 1)))
        weight = data.draw(values((vocab, dim), dtype))

        def needle_embedding(w):
            emb = ndl.nn.Embedding(vocab, dim, dtype=dtype)
            emb.weight = w  # the compared input itself, so its .grad is checked
            return emb(ndl.Tensor(ids, requires_grad=False))

        compare("embedding", needle_embedding,
                lambda w: torch.nn.functional.embedding(torch.tensor(ids), w), [weight], dtype)

    run()
