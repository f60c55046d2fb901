"""The dtype rule (README "Backends and dtypes") and quiet floating-point errors.

Rule: tensor–tensor ops promote (float32 with float64 gives float64; an integer or bool
tensor with a float tensor gives that float dtype); tensor–scalar ops keep the tensor's
dtype, for Python numbers, numpy scalars of any dtype and 0-d arrays alike; every input's
gradient has that input's dtype. Checked for every binary and multi-input op, eager,
lazy and graph mode, first and second order.

Floating-point errors: no numpy RuntimeWarning leaves an op, forward or backward; results
are NaN/Inf silently and the user's numpy error state is never touched.

This file runs on the default backend; ``test_rule_holds_on_numpy_backend`` re-runs it
with NEEDLE_BACKEND=np (where integer and bool tensors exist).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import needle as ndl
from needle import autograd
from needle import graph as ad
from needle.autograd import Tensor, TensorOp
from needle.errors import DTypeError, GraphError
from needle.gradcheck import gradcheck, gradgradcheck

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
DTYPE_PAIRS = [(F32, F64), (F64, F32), (F32, F32), (F64, F64)]


def _t(values, dtype, requires_grad=True) -> Tensor:
    return ndl.Tensor(np.asarray(values, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def _values(shape, seed, kind="real") -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "pos":
        return rng.uniform(0.5, 2.0, shape)
    return rng.uniform(-2.0, 2.0, shape)


def _tol(*dtypes) -> dict:
    return {"rtol": 1e-4, "atol": 1e-5} if F32 in dtypes else {"rtol": 1e-10, "atol": 1e-12}


def _as_list(out) -> list:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _loss(out) -> Tensor:
    """A scalar from an op's output (a tensor or the elements of a TensorTuple)."""
    if isinstance(out, autograd.TensorTuple):
        parts = [ndl.ops.TupleGetItem(i)(out, fold_const=False) for i in range(len(out))]
        total = parts[0].sum()
        for p in parts[1:]:
            total = total + p.sum()
        return total
    return out.sum()


# ----------------------------------------------------------------------------------------------
# Every binary and multi-input op: (name, input shapes, value kinds, fn, numpy reference or None)


def _np_conv(x, w, padding=1):
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    kh, kw = w.shape[:2]
    ho, wo = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    out = np.zeros((x.shape[0], ho, wo, w.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, i:i + ho, j:j + wo, :] @ w[i, j]
    return out


def _np_layernorm(h):
    mu = h.mean(-1, keepdims=True)
    return (h - mu) / np.sqrt(((h - mu) ** 2).mean(-1, keepdims=True) + 1e-5)


def _np_softmax(h):
    e = np.exp(h - h.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


MULTI_INPUT_OPS = [
    ("add", [(2, 3), (3,)], "rr", lambda a, b: a + b, lambda a, b: a + b),
    ("sub", [(2, 3), (3,)], "rr", lambda a, b: a - b, lambda a, b: a - b),
    ("mul", [(2, 3), (3,)], "rr", lambda a, b: a * b, lambda a, b: a * b),
    ("div", [(2, 3), (3,)], "rp", lambda a, b: a / b, lambda a, b: a / b),
    ("pow", [(2, 3), (2, 3)], "pr", lambda a, b: a ** b, lambda a, b: a ** b),
    ("maximum", [(2, 3), (2, 3)], "rr", ndl.ops.maximum, np.maximum),
    ("minimum", [(2, 3), (2, 3)], "rr", ndl.ops.minimum, np.minimum),
    ("greater", [(2, 3), (3,)], "rr", lambda a, b: a > b, lambda a, b: (a > b) * 1.0),
    ("greater_equal", [(2, 3), (3,)], "rr", lambda a, b: a >= b, lambda a, b: (a >= b) * 1.0),
    ("less", [(2, 3), (3,)], "rr", lambda a, b: a < b, lambda a, b: (a < b) * 1.0),
    ("less_equal", [(2, 3), (3,)], "rr", lambda a, b: a <= b, lambda a, b: (a <= b) * 1.0),
    ("equal", [(2, 3), (2, 3)], "rr", ndl.ops.equal, lambda a, b: (a == b) * 1.0),
    ("not_equal", [(2, 3), (2, 3)], "rr", ndl.ops.not_equal, lambda a, b: (a != b) * 1.0),
    ("matmul", [(2, 3), (3, 4)], "rr", lambda a, b: a @ b, lambda a, b: a @ b),
    ("batched matmul", [(2, 2, 3), (3, 4)], "rr", ndl.ops.matmul, lambda a, b: a @ b),
    ("stack", [(2, 3), (2, 3)], "rr", lambda a, b: ndl.ops.stack([a, b], 1),
     lambda a, b: np.stack([a, b], 1)),
    ("stack of three", [(3,), (3,), (3,)], "rrr", lambda a, b, c: ndl.ops.stack([a, b, c], 0),
     lambda a, b, c: np.stack([a, b, c])),
    ("conv", [(1, 4, 4, 2), (3, 3, 2, 3)], "rr", lambda x, w: ndl.ops.conv(x, w, 1, 1),
     _np_conv),
    ("matmul_layernorm", [(3, 4), (4, 5)], "rr", lambda a, b: ndl.matmul_layernorm(a, b, 5),
     lambda a, b: _np_layernorm(a @ b)),
    ("matmul_softmax", [(3, 4), (4, 5)], "rr", ndl.matmul_softmax,
     lambda a, b: _np_softmax(a @ b)),
    ("make_tuple", [(2, 3), (3,)], "rr", ndl.ops.make_tuple, None),
    ("expand_as (b lends its shape)", [(1, 3), (2, 3)], "rr", ndl.ops.ops_graph.expand_as,
     lambda a, b: np.broadcast_to(a, b.shape)),
]
# expand_as's output has a's dtype: b only lends its shape (it is not combined with a).
SHAPE_ONLY_SECOND_INPUT = {"expand_as (b lends its shape)"}
OP_IDS = [case[0] for case in MULTI_INPUT_OPS]


def _inputs(shapes, kinds, dtypes, seed=0):
    vals = [_values(s, seed + i, "pos" if k == "p" else "real")
            for i, (s, k) in enumerate(zip(shapes, kinds))]
    return vals, [_t(v, d) for v, d in zip(vals, dtypes)]


def _dtype_list(pair, n):
    """n dtypes starting with ``pair`` (the third input of a 3-input op repeats the first)."""
    return [pair[i % 2] for i in range(n)]


@pytest.mark.parametrize("pair", DTYPE_PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")
@pytest.mark.parametrize("name, shapes, kinds, fn, ref", MULTI_INPUT_OPS, ids=OP_IDS)
def test_tensor_tensor_ops_promote_and_grads_keep_input_dtypes(name, shapes, kinds, fn, ref,
                                                               pair):
    dtypes = _dtype_list(pair, len(shapes))
    vals, xs = _inputs(shapes, kinds, dtypes)
    out = fn(*xs)
    promoted = np.result_type(*dtypes)
    expected_out = dtypes[0] if name in SHAPE_ONLY_SECOND_INPUT else promoted
    if isinstance(out, autograd.TensorTuple):
        assert [t.dtype for t in out.tuple()] == dtypes  # a tuple keeps each element's dtype
    else:
        assert out.dtype == expected_out, f"{name}: {dtypes} gave {out.dtype}"
        if ref is not None:
            np.testing.assert_allclose(out.numpy(), ref(*vals), **_tol(*dtypes))
    _loss(out).backward()
    for k, (x, d) in enumerate(zip(xs, dtypes)):
        if k == 1 and name in SHAPE_ONLY_SECOND_INPUT:
            assert x.grad is None
            continue
        assert x.grad is not None
        assert x.grad.dtype == d, f"{name}: the {d} input got a {x.grad.dtype} gradient"
        assert x.grad.shape == x.shape


@pytest.mark.parametrize("name, shapes, kinds, fn, ref", MULTI_INPUT_OPS, ids=OP_IDS)
def test_mixed_dtype_gradients_equal_float64_gradients(name, shapes, kinds, fn, ref):
    """The cast changes dtypes only: values match the all-float64 computation (whose
    gradients the per-op test files check against finite differences)."""
    vals, mixed = _inputs(shapes, kinds, _dtype_list((F32, F64), len(shapes)))
    _, wide = _inputs(shapes, kinds, [F64] * len(shapes))
    _loss(fn(*mixed)).backward()
    _loss(fn(*wide)).backward()
    for m, w in zip(mixed, wide):
        if w.grad is None:  # expand_as's shape-only input
            assert m.grad is None
            continue
        np.testing.assert_allclose(m.grad.numpy(), w.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_stack_and_conv_gave_float64_grads_to_float32_inputs_before():
    """The two cases the issue names: stack([f32, f64]) and conv(f32 x, f64 w)."""
    a, b = _t(_values((2, 3), 0), F32), _t(_values((2, 3), 1), F64)
    ndl.ops.stack([a, b], 0).sum().backward()
    assert (a.grad.dtype, b.grad.dtype) == (F32, F64)
    x, w = _t(_values((1, 5, 5, 2), 2), F32), _t(_values((3, 3, 2, 4), 3), F64)
    ndl.ops.conv(x, w, 2, 1).sum().backward()
    assert (x.grad.dtype, w.grad.dtype) == (F32, F64)


@pytest.mark.parametrize("pair", [(F32, F64), (F64, F32)], ids=["f32-f64", "f64-f32"])
def test_reductions_and_unary_ops_after_promotion(pair):
    """A promoted result flows on through one-input ops (trivially dtype-preserving)."""
    a, b = _t(_values((3, 4), 0), pair[0]), _t(_values((3, 4), 1), pair[1])
    h = a * b
    outs = [ndl.ops.logsumexp(h, 1), ndl.ops.logsoftmax(h), ndl.ops.softmax(h), h.max(1),
            ndl.exp(h).mean(), ndl.tanh(h).sum(0), ndl.ops.ops_graph.layernorm(h, 4)]
    total = outs[0].sum()
    for o in outs:
        assert o.dtype == F64
        total = total + o.sum()
    total.backward()
    assert (a.grad.dtype, b.grad.dtype) == pair


# ----------------------------------------------------------------------------------------------
# Tensor–scalar: numpy scalars and 0-d arrays behave like Python numbers

SCALARS = [2, 2.0, np.float64(2.0), np.float32(2.0), np.float16(2.0), np.int64(2), np.int8(2),
           np.array(2.0), np.array(2.0, dtype=np.float64), np.array(2), True]
SCALAR_IDS = ["int", "float", "np.float64", "np.float32", "np.float16", "np.int64", "np.int8",
              "0-d array", "0-d float64 array", "0-d int array", "bool"]

SCALAR_OPS = [
    ("x + s", lambda x, s: x + s, lambda x, s: x + s),
    ("s + x", lambda x, s: s + x, lambda x, s: s + x),
    ("x - s", lambda x, s: x - s, lambda x, s: x - s),
    ("s - x", lambda x, s: s - x, lambda x, s: s - x),
    ("x * s", lambda x, s: x * s, lambda x, s: x * s),
    ("s * x", lambda x, s: s * x, lambda x, s: s * x),
    ("x / s", lambda x, s: x / s, lambda x, s: x / s),
    ("s / x", lambda x, s: s / x, lambda x, s: s / x),
    ("x ** s", lambda x, s: x ** s, lambda x, s: x ** s),
    ("s ** x", lambda x, s: s ** x, lambda x, s: s ** x),
    ("add_scalar", ndl.ops.add_scalar, lambda x, s: x + s),
    ("mul_scalar", ndl.ops.mul_scalar, lambda x, s: x * s),
    ("divide_scalar", ndl.ops.divide_scalar, lambda x, s: x / s),
    ("power_scalar", ndl.ops.power_scalar, lambda x, s: x ** s),
    ("x > s", lambda x, s: x > s, lambda x, s: (x > s) * 1.0),
    ("x <= s", lambda x, s: x <= s, lambda x, s: (x <= s) * 1.0),
    ("greater_equal", ndl.ops.greater_equal, lambda x, s: (x >= s) * 1.0),
    ("maximum via relu(x - s) + s", lambda x, s: ndl.relu(x - s) + s, np.maximum),
]


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("s", SCALARS, ids=SCALAR_IDS)
@pytest.mark.parametrize("name, fn, ref", SCALAR_OPS, ids=[c[0] for c in SCALAR_OPS])
def test_tensor_scalar_ops_keep_the_tensor_dtype(name, fn, ref, s, dtype):
    xv = _values((2, 3), 0, "pos")
    x = _t(xv, dtype)
    y = fn(x, s)
    assert y.dtype == dtype, f"{name} with {type(s).__name__}: {dtype} became {y.dtype}"
    np.testing.assert_allclose(y.numpy(), ref(xv, float(s)), rtol=1e-5)
    y.sum().backward()
    assert x.grad.dtype == dtype


def test_the_issue_examples_stay_float32():
    x = _t(_values((3,), 0, "pos"), F32)
    for y in (x / np.sqrt(4.0), x * np.float64(2), np.float64(2) + x):
        assert y.dtype == F32
        y.sum().backward()
        assert x.grad.dtype == F32


def test_attention_scaling_by_numpy_sqrt_stays_float32():
    """nn.MultiHeadAttention-style ``logits / np.sqrt(d)`` (numpy.float64) keeps float32."""
    q = _t(_values((2, 3, 4), 0), F32)
    logits = (q @ ndl.ops.transpose(q)) / np.sqrt(4)
    assert logits.dtype == F32
    ndl.ops.softmax(logits).sum().backward()
    assert q.grad.dtype == F32


@pytest.mark.parametrize("fn", [ndl.ops.divide_scalar, ndl.ops.mul_scalar, ndl.ops.add_scalar,
                                ndl.ops.power_scalar], ids=lambda f: f.__name__)
def test_one_element_array_scalars_keep_working(fn):
    """hw1 passes a shape-(1,) numpy array as the scalar of DivScalar."""
    xv = _values((2, 2), 0, "pos")
    x = _t(xv, F32)
    s = np.array([2.0])
    y = fn(x, s)
    assert y.dtype == F32 and y.shape == (2, 2)
    expected = {"divide_scalar": xv / 2, "mul_scalar": xv * 2, "add_scalar": xv + 2,
                "power_scalar": xv ** 2}[fn.__name__]
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)


def test_scalar_ops_store_python_numbers():
    op = ndl.ops.DivScalar(np.float64(4.0))
    assert type(op.scalar) is float and op.scalar == 4.0
    assert type(ndl.ops.MulScalar(np.int32(3)).scalar) is int
    assert type(ndl.ops.AddScalar(np.array(1.5)).scalar) is float
    assert ndl.ops.AddScalar(np.bool_(True)).scalar == 1


@pytest.mark.parametrize("bad", [np.array([1.0, 2.0]), "2", None, 1 + 2j],
                         ids=["two elements", "str", "None", "complex"])
def test_non_scalars_are_rejected_as_scalars(bad):
    with pytest.raises(DTypeError, match="divide_scalar: expected a real scalar"):
        ndl.ops.divide_scalar(_t([1.0], F32), bad)


def test_array_operand_takes_the_tensor_dtype():
    x = _t(_values((2, 3), 0), F32)
    y = x + np.ones(3, dtype=np.float64)
    assert y.dtype == F32
    y.sum().backward()
    assert x.grad.dtype == F32


# ----------------------------------------------------------------------------------------------
# Integer and bool tensors (the numpy backend only; nd arrays are float32 or float64)


NP_ONLY = pytest.mark.skipif(ndl.BACKEND != "np", reason="integer and bool tensors exist only "
                             "on the numpy backend (test_rule_holds_on_numpy_backend runs them)")


@pytest.mark.skipif(ndl.BACKEND != "nd", reason="nd-backend behaviour")
def test_integer_data_on_the_nd_backend_becomes_float32():
    assert ndl.Tensor(np.array([1, 2, 3])).dtype == F32
    with pytest.raises(DTypeError, match="int64"):
        ndl.Tensor(np.array([1, 2]), dtype="int64")


INT_FLOAT_OPS = [
    ("add", lambda i, f: i + f), ("radd", lambda i, f: f + i), ("sub", lambda i, f: i - f),
    ("mul", lambda i, f: i * f), ("div", lambda i, f: f / (i + 3)),
    ("pow", lambda i, f: (f * f + 1) ** i), ("maximum", ndl.ops.maximum),
    ("greater", lambda i, f: i > f), ("matmul", lambda i, f: i @ ndl.ops.transpose(f)),
    ("stack", lambda i, f: ndl.ops.stack([i, f], 0)),
]


@NP_ONLY
@pytest.mark.parametrize("int_dtype", ["int64", "int32", "bool"])
@pytest.mark.parametrize("float_dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("name, fn", INT_FLOAT_OPS, ids=[c[0] for c in INT_FLOAT_OPS])
def test_integer_tensor_with_float_tensor_gives_the_float_dtype(name, fn, float_dtype,
                                                                int_dtype):
    iv = np.array([[1, 0, 2], [3, 1, 0]]).astype(int_dtype)
    fv = _values((2, 3), 0)
    i, f = ndl.Tensor(iv), _t(fv, float_dtype)
    out = fn(i, f)
    assert out.dtype == float_dtype
    wi, wf = _t(iv.astype(np.float64), F64), _t(fv, F64)
    want = fn(wi, wf)
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    out.sum().backward()
    want.sum().backward()
    assert f.grad.dtype == float_dtype
    np.testing.assert_allclose(f.grad.numpy(), wf.grad.numpy(), rtol=1e-5, atol=1e-6)
    # The integer input's gradient is not cast to its dtype (it would be truncated): it
    # keeps the float dtype it was computed in (comparisons give zeros_like(i)).
    if name != "greater":
        assert i.grad.dtype == float_dtype
    np.testing.assert_allclose(i.grad.numpy(), wi.grad.numpy(), rtol=1e-5, atol=1e-6)


@NP_ONLY
def test_integer_tensors_with_scalars_and_integers_follow_numpy():
    i = ndl.Tensor(np.array([1, 2, 3]))
    assert (i + 2).dtype == np.int64
    assert (i * np.int8(2)).dtype == np.int64
    assert (i * 0.5).dtype == F64 and np.allclose((i * 0.5).numpy(), [0.5, 1.0, 1.5])
    assert (i / ndl.Tensor(np.array([2, 2, 2]))).dtype == F64
    assert (ndl.Tensor(np.array([1, 2], np.int32)) + ndl.Tensor(np.array([1, 2]))).dtype \
        == np.int64
    # A float array or a float base is not truncated to the integer dtype.
    assert np.allclose((i + np.array([0.5, 0.5, 0.5])).numpy(), [1.5, 2.5, 3.5])
    assert np.allclose((2.5 ** i).numpy(), 2.5 ** np.array([1, 2, 3]))


# ----------------------------------------------------------------------------------------------
# Higher order, graph mode, lazy mode


def test_second_order_through_the_cast():
    xv, wv = _values((3,), 0), _values((3,), 1)
    x, w = _t(xv, F32), _t(wv, F64)
    (x * x * w).sum().backward()
    gx = x.grad
    assert gx.dtype == F32
    np.testing.assert_allclose(gx.numpy(), 2 * xv * wv, rtol=1e-5)
    gx.sum().backward()  # d/dx sum(2 x w) = 2 w (float32), d/dw = 2 x (float64)
    assert (x.grad.dtype, w.grad.dtype) == (F32, F64)
    np.testing.assert_allclose(x.grad.numpy(), 2 * wv, rtol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), 2 * x.numpy().astype(np.float64), rtol=1e-12)


@pytest.mark.parametrize("ref_dtype", [F64, F32], ids=["to float64", "to float32"])
def test_cast_like_gradcheck_and_gradgradcheck(ref_dtype):
    """CastLike is an op like any other: differentiable, first and second order (a real
    cast to float32 rounds, hence the looser tolerances there)."""
    ref = _t([0.0], ref_dtype, requires_grad=False)

    def fn(a, b):
        return ndl.ops.cast_like(a * b * a, ref) * ndl.ops.cast_like(b, ref)

    a, b = _t(_values((4,), 0), F64), _t(_values((4,), 1), F64)
    assert fn(a, b).dtype == ref_dtype
    tol = {} if ref_dtype == F64 else {"eps": 1e-3, "atol": 1e-3, "rtol": 1e-2}
    assert gradcheck(fn, a, b, **tol)
    assert gradgradcheck(fn, a, b, **tol)


@NP_ONLY
def test_cast_like_leaves_integer_refs_alone():
    g = _t([0.5, 1.5], F32)
    out = ndl.ops.cast_like(g, ndl.Tensor(np.array([1, 2])))
    assert out.dtype == F32 and np.allclose(out.numpy(), [0.5, 1.5])


def test_gradgradcheck_in_lazy_mode_where_every_gradient_is_cast_lazily():
    """In lazy mode the dtypes are unknown when the gradient graph is built, so every
    partial adjoint goes through a CastLike node; second derivatives stay exact."""
    autograd.LAZY_MODE = True
    try:
        a, b = _t(_values((2, 3), 0), F64), _t(_values((3,), 1, "pos"), F64)
        assert gradgradcheck(lambda a, b: ndl.tanh(a * b) / b + ndl.ops.stack([a, a], 0).sum(),
                             a, b)
    finally:
        autograd.LAZY_MODE = False


def test_lazy_mode_mixed_dtypes():
    autograd.LAZY_MODE = True
    try:
        a, b = _t(_values((2, 3), 0), F32), _t(_values((2, 3), 1), F64)
        y = ndl.ops.stack([a * b, b], 0).sum()
        y.backward()
        assert (a.grad.dtype, b.grad.dtype) == (F32, F64)
    finally:
        autograd.LAZY_MODE = False


@pytest.mark.parametrize("pair", DTYPE_PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_graph_mode_gradients_take_the_dtype_of_the_feeds(pair):
    x, w = ad.Variable("x"), ad.Variable("w")
    y = ad.sum_op(ad.relu(ad.matmul(x, w)) * ad.matmul(x, w), 1) + ad.sum_op(ad.exp(x), 1)
    gx, gw = ad.gradients(y, [x, w])
    ggx, = ad.gradients(ad.sum_op(gx, (0, 1)), [x])
    xv, wv = _values((2, 3), 0), _values((3, 4), 1)
    out, gxv, gwv, ggxv = ad.Evaluator([y, gx, gw, ggx]).run(
        {x: xv.astype(pair[0]), w: wv.astype(pair[1])})
    assert out.dtype == np.result_type(*pair)
    assert (gxv.dtype, gwv.dtype, ggxv.dtype) == (pair[0], pair[1], pair[0])
    ex, ew = ndl.Tensor(xv, dtype="float64"), ndl.Tensor(wv, dtype="float64")
    h = ex @ ew
    (ndl.relu(h) * h).sum(1).backward(ndl.Tensor(np.ones(2), dtype="float64"))
    tol = _tol(*pair)
    np.testing.assert_allclose(gwv, ew.grad.numpy(), **tol)
    np.testing.assert_allclose(gxv, ex.grad.numpy() + np.exp(xv), **tol)


def test_graph_mode_gradient_names_do_not_show_the_cast():
    x1, x2 = ad.Variable("x1"), ad.Variable("x2")
    g1, g2 = ad.gradients(x1 * x2, [x1, x2])
    assert "cast" not in g1.name and "cast" not in g2.name
    assert "x2" in g1.name and "x1" in g2.name


# ----------------------------------------------------------------------------------------------
# A new op gets the rule (and quiet FP errors) for free


class _Reciprocal(TensorOp):
    """A deliberately naive op written for this test: 1 / (a * b) from numpy."""

    def compute(self, a, b):
        from needle._array import as_numpy, wrap

        return wrap(1.0 / (as_numpy(a) * as_numpy(b)), a)

    def gradient(self, out_grad, node):
        a, b = node.inputs
        return -out_grad * node / a, -out_grad * node / b


def test_a_new_op_gets_input_dtype_gradients_and_quiet_errors():
    a, b = _t([1.0, 0.0, 2.0], F32), _t([0.5, 1.0, 0.0], F64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = _Reciprocal()(a, b)
        y.sum().backward()
    assert y.dtype == F64
    assert (a.grad.dtype, b.grad.dtype) == (F32, F64)
    assert np.isinf(y.numpy()[1:]).all()


# ----------------------------------------------------------------------------------------------
# No numpy RuntimeWarning leaves an op; NaN/Inf propagate silently

BAD = np.array([-1.0, 0.0, np.inf, -np.inf, np.nan, 1e30, 2.0])


def _bad(dtype=F32, shape=None):
    v = BAD if shape is None else np.resize(BAD, shape)
    return _t(v, dtype)


WARNING_CASES = [
    ("log", lambda x: ndl.log(x)),
    ("sqrt", lambda x: ndl.sqrt(x)),
    ("exp overflow", lambda x: ndl.exp(x * 100.0)),
    ("div by zero", lambda x: x / _t(np.zeros(BAD.shape), F32, False)),
    ("0 / 0", lambda x: (x * 0.0) / (x * 0.0)),
    ("divide_scalar by 0", lambda x: x / 0.0),
    ("rdiv", lambda x: 1.0 / x),
    ("power of negatives", lambda x: x ** 0.5),
    ("power by tensor", lambda x: ndl.ops.power(x, _t(np.full(BAD.shape, 0.5), F32))),
    ("tensor power of negatives", lambda x: ndl.ops.power(x - 3.0, x)),
    ("power -1 at 0", lambda x: x ** -1),
    ("0 * inf", lambda x: x * 0.0 * x),
    ("mul overflow", lambda x: x * x * x),
    ("inf - inf", lambda x: x - x),
    ("sum overflow", lambda x: (x * 1e20).sum() * 1e20),
    ("mean of empty", lambda x: ndl.ops.mean(x.reshape((7, 1))[0:0], 0)),
    ("mean overflow", lambda x: (x * 1e30).mean()),
    ("max with nan", lambda x: x.max()),
    ("maximum/minimum", lambda x: ndl.ops.maximum(x, x * -1.0) + ndl.ops.minimum(x, x * 2.0)),
    ("relu", lambda x: ndl.relu(x) * x),
    ("tanh", lambda x: ndl.tanh(x) * x),
    ("sigmoid", lambda x: ndl.sigmoid(x) * x),
    ("abs", lambda x: abs(x) * x),
    ("compare", lambda x: (x > 0.0) * x + ndl.ops.equal(x, x) * x),
    ("logsumexp", lambda x: ndl.ops.logsumexp(x.reshape((1, 7)), 1)),
    ("logsoftmax", lambda x: ndl.ops.logsoftmax(x.reshape((1, 7)))),
    ("softmax", lambda x: ndl.ops.softmax(x.reshape((1, 7)))),
    ("matmul", lambda x: x.reshape((7, 1)) @ x.reshape((1, 7))),
    ("conv", lambda x: ndl.ops.conv(ndl.ops.stack([x, x], 1).reshape((1, 7, 2, 1)),
                                    ndl.ops.stack([x[0:2], x[2:4]], 0).reshape((2, 2, 1, 1)),
                                    1, 0)),
    ("layernorm", lambda x: ndl.ops.ops_graph.layernorm(x.reshape((1, 7)), 7)),
    ("matmul_softmax", lambda x: ndl.matmul_softmax(x.reshape((7, 1)), x.reshape((1, 7)))),
    ("matmul_layernorm", lambda x: ndl.matmul_layernorm(x.reshape((7, 1)), x.reshape((1, 7)),
                                                        7)),
    ("broadcast and reshape", lambda x: ndl.ops.broadcast_to(x, (2, 7)).reshape((14,)) * x[0]),
    ("stack/split", lambda x: ndl.ops.stack(list(ndl.ops.split(ndl.ops.stack([x, x], 0), 0)
                                                 .tuple()), 0) * 1e30),
    ("getitem", lambda x: x[np.array([0, 2, 2])] * 1e30),
    ("overflow in float64", lambda x: x * _t(np.full(BAD.shape, 1e300), F64, False)),
    ("cast overflow in backward", lambda x: x * _t(np.full(BAD.shape, 1e20), F64, False)),
]


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("name, fn", WARNING_CASES, ids=[c[0] for c in WARNING_CASES])
def test_no_floating_point_warning_leaves_an_op(name, fn, dtype):
    x = _bad(dtype)
    before = np.geterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = fn(x)
        y.backward(ndl.Tensor(np.full(y.shape, 1e30), dtype=y.dtype, requires_grad=False))
        if x.grad is not None and x.grad.requires_grad:
            x.grad.sum().backward()  # second order too, where there is a graph
    assert np.geterr() == before


def test_user_numpy_error_state_is_kept_and_not_applied_to_ops():
    x = _bad()
    with np.errstate(all="raise"):
        y = ndl.log(x) / (x - x)  # no FloatingPointError from inside needle
        y.sum().backward()
        assert np.isnan(y.numpy()).any()
        assert np.geterr()["divide"] == "raise"
        with pytest.raises(FloatingPointError):
            np.log(np.array(0.0))  # the user's own numpy code still sees their state
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning):
            np.log(np.array(-1.0))  # and needle did not switch warnings off globally


def test_results_are_the_ieee_values():
    x = _t([-1.0, 0.0, 4.0], F32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lg = ndl.log(x)
        sq = ndl.sqrt(x)
        sq.sum().backward()
    assert np.isnan(lg.numpy()[0]) and np.isneginf(lg.numpy()[1])
    assert np.isnan(sq.numpy()[0]) and sq.numpy()[2] == 2.0
    assert np.isnan(x.grad.numpy()[0]) and np.isposinf(x.grad.numpy()[1])
    assert x.grad.numpy()[2] == 0.25


def test_detect_anomaly_still_reports_what_is_now_silent():
    x = _t([-1.0, 1.0], F32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ndl.autograd.detect_anomaly(), pytest.raises(GraphError, match="Log"):
            ndl.log(x)


def test_graph_evaluator_and_lazy_mode_are_quiet():
    x = ad.Variable("x")
    y = ad.log(x)
    g, = ad.gradients(ad.sum_op(y, 0), [x])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yv, gv = ad.Evaluator([y, g]).run({x: np.array([-1.0, 0.0])})
        autograd.LAZY_MODE = True
        try:
            z = ndl.log(_t([0.0], F64))
            z.sum().backward()
            assert np.isneginf(z.numpy()).all()
        finally:
            autograd.LAZY_MODE = False
    assert np.isnan(yv[0]) and np.isinf(gv[1])


def test_tensor_construction_overflow_is_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = ndl.Tensor(np.array([1e300, -1e300]), dtype="float32")
    assert np.isposinf(t.numpy()[0]) and np.isneginf(t.numpy()[1])


def test_quiet_computes_from_many_threads():
    """The shared quiet context is entered by one thread at a time; the others use their
    own, so concurrent ops neither warn nor fail."""
    errors: list = []

    def work(seed):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                for i in range(200):
                    x = _t(_values((64, 64), seed + i) * 1e20, F32)
                    y = (ndl.log(x) @ ndl.exp(x)).sum()
                    y.backward()
        except BaseException as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


class _CallsAnOp(TensorOp):
    """Breaks the op contract on purpose: its compute calls another needle op."""

    def compute(self, a):
        from needle._array import as_numpy, wrap

        inner = ndl.log(Tensor.make_const(a)).realize_cached_data()
        return wrap(as_numpy(inner) / 0.0, a)

    def gradient(self, out_grad, node):
        return out_grad


def test_a_compute_that_calls_an_op_is_still_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = _CallsAnOp()(_t([-1.0, 0.0, 2.0], F32))
    assert np.isnan(y.numpy()[0]) and np.isinf(y.numpy()[1:]).all()


def test_errors_raised_by_a_compute_pass_through():
    with pytest.raises(ndl.errors.ShapeError, match="add: shapes"):
        _t(np.ones(3), F32) + _t(np.ones(4), F32)

    class _Fails(TensorOp):
        def compute(self, a):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="^boom$"):
        _Fails()(_t([1.0], F32))


# ----------------------------------------------------------------------------------------------
# The numpy backend


@pytest.mark.skipif(ndl.BACKEND != "nd", reason="this is the run under NEEDLE_BACKEND=np")
def test_rule_holds_on_numpy_backend():
    from test_backend_np import _env_for_np_backend

    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_dtype_rule.py", "-q", "-p",
         "no:cacheprovider", "-x"],
        cwd=repo, env=_env_for_np_backend(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, (
        "tests/test_dtype_rule.py failed with NEEDLE_BACKEND=np:\n" + result.stdout[-6000:]
        + result.stderr[-2000:]
    )
