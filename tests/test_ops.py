"""Tests of needle.ops: every op's forward against numpy, its gradient against central
finite differences (float64), second derivatives of the smooth ops, Needle's conventions
and the error messages.

References are written with numpy only (conv with explicit loops over kernel positions).
Run on both backends: ``tests/test_backend_np.py`` re-runs this file with NEEDLE_BACKEND=np.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import (
    arrays,
    assert_close,
    axes_for,
    broadcast_shapes,
    make_values,
    np_axes,
    shapes,
    tensor,
)
from hypothesis import given
from hypothesis import strategies as st

import needle as ndl
from needle import ops
from needle.errors import ShapeError
from needle.gradcheck import GradcheckError, gradcheck, gradgradcheck

# ----------------------------------------------------------------------------------------------
# numpy references


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_logsumexp(x, axis=None):
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def np_logsoftmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def np_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_dilate(x, axes, d):
    """Element i of each dilated axis goes to i * (d + 1); everything else is zero."""
    shape = [n * (d + 1) if i in axes else n for i, n in enumerate(x.shape)]
    out = np.zeros(shape)
    for idx in np.ndindex(*x.shape):
        out[tuple(k * (d + 1) if i in axes else k for i, k in enumerate(idx))] = x[idx]
    return out


def np_undilate(x, axes, d):
    """Keep the elements at multiples of d + 1 along each axis in ``axes``."""
    shape = [-(-n // (d + 1)) if i in axes else n for i, n in enumerate(x.shape)]
    out = np.zeros(shape)
    for idx in np.ndindex(*shape):
        out[idx] = x[tuple(k * (d + 1) if i in axes else k for i, k in enumerate(idx))]
    return out


def np_conv(x, w, stride, padding):
    """NHWC cross-correlation by explicit loops over the kernel positions."""
    p, s = padding, stride
    x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    n, h, wd, _ = x.shape
    kh, kw, _, c_out = w.shape
    ho, wo = (h - kh) // s + 1, (wd - kw) // s + 1
    out = np.zeros((n, ho, wo, c_out))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i: i + s * (ho - 1) + 1: s, j: j + s * (wo - 1) + 1: s, :]
            out += patch @ w[i, j]
    return out


# ----------------------------------------------------------------------------------------------
# Element-wise unary ops (and scalar ops): one line each
# name, needle function, numpy reference, value domain (see conftest.make_values)

UNARY = [
    ("negate", ndl.negate, np.negative, "real"),
    ("neg_operator", lambda a: -a, np.negative, "real"),
    ("log", ndl.log, np.log, "pos"),
    ("exp", ndl.exp, np.exp, "real"),
    ("sqrt", ndl.sqrt, np.sqrt, "pos"),
    ("relu", ndl.relu, lambda x: np.maximum(x, 0.0), "nonzero"),
    ("tanh", ndl.tanh, np.tanh, "real"),
    ("sigmoid", ndl.sigmoid, np_sigmoid, "real"),
    ("abs", ndl.abs, np.abs, "nonzero"),
    ("sign", ndl.sign, np.sign, "nonzero"),
    ("zeros_like", ops.zeros_like, np.zeros_like, "real"),
    ("ones_like", ops.ones_like, np.ones_like, "real"),
    ("add_scalar", lambda a: ndl.add_scalar(a, 1.5), lambda x: x + 1.5, "real"),
    ("add_scalar_operator", lambda a: a + 2, lambda x: x + 2, "real"),
    ("radd_operator", lambda a: 2 + a, lambda x: x + 2, "real"),
    ("sub_scalar_operator", lambda a: a - 1.25, lambda x: x - 1.25, "real"),
    ("rsub_operator", lambda a: 1.25 - a, lambda x: 1.25 - x, "real"),
    ("mul_scalar", lambda a: ndl.mul_scalar(a, -2.5), lambda x: x * -2.5, "real"),
    ("rmul_operator", lambda a: 3 * a, lambda x: 3 * x, "real"),
    ("power_scalar_3", lambda a: ndl.power_scalar(a, 3), lambda x: x**3, "real"),
    ("power_scalar_2_operator", lambda a: a**2, lambda x: x**2, "real"),
    ("power_scalar_1", lambda a: ndl.power_scalar(a, 1), lambda x: x, "real"),
    ("power_scalar_0", lambda a: ndl.power_scalar(a, 0), np.ones_like, "real"),
    ("power_scalar_neg1", lambda a: ndl.power_scalar(a, -1), lambda x: 1 / x, "nonzero"),
    ("power_scalar_neg1.5", lambda a: ndl.power_scalar(a, -1.5), lambda x: x**-1.5, "pos"),
    ("power_scalar_0.5", lambda a: ndl.power_scalar(a, 0.5), np.sqrt, "pos"),
    ("divide_scalar", lambda a: ndl.divide_scalar(a, 4.0), lambda x: x / 4.0, "real"),
    ("divide_scalar_neg", lambda a: ndl.divide_scalar(a, -0.5), lambda x: x / -0.5, "real"),
    ("div_scalar_operator", lambda a: a / 3, lambda x: x / 3, "real"),
    ("rdiv_operator", lambda a: 2.0 / a, lambda x: 2.0 / x, "nonzero"),
    ("tensor_exp_method", lambda a: a.exp(), np.exp, "real"),
    ("tensor_log_method", lambda a: a.log(), np.log, "pos"),
]
UNARY_PARAMS = [pytest.param(fn, ref, kind, id=name) for name, fn, ref, kind in UNARY]


@pytest.mark.parametrize("fn, ref, kind", UNARY_PARAMS)
@given(data=st.data())
def test_unary_forward(fn, ref, kind, data):
    x = data.draw(shapes(0, 3).flatmap(lambda s: arrays(s, kind)))
    assert_close(fn(tensor(x)), ref(x))


@pytest.mark.parametrize("fn, ref, kind", UNARY_PARAMS)
@given(data=st.data())
def test_unary_gradient(fn, ref, kind, data):
    x = data.draw(shapes(0, 3).flatmap(lambda s: arrays(s, kind)))
    assert gradcheck(fn, tensor(x))


@pytest.mark.parametrize("fn, ref, kind", UNARY_PARAMS)
@given(data=st.data())
def test_unary_second_derivative(fn, ref, kind, data):
    x = data.draw(shapes(0, 2, max_side=3).flatmap(lambda s: arrays(s, kind)))
    # Squaring makes the seed of fn's backward depend on x, so the gradient ops' own
    # gradients are checked with respect to every one of their inputs.
    assert gradgradcheck(lambda a: fn(a) * fn(a), tensor(x))


def test_unary_forward_large_and_tiny_values():
    x = np.array([-50.0, -1e-8, 0.0, 1e-8, 50.0])
    assert_close(ndl.sigmoid(tensor(x)), np_sigmoid(x))
    assert_close(ndl.tanh(tensor(x)), np.tanh(x))
    assert_close(ndl.relu(tensor(x)), [0, 0, 0, 1e-8, 50.0])
    assert_close(ndl.abs(tensor(x)), np.abs(x))


# ----------------------------------------------------------------------------------------------
# Element-wise binary ops, with numpy broadcasting (size-1 axes, missing leading axes, 0-d)
# name, needle function, numpy reference, domain of a, domain of b

BINARY = [
    ("add", ndl.add, np.add, "real", "real"),
    ("add_operator", lambda a, b: a + b, np.add, "real", "real"),
    ("sub_operator", lambda a, b: a - b, np.subtract, "real", "real"),
    ("multiply", ndl.multiply, np.multiply, "real", "real"),
    ("mul_operator", lambda a, b: a * b, np.multiply, "real", "real"),
    ("divide", ndl.divide, np.divide, "real", "nonzero"),
    ("div_operator", lambda a, b: a / b, np.divide, "real", "nonzero"),
    ("power", ndl.power, np.power, "pos", "real"),
    ("pow_operator", lambda a, b: a**b, np.power, "pos", "real"),
    ("maximum", ndl.maximum, np.maximum, "grid", "offgrid"),
    ("minimum", ndl.minimum, np.minimum, "grid", "offgrid"),
]
BINARY_PARAMS = [pytest.param(fn, ref, ka, kb, id=name) for name, fn, ref, ka, kb in BINARY]


@st.composite
def broadcast_arrays(draw, kind_a, kind_b, max_dims=3, max_side=4):
    sa, sb = draw(broadcast_shapes(max_dims, max_side))
    return draw(arrays(sa, kind_a)), draw(arrays(sb, kind_b))


@pytest.mark.parametrize("fn, ref, ka, kb", BINARY_PARAMS)
@given(data=st.data())
def test_binary_forward(fn, ref, ka, kb, data):
    a, b = data.draw(broadcast_arrays(ka, kb))
    assert_close(fn(tensor(a), tensor(b)), ref(a, b))


@pytest.mark.parametrize("fn, ref, ka, kb", BINARY_PARAMS)
@given(data=st.data())
def test_binary_gradient(fn, ref, ka, kb, data):
    a, b = data.draw(broadcast_arrays(ka, kb))
    assert gradcheck(fn, tensor(a), tensor(b))


@pytest.mark.parametrize("fn, ref, ka, kb", BINARY_PARAMS)
@given(data=st.data())
def test_binary_second_derivative(fn, ref, ka, kb, data):
    a, b = data.draw(broadcast_arrays(ka, kb, max_dims=2, max_side=3))
    assert gradgradcheck(lambda x, y: fn(x, y) * fn(x, y), tensor(a), tensor(b))


@pytest.mark.parametrize("fn, ref, ka, kb", BINARY_PARAMS)
@pytest.mark.parametrize("sa, sb", [((3, 1, 4), (2, 1)), ((), (2, 3)), ((2, 3), (1,)),
                                    ((1, 3), (2, 1)), ((4,), (2, 3, 4))])
def test_binary_broadcast_gradient_shapes(fn, ref, ka, kb, sa, sb):
    a = tensor(make_values(sa, ka, 1))
    b = tensor(make_values(sb, kb, 2))
    out = fn(a, b)
    assert out.shape == np.broadcast_shapes(sa, sb)
    out.backward()
    assert a.grad.shape == sa and b.grad.shape == sb
    assert a.grad.dtype == np.float64 and b.grad.dtype == np.float64


@pytest.mark.parametrize("sa, sb", [((3, 1, 4), (2, 1)), ((), (2, 3)), ((1, 3), (2, 1))])
def test_add_broadcast_gradient_counts_copies(sa, sb):
    a, b = tensor(np.ones(sa)), tensor(np.ones(sb))
    out = a + b
    out.backward()
    n = int(np.prod(out.shape))
    assert_close(a.grad, np.full(sa, n / int(np.prod(sa))))
    assert_close(b.grad, np.full(sb, n / int(np.prod(sb))))


@pytest.mark.parametrize("fn, share_a", [(ndl.maximum, [0.5, 0.0, 1.0]),
                                         (ndl.minimum, [0.5, 1.0, 0.0])])
def test_maximum_minimum_split_ties_evenly(fn, share_a):
    a, b = tensor([1.0, 2.0, 3.0]), tensor([1.0, 3.0, 2.0])
    fn(a, b).backward()
    assert_close(a.grad, share_a)
    assert_close(b.grad, 1 - np.array(share_a))


# ----------------------------------------------------------------------------------------------
# Comparisons: 0.0/1.0 in the input's float dtype, zero gradient

COMPARE = [
    ("greater", ndl.greater, np.greater),
    ("greater_equal", ndl.greater_equal, np.greater_equal),
    ("less", ndl.less, np.less),
    ("less_equal", ndl.less_equal, np.less_equal),
    ("equal", ndl.equal, np.equal),
    ("not_equal", ndl.not_equal, np.not_equal),
    ("gt_operator", lambda a, b: a > b, np.greater),
    ("ge_operator", lambda a, b: a >= b, np.greater_equal),
    ("lt_operator", lambda a, b: a < b, np.less),
    ("le_operator", lambda a, b: a <= b, np.less_equal),
]
COMPARE_PARAMS = [pytest.param(fn, ref, id=name) for name, fn, ref in COMPARE]


@pytest.mark.parametrize("fn, ref", COMPARE_PARAMS)
@given(data=st.data())
def test_compare_forward(fn, ref, data):
    a, b = data.draw(broadcast_arrays("int", "int"))  # small integers: plenty of ties
    out = fn(tensor(a), tensor(b))
    assert out.dtype == np.float64
    assert_close(out, ref(a, b).astype(np.float64))


@pytest.mark.parametrize("fn, ref", COMPARE_PARAMS)
@pytest.mark.parametrize("scalar", [0, 1.0, -1])
def test_compare_with_scalar(fn, ref, scalar):
    a = make_values((3, 4), "int", 3)
    assert_close(fn(tensor(a), scalar), ref(a, scalar).astype(np.float64))


@pytest.mark.parametrize("fn, ref", COMPARE_PARAMS)
@given(data=st.data())
def test_compare_gradient_is_zero(fn, ref, data):
    a, b = data.draw(broadcast_arrays("grid", "offgrid"))
    assert gradcheck(fn, tensor(a), tensor(b))
    out = fn(tensor(a), tensor(b))
    grads = out.op.gradient_as_tuple(tensor(np.ones(out.shape)), out)
    assert [g.shape for g in grads] == [a.shape, b.shape]
    assert all(not g.numpy().any() for g in grads)


# ----------------------------------------------------------------------------------------------
# Reductions: axes None / int (negative too) / tuple, keepdims
# name, needle function (a, axes, keepdims), numpy reference (x, axis, keepdims), domain

REDUCE = [
    ("summation", lambda a, ax, kd: ndl.summation(a, ax, keepdims=kd), np.sum, "real"),
    ("sum_method", lambda a, ax, kd: a.sum(ax, keepdims=kd), np.sum, "real"),
    ("mean", lambda a, ax, kd: ndl.mean(a, ax, keepdims=kd), np.mean, "real"),
    ("max", lambda a, ax, kd: ndl.max(a, ax, keepdims=kd), np.max, "distinct"),
    ("max_method", lambda a, ax, kd: a.max(ax, keepdims=kd), np.max, "distinct"),
]
REDUCE_PARAMS = [pytest.param(fn, ref, kind, id=name) for name, fn, ref, kind in REDUCE]


@st.composite
def reduction_case(draw, kind, max_dims=3, max_side=4):
    x = draw(shapes(0, max_dims, max_side=max_side).flatmap(lambda s: arrays(s, kind)))
    return x, draw(axes_for(x.ndim)), draw(st.booleans())


@pytest.mark.parametrize("fn, ref, kind", REDUCE_PARAMS)
@given(data=st.data())
def test_reduce_forward(fn, ref, kind, data):
    x, axes, keepdims = data.draw(reduction_case(kind))
    assert_close(fn(tensor(x), axes, keepdims), ref(x, axis=np_axes(axes), keepdims=keepdims))


@pytest.mark.parametrize("fn, ref, kind", REDUCE_PARAMS)
@given(data=st.data())
def test_reduce_gradient(fn, ref, kind, data):
    x, axes, keepdims = data.draw(reduction_case(kind))
    assert gradcheck(lambda a: fn(a, axes, keepdims), tensor(x))


@pytest.mark.parametrize("fn, ref, kind", REDUCE_PARAMS)
@given(data=st.data())
def test_reduce_second_derivative(fn, ref, kind, data):
    x, axes, keepdims = data.draw(reduction_case(kind, max_dims=2, max_side=3))
    assert gradgradcheck(lambda a: fn(a, axes, keepdims) ** 2, tensor(x))


def test_max_gradient_splits_ties():
    x = tensor([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]])
    ndl.max(x, axes=1).backward()
    assert_close(x.grad, [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize("shape, axes, out_shape", [
    ((2, 3, 4), (0, 2), (3,)), ((2, 3, 4), 1, (2, 4)), ((2, 3, 4), None, ()),
    ((2, 3, 4), -1, (2, 3)), ((5,), 0, ()),
])
def test_summation_drops_axes(shape, axes, out_shape):
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    out = ndl.summation(tensor(x), axes)
    assert out.shape == out_shape
    assert_close(out, x.sum(axis=axes))


# ----------------------------------------------------------------------------------------------
# logsumexp, logsoftmax, softmax


@given(data=st.data())
def test_logsumexp_forward_and_gradient(data):
    x = data.draw(shapes(0, 3).flatmap(lambda s: arrays(s, "real")))
    axes = data.draw(axes_for(x.ndim))
    assert_close(ndl.logsumexp(tensor(x), axes), np_logsumexp(x, axis=np_axes(axes)))
    assert gradcheck(lambda a: ndl.logsumexp(a, axes), tensor(x))


@given(data=st.data())
def test_logsumexp_second_derivative(data):
    x = data.draw(shapes(0, 2, max_side=3).flatmap(lambda s: arrays(s, "real")))
    axes = data.draw(axes_for(x.ndim))
    assert gradgradcheck(lambda a: ndl.logsumexp(a, axes) ** 2, tensor(x))


@pytest.mark.parametrize("axes", [None, 0, 1, (0, 1)])
@pytest.mark.parametrize("dtype", ["float64", None])
def test_logsumexp_huge_inputs_stay_finite(axes, dtype):
    x = np.array([[1e10, 1e10, -1e10], [-1e10, 0.0, 1e10 - 1.0]])
    out = ndl.logsumexp(ndl.Tensor(x, dtype=dtype), axes)
    got = out.numpy()
    assert np.all(np.isfinite(got))
    rtol = 1e-12 if dtype == "float64" else 1e-6
    np.testing.assert_allclose(got, np_logsumexp(x, axis=axes), rtol=rtol)
    out.backward()
    assert np.all(np.isfinite(out.inputs[0].grad.numpy()))


def test_logsumexp_huge_inputs_values():
    x = tensor([[1e10, 1e10], [-1e10, -1e10]])
    out = ndl.logsumexp(x, axes=1)
    assert_close(out, [1e10 + np.log(2.0), -1e10 + np.log(2.0)], rtol=1e-15)
    out.backward()
    # 1e10 + log 2 is only known to ~2e-6 in float64, so the weights are good to ~1e-6.
    assert_close(x.grad, np.full((2, 2), 0.5), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_logsumexp_gradient_at_huge_inputs_is_softmax(dtype):
    x_np = np.array([[1e10, 1e10, -1e10], [3e9, 3e9 + 4096.0, 3e9 - 4096.0]])
    x = ndl.Tensor(x_np, dtype=dtype)
    ndl.logsumexp(x, axes=1).backward()
    assert_close(x.grad.numpy().astype(np.float64), np_softmax(x_np.astype(dtype), axis=1),
                 rtol=1e-3, atol=1e-6)


SOFTMAX = [
    ("logsoftmax", ndl.logsoftmax, np_logsoftmax),
    ("softmax", ndl.softmax, np_softmax),
]
SOFTMAX_PARAMS = [pytest.param(fn, ref, id=name) for name, fn, ref in SOFTMAX]


@pytest.mark.parametrize("fn, ref", SOFTMAX_PARAMS)
@given(x=shapes(2, 2).flatmap(lambda s: arrays(s, "real")))
def test_softmax_family_2d_default_axis_1(fn, ref, x):
    assert_close(fn(tensor(x)), ref(x, axis=1))
    assert gradcheck(fn, tensor(x))


@pytest.mark.parametrize("fn, ref", SOFTMAX_PARAMS)
@given(data=st.data())
def test_softmax_family_other_axes(fn, ref, data):
    x = data.draw(shapes(1, 3).flatmap(lambda s: arrays(s, "real")))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    assert_close(fn(tensor(x), axis), ref(x, axis=axis))
    assert gradcheck(lambda a: fn(a, axis), tensor(x))


@pytest.mark.parametrize("fn, ref", SOFTMAX_PARAMS)
@given(x=shapes(2, 2, max_side=3).flatmap(lambda s: arrays(s, "real")))
def test_softmax_family_second_derivative(fn, ref, x):
    assert gradgradcheck(lambda a: fn(a) * fn(a), tensor(x))


@pytest.mark.parametrize("fn, ref", SOFTMAX_PARAMS)
def test_softmax_family_huge_inputs(fn, ref):
    x = np.array([[1e10, 0.0, -1e10], [5.0, 1e10, 1e10]])
    got = fn(tensor(x))
    assert np.all(np.isfinite(got.numpy()))
    assert_close(got, ref(x, axis=1), rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Shape ops


@given(data=st.data())
def test_transpose(data):
    x = data.draw(shapes(2, 4).flatmap(lambda s: arrays(s)))
    nd = x.ndim
    axes = data.draw(st.none() | st.lists(st.integers(-nd, nd - 1), min_size=2, max_size=2))
    axes = None if axes is None else tuple(axes)
    want = np.swapaxes(x, -1, -2) if axes is None else np.swapaxes(x, *axes)
    assert_close(ndl.transpose(tensor(x), axes), want)
    assert gradcheck(lambda a: ndl.transpose(a, axes), tensor(x))


def test_transpose_none_swaps_last_two_axes():
    x = np.arange(24.0).reshape(2, 3, 4)
    out = ndl.transpose(tensor(x))
    assert out.shape == (2, 4, 3)
    assert out.numpy()[1, 3, 2] == x[1, 2, 3]
    assert tensor(x).transpose().shape == (2, 4, 3)
    assert ndl.transpose(tensor(x), (0, 1)).shape == (3, 2, 4)


@given(data=st.data())
def test_permute(data):
    x = data.draw(shapes(0, 4).flatmap(lambda s: arrays(s)))
    axes = tuple(data.draw(st.permutations(range(x.ndim))))
    assert_close(ndl.permute(tensor(x), axes), np.transpose(x, axes))
    assert_close(tensor(x).permute(axes), np.transpose(x, axes))
    assert gradcheck(lambda a: ndl.permute(a, axes), tensor(x))


@given(data=st.data())
def test_reshape(data):
    x = data.draw(shapes(0, 3).flatmap(lambda s: arrays(s)))
    dims = list(data.draw(st.permutations(x.shape)))
    ones = data.draw(st.integers(0, 2))
    new = tuple(dims + [1] * ones)
    new = tuple(data.draw(st.permutations(new)))
    assert_close(ndl.reshape(tensor(x), new), x.reshape(new))
    assert_close(tensor(x).reshape(new), x.reshape(new))
    assert gradcheck(lambda a: ndl.reshape(a, new), tensor(x))


def test_reshape_with_minus_one():
    x = np.arange(12.0).reshape(3, 4)
    assert_close(ndl.reshape(tensor(x), (2, -1)), x.reshape(2, 6))
    assert_close(ndl.reshape(tensor(x), (-1,)), x.ravel())


@given(pair=broadcast_shapes())
def test_broadcast_to(pair):
    sa, sb = pair
    target = np.broadcast_shapes(sa, sb)
    x = make_values(sa, "real", 4)
    assert_close(ndl.broadcast_to(tensor(x), target), np.broadcast_to(x, target))
    assert_close(tensor(x).broadcast_to(target), np.broadcast_to(x, target))
    assert gradcheck(lambda a: ndl.broadcast_to(a, target), tensor(x))


@pytest.mark.parametrize("shape, target", [((), (2, 3)), ((3,), (2, 4, 3)), ((2, 1), (2, 3)),
                                           ((1, 3, 1), (2, 3, 4)), ((1,), (1,))])
def test_broadcast_to_gradient_sums_back(shape, target):
    x = tensor(np.ones(shape))
    ndl.broadcast_to(x, target).backward()
    assert x.grad.shape == shape
    assert_close(x.grad, np.full(shape, np.prod(target) / np.prod(shape)))


GETITEM = [
    1, -1, slice(1, 3), slice(None, None, -1), slice(3, 0, -2), slice(-3, None, 2),
    (0, 2), (-1, slice(None), 1), (slice(None), None, 1), None, Ellipsis, (Ellipsis, 0),
    (0, 1, 2), (slice(None, None, -1), slice(None), slice(None, None, -3)),
    [0, 2, 2], ([0, 3, 0], [1, 2, 1]), (slice(1, None), [2, 0, 2]), (None, Ellipsis, None),
    ([[0, 1], [3, 3]],),
]


@pytest.mark.parametrize("index", GETITEM, ids=repr)
def test_getitem(index):
    x = make_values((4, 3, 4), "real", 5)
    assert_close(tensor(x)[index], x[index])
    assert_close(ndl.get_item(tensor(x), index), x[index])
    assert gradcheck(lambda a: a[index], tensor(x))


def test_getitem_repeated_indices_accumulate_gradient():
    x = tensor(np.zeros(4))
    x[[1, 1, 3, 1]].backward()
    assert_close(x.grad, [0.0, 3.0, 0.0, 1.0])


@given(data=st.data())
def test_flip(data):
    x = data.draw(shapes(1, 4).flatmap(lambda s: arrays(s)))
    axes = tuple(data.draw(st.lists(st.integers(0, x.ndim - 1), min_size=1, unique=True)))
    assert_close(ndl.flip(tensor(x), axes), np.flip(x, axes))
    assert gradcheck(lambda a: ndl.flip(a, axes), tensor(x))


@given(data=st.data())
def test_dilate(data):
    x = data.draw(shapes(1, 3).flatmap(lambda s: arrays(s)))
    axes = tuple(data.draw(st.lists(st.integers(0, x.ndim - 1), min_size=1, unique=True)))
    d = data.draw(st.integers(0, 2))
    assert_close(ndl.dilate(tensor(x), axes, d), np_dilate(x, axes, d))
    assert gradcheck(lambda a: ndl.dilate(a, axes, d), tensor(x))


@given(data=st.data())
def test_undilate(data):
    x = data.draw(shapes(1, 3, max_side=6).flatmap(lambda s: arrays(s)))
    axes = tuple(data.draw(st.lists(st.integers(0, x.ndim - 1), min_size=1, unique=True)))
    d = data.draw(st.integers(0, 2))
    assert_close(ndl.undilate(tensor(x), axes, d), np_undilate(x, axes, d))
    assert gradcheck(lambda a: ndl.undilate(a, axes, d), tensor(x))


def test_dilate_exact_output():
    x = tensor([[1.0, 2.0], [3.0, 4.0]])
    assert_close(ndl.dilate(x, (0,), 1), [[1, 2], [0, 0], [3, 4], [0, 0]])
    assert_close(ndl.dilate(x, (1,), 2), [[1, 0, 0, 2, 0, 0], [3, 0, 0, 4, 0, 0]])
    assert_close(ndl.dilate(x, (0, 1), 1),
                 [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]])
    assert_close(ndl.dilate(x, (0,), 0), [[1, 2], [3, 4]])
    assert_close(ndl.undilate(ndl.dilate(x, (0, 1), 2), (0, 1), 2), [[1, 2], [3, 4]])


@given(data=st.data())
def test_pad(data):
    x = data.draw(shapes(1, 3).flatmap(lambda s: arrays(s)))
    pads = tuple(data.draw(st.tuples(st.integers(0, 2), st.integers(0, 2))) for _ in x.shape)
    assert_close(ndl.pad(tensor(x), pads), np.pad(x, pads))
    assert gradcheck(lambda a: ndl.pad(a, pads), tensor(x))


@given(data=st.data())
def test_stack(data):
    shape = data.draw(shapes(0, 3))
    n = data.draw(st.integers(1, 3))
    xs = [data.draw(arrays(shape)) for _ in range(n)]
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    assert_close(ndl.stack([tensor(x) for x in xs], axis), np.stack(xs, axis))
    assert gradcheck(lambda *ts: ndl.stack(ts, axis), *[tensor(x) for x in xs])


@given(data=st.data())
def test_split(data):
    x = data.draw(shapes(1, 3).flatmap(lambda s: arrays(s)))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    parts = ndl.split(tensor(x), axis)
    assert isinstance(parts, ndl.TensorTuple)
    assert len(parts) == x.shape[axis]
    for i in range(len(parts)):
        assert_close(parts[i], np.take(x, i, axis=axis))

    def weighted(a):
        ps = ndl.split(a, axis)
        out = ps[0]
        for i in range(1, len(ps)):
            out = out + ps[i] * (i + 1.0)
        return out

    assert gradcheck(weighted, tensor(x))


def test_stack_split_second_derivative():
    a, b = tensor(make_values((2, 3), "real", 6)), tensor(make_values((2, 3), "real", 7))
    assert gradgradcheck(lambda x, y: ndl.stack([x * y, y], 1) ** 2, a, b)
    assert gradgradcheck(lambda x: ndl.split(x * x, 0)[1] * ndl.split(x, 0)[0], a)


ZERO_DIM = [  # name, function, input shape, output shape: results and gradients keep 0-d
    ("broadcast_to_0d", lambda a: ndl.broadcast_to(a, ()), (), ()),
    ("getitem_all_ints", lambda a: a[0, 1, 2], (4, 3, 4), ()),
    ("getitem_1d_int", lambda a: a[-1], (3,), ()),
    ("split_1d_part", lambda a: ndl.split(a, 0)[1], (3,), ()),
    ("stack_0d", lambda a: ndl.stack([a, a * 2.0], 0), (), (2,)),
    ("summation_0d", lambda a: ndl.summation(a), (), ()),
    ("summation_1d", lambda a: ndl.summation(a, 0), (3,), ()),
    ("mean_0d", lambda a: ndl.mean(a), (), ()),
    ("max_0d", lambda a: ndl.max(a), (), ()),
    ("logsumexp_0d", lambda a: ndl.logsumexp(a), (), ()),
    ("reshape_to_0d", lambda a: ndl.reshape(a, ()), (1, 1), ()),
    ("exp_0d", lambda a: ndl.exp(a), (), ()),
]


@pytest.mark.parametrize("fn, in_shape, out_shape",
                         [pytest.param(f, i, o, id=n) for n, f, i, o in ZERO_DIM])
def test_zero_dim_shapes(fn, in_shape, out_shape):
    x = tensor(make_values(in_shape, "distinct", 22))
    out = fn(x)
    assert out.shape == out_shape
    out.backward()
    assert x.grad.shape == in_shape


# ----------------------------------------------------------------------------------------------
# matmul

MATMUL_SHAPES = [
    ((3, 4), (4, 2)), ((1, 1), (1, 1)), ((6, 6, 5, 4), (6, 6, 4, 3)), ((6, 6, 5, 4), (4, 3)),
    ((5, 4), (6, 6, 4, 3)), ((2, 1, 3, 2), (4, 2, 2)), ((8, 8), (8, 8)), ((16, 8), (8, 24)),
]


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES)
def test_matmul_forward(sa, sb):
    a, b = make_values(sa, "real", 8), make_values(sb, "real", 9)
    assert_close(ndl.matmul(tensor(a), tensor(b)), np.matmul(a, b), rtol=1e-9)
    assert_close(tensor(a) @ tensor(b), np.matmul(a, b), rtol=1e-9)


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES[:6])
def test_matmul_gradient_fixed_shapes(sa, sb):
    a, b = make_values(sa, "real", 10), make_values(sb, "real", 11)
    assert gradcheck(ndl.matmul, tensor(a), tensor(b))


@st.composite
def matmul_operands(draw, max_side=4):
    m, n, p = (draw(st.integers(1, max_side)) for _ in range(3))
    ba, bb = draw(broadcast_shapes(max_dims=2, max_side=3))
    return draw(arrays(ba + (m, n))), draw(arrays(bb + (n, p)))


@given(ab=matmul_operands())
def test_matmul_hypothesis(ab):
    a, b = ab
    assert_close(ndl.matmul(tensor(a), tensor(b)), np.matmul(a, b), rtol=1e-9)
    assert gradcheck(ndl.matmul, tensor(a), tensor(b))


@given(ab=matmul_operands(max_side=3))
def test_matmul_second_derivative(ab):
    assert gradgradcheck(lambda a, b: ndl.matmul(a, b) ** 2, tensor(ab[0]), tensor(ab[1]))


# 1-D operands by numpy's rules: vector @ vector is 0-d, a vector operand's axis is dropped.
MATMUL_VECTOR_SHAPES = [
    ((4,), (4,)), ((1,), (1,)), ((3, 4), (4,)), ((4,), (4, 2)), ((2, 3, 4), (4,)),
    ((4,), (2, 4, 3)), ((2, 1, 3, 4), (4,)), ((4,), (3, 1, 4, 2)),
]


@pytest.mark.parametrize("sa, sb", MATMUL_VECTOR_SHAPES)
def test_matmul_vectors(sa, sb):
    a, b = make_values(sa, "real", 12), make_values(sb, "real", 13)
    expected = np.matmul(a, b)
    assert_close(ndl.matmul(tensor(a), tensor(b)), expected, rtol=1e-9)
    assert_close(tensor(a) @ tensor(b), expected, rtol=1e-9)
    assert gradcheck(ndl.matmul, tensor(a), tensor(b))
    assert gradgradcheck(lambda x, y: ndl.matmul(x, y) ** 2, tensor(a), tensor(b))


def test_matmul_vector_gradients_by_hand():
    a, b = tensor([1.0, 2.0, 3.0]), tensor([4.0, 5.0, 6.0])
    out = a @ b
    assert out.shape == () and out.numpy() == 32.0
    out.backward()
    assert_close(a.grad, [4.0, 5.0, 6.0])
    assert_close(b.grad, [1.0, 2.0, 3.0])
    m = tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 2.0]])
    (m @ a).backward(tensor([1.0, 10.0]))
    assert_close(m.grad, [[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])  # outer(g, a)
    assert_close(a.grad, [1.0, -8.0, 23.0])  # m.T @ g


@given(st.integers(1, 4), st.integers(0, 2), st.booleans(), st.integers(0, 2 ** 16))
def test_matmul_vector_hypothesis(n, batch_dims, vector_left, seed):
    batch = (2, 3)[:batch_dims]
    if vector_left:
        sa, sb = (n,), batch + (n, 3)
    else:
        sa, sb = batch + (3, n), (n,)
    a, b = make_values(sa, "real", seed), make_values(sb, "real", seed + 1)
    assert_close(ndl.matmul(tensor(a), tensor(b)), np.matmul(a, b), rtol=1e-9)
    assert gradcheck(ndl.matmul, tensor(a), tensor(b))


def test_matmul_batched_gradient_shapes():
    a, b = tensor(np.ones((5, 4))), tensor(np.ones((6, 6, 4, 3)))
    ndl.matmul(a, b).backward()
    assert a.grad.shape == (5, 4) and b.grad.shape == (6, 6, 4, 3)
    assert_close(a.grad, np.full((5, 4), 36 * 3.0))
    assert_close(b.grad, np.full((6, 6, 4, 3), 5.0))


# ----------------------------------------------------------------------------------------------
# conv (NHWC input, (k, k, Cin, Cout) weight)

CONV_CASES = [  # n, h, w, c_in, c_out, k, stride, padding
    (1, 4, 4, 1, 1, 3, 1, 0),
    (2, 5, 3, 2, 3, 3, 1, 1),
    (1, 6, 5, 3, 2, 3, 2, 2),
    (2, 4, 6, 2, 1, 1, 3, 3),
    (1, 5, 5, 1, 2, 2, 2, 0),
    (1, 3, 4, 2, 2, 3, 3, 1),
    (1, 7, 4, 1, 1, 5, 1, 3),
    (2, 4, 3, 3, 2, 4, 1, 2),
]


@pytest.mark.parametrize("n, h, w, ci, co, k, s, p", CONV_CASES)
def test_conv_forward_and_gradient(n, h, w, ci, co, k, s, p):
    x, wt = make_values((n, h, w, ci), "real", 12), make_values((k, k, ci, co), "real", 13)
    assert_close(ndl.conv(tensor(x), tensor(wt), stride=s, padding=p), np_conv(x, wt, s, p),
                 rtol=1e-9)
    assert_close(ops.Conv(s, p)(tensor(x), tensor(wt)), np_conv(x, wt, s, p), rtol=1e-9)
    assert gradcheck(lambda a, b: ndl.conv(a, b, stride=s, padding=p), tensor(x), tensor(wt))


@st.composite
def conv_case(draw, max_side=4, max_c=3, max_k=3):
    s, p = draw(st.integers(1, 3)), draw(st.integers(0, 3))
    k = draw(st.integers(1, max_k))
    h = draw(st.integers(max(1, k - 2 * p), max(max_side, k - 2 * p)))
    w = draw(st.integers(max(1, k - 2 * p), max(max_side, k - 2 * p)))
    n, ci, co = draw(st.integers(1, 2)), draw(st.integers(1, max_c)), draw(st.integers(1, max_c))
    x = draw(arrays((n, h, w, ci)))
    wt = draw(arrays((k, k, ci, co)))
    return x, wt, s, p


@given(case=conv_case())
def test_conv_hypothesis(case):
    x, wt, s, p = case
    assert_close(ndl.conv(tensor(x), tensor(wt), stride=s, padding=p), np_conv(x, wt, s, p),
                 rtol=1e-9)
    assert gradcheck(lambda a, b: ndl.conv(a, b, stride=s, padding=p), tensor(x), tensor(wt))


@given(case=conv_case(max_side=3, max_c=2, max_k=2))
def test_conv_second_derivative(case):
    x, wt, s, p = case
    assert gradgradcheck(lambda a, b: ndl.conv(a, b, stride=s, padding=p) ** 2,
                         tensor(x[:1]), tensor(wt))


def test_conv_helper_default_padding_is_1():
    x, wt = make_values((1, 5, 4, 2), "real", 14), make_values((3, 3, 2, 3), "real", 15)
    out = ndl.conv(tensor(x), tensor(wt))
    assert out.shape == (1, 5, 4, 3)
    assert_close(out, np_conv(x, wt, 1, 1), rtol=1e-9)
    assert ops.Conv()(tensor(x), tensor(wt)).shape == (1, 3, 2, 3)


# ----------------------------------------------------------------------------------------------
# Tuple ops


def test_make_tuple_and_tuple_get_item():
    a, b = tensor([1.0, 2.0]), tensor([[3.0]])
    t = ndl.make_tuple(a, b)
    assert isinstance(t, ndl.TensorTuple) and len(t) == 2
    assert ndl.tuple_get_item(t, 1) is b  # constant-folded on make_tuple
    assert_close(t[0], [1.0, 2.0])
    unfolded = ops.TupleGetItem(1)(t, fold_const=False)
    assert isinstance(unfolded.op, ops.TupleGetItem)
    assert_close(unfolded, [[3.0]])


def test_tuple_get_item_gradient_puts_zeros_elsewhere():
    a, b = tensor([1.0, 2.0]), tensor([3.0, 4.0, 5.0])
    t = ndl.make_tuple(a, b)
    out = ops.TupleGetItem(1)(t, fold_const=False)
    grads = out.op.gradient_as_tuple(tensor([7.0, 8.0, 9.0]), out)
    assert len(grads) == 1 and isinstance(grads[0], ndl.TensorTuple)
    assert_close(grads[0][0], [0.0, 0.0])
    assert_close(grads[0][1], [7.0, 8.0, 9.0])

    def fn(x, y):
        tup = ndl.make_tuple(x, y)
        first = ops.TupleGetItem(0)(tup, fold_const=False)
        second = ops.TupleGetItem(1)(tup, fold_const=False)
        return first * ndl.summation(second)

    assert gradcheck(fn, a, b)
    assert gradgradcheck(fn, a, b)


@given(x=shapes(0, 3).flatmap(lambda s: arrays(s)), c0=st.floats(-3, 3), c1=st.floats(-3, 3))
def test_fused_add_scalars(x, c0, c1):
    out = ndl.fused_add_scalars(tensor(x), c0, c1)
    assert isinstance(out, ndl.TensorTuple) and len(out) == 2
    assert_close(out[0], x + c0)
    assert_close(out[1], x + c1)

    def fn(a):
        t = ndl.fused_add_scalars(a, c0, c1)
        return t[0] * t[1]

    assert gradcheck(fn, tensor(x))


# ----------------------------------------------------------------------------------------------
# Needle conventions


TOP_LEVEL_HELPERS = [
    "add", "add_scalar", "multiply", "mul_scalar", "power", "power_scalar", "divide",
    "divide_scalar", "transpose", "reshape", "broadcast_to", "summation", "matmul", "negate",
    "log", "exp", "relu", "tanh", "stack", "split", "flip", "dilate", "undilate", "conv",
    "logsoftmax", "logsumexp", "make_tuple", "tuple_get_item", "fused_add_scalars",
]


@pytest.mark.parametrize("name", TOP_LEVEL_HELPERS)
def test_op_helpers_are_exported_at_top_level(name):
    assert name in ops.__all__
    assert getattr(ndl, name) is getattr(ops, name)


def test_sub_is_add_of_negate():
    a, b = tensor([1.0, 2.0]), tensor([3.0, 5.0])
    c = a - b
    assert isinstance(c.op, ops.EWiseAdd)
    assert c.inputs[0] is a
    assert isinstance(c.inputs[1].op, ops.Negate) and c.inputs[1].inputs[0] is b
    assert len(ndl.autograd.find_topo_sort([c])) == 4
    assert_close(c, [-2.0, -3.0])


def test_divide_scalar_accepts_shape_1_array():
    x = make_values((2, 3), "real", 16)
    out = ndl.divide_scalar(tensor(x), np.array([2.0]))
    assert_close(out, x / 2.0)
    assert_close(tensor(x) / np.array([4.0]), x / 4.0)
    assert ndl.divide_scalar(tensor(3.0), np.array([2.0])).shape == ()


def test_power_with_int_exponent_tensor():
    if ndl.BACKEND != "np":
        pytest.skip("int tensors are a numpy-backend feature (nd holds float32/float64)")
    base = np.array([1.5, 2.0, 0.5])
    exponent = np.array([2, 3, -1])
    a = ndl.Tensor(base)
    b = ndl.Tensor(exponent)
    assert b.dtype.kind == "i"
    out = ndl.power(a, b)
    assert_close(out, base**exponent.astype(np.float64))
    out.backward()
    assert_close(a.grad, exponent * base ** (exponent - 1.0))


def test_gradient_as_tuple_called_directly():
    a_np, b_np = make_values((2, 3), "real", 17), make_values((2, 3), "nonzero", 18)
    g_np = make_values((2, 3), "real", 19)
    a, b = ndl.Tensor(a_np), ndl.Tensor(b_np)
    out = ndl.divide(a, b)
    grads = out.op.gradient_as_tuple(ndl.Tensor(g_np), out)
    assert isinstance(grads, tuple) and len(grads) == 2
    tol = {"rtol": 1e-5, "atol": 1e-6}
    assert_close(grads[0], g_np / b_np, **tol)
    assert_close(grads[1], -g_np * a_np / b_np**2, **tol)
    out = ndl.exp(a)
    grads = out.op.gradient_as_tuple(ndl.Tensor(g_np), out)
    assert isinstance(grads, tuple) and len(grads) == 1
    assert_close(grads[0], g_np * np.exp(a_np), **tol)


def test_course_style_gradient_check_mutates_live_storage():
    """hw1's gradient_check: perturb ``realize_cached_data().flat[j]`` in place, re-run f."""
    a = tensor(make_values((3, 4), "real", 20))
    b = tensor(make_values((4, 2), "real", 21))

    def f(x, y):
        return ndl.summation(ndl.tanh(x @ y) * 3.0)

    eps = 1e-5
    numerical = []
    for arg in (a, b):
        num = np.zeros(arg.shape)
        for j in range(arg.realize_cached_data().size):
            arg.realize_cached_data().flat[j] += eps
            f1 = float(f(a, b).numpy().sum())
            arg.realize_cached_data().flat[j] -= 2 * eps
            f2 = float(f(a, b).numpy().sum())
            arg.realize_cached_data().flat[j] += eps
            num.flat[j] = (f1 - f2) / (2 * eps)
        numerical.append(num)
    out = f(a, b)
    out.backward()
    assert_close(a.grad, numerical[0], rtol=1e-6, atol=1e-8)
    assert_close(b.grad, numerical[1], rtol=1e-6, atol=1e-8)


def test_default_dtype_follows_backend():
    x = np.random.default_rng(0).standard_normal((2, 3))  # float64
    t = ndl.Tensor(x)
    if ndl.BACKEND == "np":
        assert t.dtype == np.float64
        assert isinstance(t.realize_cached_data(), np.ndarray)
        for out in (t * 2.0 + 1.0, ndl.exp(t), t @ ndl.transpose(t), ndl.summation(t, 1)):
            assert out.dtype == np.float64
        assert_close(ndl.exp(t), np.exp(x))
    else:
        assert t.dtype == "float32"
        assert ndl.Tensor(x, dtype="float64").dtype == np.float64


FLOAT32_OPS = [  # ops on float32 data give float32 results and float32 gradients
    ("add", lambda a: a + a),
    ("sub", lambda a: a - a * a),
    ("add_scalar", lambda a: a + 1.5),
    ("mul_scalar", lambda a: a * 0.1),
    ("divide_scalar_array", lambda a: ndl.divide_scalar(a, np.array([2.0]))),
    ("power_scalar", lambda a: ndl.power_scalar(ndl.abs(a) + 1, -1.5)),
    ("rdiv", lambda a: 1 / (ndl.abs(a) + 1)),
    ("divide", lambda a: a / (a * a + 1)),
    ("exp_log_sqrt", lambda a: ndl.log(ndl.sqrt(ndl.exp(a)))),
    ("tanh_sigmoid_relu", lambda a: ndl.relu(ndl.tanh(a) + ndl.sigmoid(a))),
    ("maximum", lambda a: ndl.maximum(a, a * 0.5)),
    ("greater", lambda a: ndl.greater(a, 0.0) * a),
    ("summation_mean", lambda a: ndl.summation(a, 1) + ndl.mean(a, 1)),
    ("max", lambda a: ndl.max(a, 0)),
    ("logsumexp", lambda a: ndl.logsumexp(a, 1)),
    ("logsoftmax_softmax", lambda a: ndl.logsoftmax(a) + ndl.softmax(a)),
    ("matmul", lambda a: a @ ndl.transpose(a)),
    ("conv", lambda a: ndl.conv(ndl.reshape(a, (1, 3, 4, 1)),
                                ndl.reshape(a[:2, :2], (2, 2, 1, 1)), padding=0)),
    ("getitem", lambda a: a[1:, ::-1]),
    ("broadcast_to", lambda a: ndl.broadcast_to(a, (2, 3, 4))),
    ("stack_split", lambda a: ndl.stack([a, a], 0) + ndl.split(a, 0)[1]),
    ("flip_dilate_pad", lambda a: ndl.pad(ndl.dilate(ndl.flip(a, (0,)), (1,), 1), ((1, 0),) * 2)),
]


@pytest.mark.parametrize("fn", [pytest.param(f, id=n) for n, f in FLOAT32_OPS])
def test_float32_stays_float32(fn):
    x = ndl.Tensor(make_values((3, 4), "nonzero", 23).astype(np.float32))
    assert x.dtype == "float32"
    out = fn(x)
    assert out.dtype == "float32"
    out.backward()
    assert x.grad.dtype == "float32"


def test_gradcheck_catches_a_wrong_gradient():
    class WrongSquare(ndl.autograd.TensorOp):
        def compute(self, a):
            return a * a

        def gradient(self, out_grad, node):
            return out_grad * node.inputs[0]  # missing the factor 2

    with pytest.raises(GradcheckError):
        gradcheck(lambda x: WrongSquare()(x), tensor([1.0, -2.0]))


# ----------------------------------------------------------------------------------------------
# Errors: needle errors (ShapeError is a ValueError) naming the shapes

BINARY_FOR_ERRORS = [
    ("add", ndl.add), ("multiply", ndl.multiply), ("divide", ndl.divide), ("power", ndl.power),
    ("maximum", ndl.maximum), ("minimum", ndl.minimum), ("greater", ndl.greater),
    ("greater_equal", ndl.greater_equal), ("less", ndl.less), ("less_equal", ndl.less_equal),
    ("equal", ndl.equal), ("not_equal", ndl.not_equal), ("sub_operator", lambda a, b: a - b),
    ("truediv_operator", lambda a, b: a / b),
]


def assert_mentions(excinfo, *parts):
    msg = str(excinfo.value)
    for part in parts:
        assert part in msg, f"{part!r} not in error message {msg!r}"


@pytest.mark.parametrize("fn", [pytest.param(f, id=n) for n, f in BINARY_FOR_ERRORS])
def test_binary_shape_mismatch_names_both_shapes(fn):
    with pytest.raises(ShapeError) as excinfo:
        fn(tensor(np.ones((2, 3))), tensor(np.ones(4)))
    assert isinstance(excinfo.value, ValueError)
    assert_mentions(excinfo, "(2, 3)", "(4,)")


def test_matmul_shape_error():
    with pytest.raises(ShapeError) as excinfo:
        ndl.matmul(tensor(np.ones((2, 3))), tensor(np.ones((4, 5))))
    assert_mentions(excinfo, "matmul", "(2, 3)", "(4, 5)")


def test_broadcast_to_error():
    with pytest.raises(ShapeError) as excinfo:
        ndl.broadcast_to(tensor(np.ones(3)), (2, 4))
    assert_mentions(excinfo, "(3,)", "(2, 4)")


def test_reshape_error():
    with pytest.raises(ShapeError) as excinfo:
        ndl.reshape(tensor(np.ones((2, 3))), (4,))
    assert_mentions(excinfo, "6", "(4,)")


@pytest.mark.parametrize("fn", [
    pytest.param(lambda a, ax: ndl.summation(a, ax), id="summation"),
    pytest.param(lambda a, ax: ndl.mean(a, ax), id="mean"),
    pytest.param(lambda a, ax: ndl.max(a, ax), id="max"),
    pytest.param(lambda a, ax: ndl.logsumexp(a, ax), id="logsumexp"),
])
def test_reduction_axis_errors(fn):
    x = tensor(np.ones((2, 3)))
    with pytest.raises(ShapeError) as excinfo:
        fn(x, 3)
    assert_mentions(excinfo, "3", "(2, 3)")
    with pytest.raises(ShapeError, match="repeated"):
        fn(x, (0, 0))
    with pytest.raises(ShapeError, match="repeated"):
        fn(x, (1, -1))


@pytest.mark.parametrize("axes", [(0, 0), (0, 2), (0,), (1, 0, 2)])
def test_permute_non_permutation(axes):
    with pytest.raises(ShapeError) as excinfo:
        ndl.permute(tensor(np.ones((2, 3))), axes)
    assert_mentions(excinfo, str(tuple(axes)))


def test_stack_unequal_shapes():
    with pytest.raises(ShapeError) as excinfo:
        ndl.stack([tensor(np.ones((2, 3))), tensor(np.ones((3, 2)))], 0)
    assert_mentions(excinfo, "(2, 3)", "(3, 2)")


def test_split_bad_axis():
    with pytest.raises(ShapeError) as excinfo:
        ndl.split(tensor(np.ones((2, 3))), 5)
    assert_mentions(excinfo, "5", "(2, 3)")


def test_conv_channel_mismatch():
    with pytest.raises(ShapeError) as excinfo:
        ndl.conv(tensor(np.ones((1, 4, 4, 3))), tensor(np.ones((3, 3, 2, 4))))
    assert_mentions(excinfo, "(1, 4, 4, 3)", "(3, 3, 2, 4)")


@pytest.mark.parametrize("stride", [0, -1])
def test_conv_bad_stride(stride):
    with pytest.raises(ShapeError, match="stride"):
        ndl.conv(tensor(np.ones((1, 4, 4, 2))), tensor(np.ones((3, 3, 2, 1))), stride=stride)


@pytest.mark.parametrize("index", [5, -4, (0, 3), (slice(None), 7), [0, 3]], ids=repr)
def test_getitem_out_of_range(index):
    x = tensor(np.ones((3, 3)))
    with pytest.raises(IndexError) as excinfo:
        x[index]
    assert_mentions(excinfo, "(3, 3)")


def test_transpose_errors():
    with pytest.raises(ShapeError, match=re.escape("(3,)")):
        ndl.transpose(tensor(np.ones(3)))
    with pytest.raises(ShapeError):
        ndl.transpose(tensor(np.ones((2, 3))), (0, 2))


def _x23():
    return tensor(np.ones((2, 3)))


OTHER_ERRORS = [  # name, failing call, error type, parts the message must contain
    ("flip_axis", lambda: ndl.flip(_x23(), (2,)), ShapeError, ["2", "(2, 3)"]),
    ("dilate_negative", lambda: ndl.dilate(_x23(), (0,), -1), ShapeError, ["-1"]),
    ("dilate_axis", lambda: ndl.dilate(_x23(), (3,), 1), ShapeError, ["3", "(2, 3)"]),
    ("pad_pairs", lambda: ndl.pad(_x23(), ((1, 1),)), ShapeError, ["(2, 3)"]),
    ("pad_negative", lambda: ndl.pad(_x23(), ((1, -1), (0, 0))), ShapeError, ["-1"]),
    ("conv_kernel_too_big", lambda: ndl.conv(tensor(np.ones((1, 2, 2, 1))),
                                             tensor(np.ones((5, 5, 1, 1))), padding=0),
     ShapeError, ["(1, 2, 2, 1)"]),
    ("conv_not_4d", lambda: ndl.conv(tensor(np.ones((2, 2, 1))), tensor(np.ones((1, 1, 1, 1)))),
     ShapeError, ["(2, 2, 1)"]),
    ("matmul_0d", lambda: ndl.matmul(tensor(np.ones(())), tensor(np.ones((3, 2)))),
     ShapeError, ["at least 1 dim", "()", "(3, 2)"]),
    ("matmul_vec_inner", lambda: ndl.matmul(tensor(np.ones(3)), tensor(np.ones((4, 2)))),
     ShapeError, ["(3,)", "(4, 2)", "3 != 4"]),
    ("matmul_mat_vec_inner", lambda: ndl.matmul(tensor(np.ones((2, 3))), tensor(np.ones(4))),
     ShapeError, ["(2, 3)", "(4,)", "3 != 4"]),
    ("matmul_batch", lambda: ndl.matmul(tensor(np.ones((2, 2, 3))), tensor(np.ones((3, 3, 4)))),
     ShapeError, ["(2, 2, 3)", "(3, 3, 4)"]),
    ("stack_axis", lambda: ndl.stack([_x23(), _x23()], 4), ShapeError, ["4", "(2, 3)"]),
    ("split_0d", lambda: ndl.split(tensor(1.0), 0), ShapeError, ["()"]),
    ("logsoftmax_axis", lambda: ndl.logsoftmax(_x23(), 2), ShapeError, ["2", "(2, 3)"]),
    ("max_empty", lambda: ndl.max(tensor(np.ones((0, 3)))), ShapeError, ["(0, 3)"]),
    ("tuple_index", lambda: ndl.split(_x23(), 0)[5], IndexError, ["5"]),
    ("broadcast_to_fewer_dims", lambda: ndl.broadcast_to(_x23(), (3,)), ShapeError,
     ["(2, 3)", "(3,)"]),
    ("scalar_not_a_scalar", lambda: ndl.add_scalar(_x23(), np.ones(2)), TypeError, ["(2,)"]),
]


@pytest.mark.parametrize("call, error, parts",
                         [pytest.param(c, e, p, id=n) for n, c, e, p in OTHER_ERRORS])
def test_other_errors(call, error, parts):
    with pytest.raises(error) as excinfo:
        call()
    assert_mentions(excinfo, *parts)
