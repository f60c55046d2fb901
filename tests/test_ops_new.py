"""Tests of the ops in ops_select, ops_reduce, ops_shape and ops_trig: where, clamp/clip,
min, var/std, sin/cos, concatenate/cat, squeeze/unsqueeze, argmax/argmin, gather /
take_along_axis / scatter_add, and nn.Embedding built on take_along_axis.

Forward values against numpy (or explicit loops), gradients against central finite
differences in float64, second derivatives with gradgradcheck, graph mode on
``needle.graph`` Variables against finite differences of the evaluated graph, and the
error messages. ``tests/test_backend_np.py`` re-runs this file with NEEDLE_BACKEND=np.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import arrays, assert_close, axes_for, make_values, np_axes, shapes, tensor
from hypothesis import given
from hypothesis import strategies as st

import needle as ndl
from needle import graph as ad
from needle.errors import DTypeError, IndexOutOfRange, NeedleError, ShapeError
from needle.gradcheck import gradcheck, gradgradcheck

# ----------------------------------------------------------------------------------------------
# Strategies and references


@st.composite
def broadcast_triples(draw, max_dims: int = 3, max_side: int = 4) -> tuple:
    """Three shapes that broadcast together: each drops leading axes and turns some to 1."""
    full = draw(shapes(0, max_dims, 1, max_side))

    def side() -> tuple:
        ndim = draw(st.integers(0, len(full)))
        kept = full[len(full) - ndim:]
        ones = draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
        return tuple(1 if one else d for d, one in zip(kept, ones))

    return side(), side(), side()


def np_gather(x: np.ndarray, axis: int, index: np.ndarray) -> np.ndarray:
    """PyTorch's gather by an explicit loop over the output positions."""
    out = np.zeros(index.shape, dtype=x.dtype)
    for pos in np.ndindex(*index.shape):
        src = list(pos)
        src[axis] = index[pos]
        out[pos] = x[tuple(src)]
    return out


def np_scatter_add(x: np.ndarray, axis: int, index: np.ndarray, src: np.ndarray) -> np.ndarray:
    out = x.copy()
    for pos in np.ndindex(*index.shape):
        dst = list(pos)
        dst[axis] = index[pos]
        out[tuple(dst)] += src[pos]
    return out


def index_tensor(index: np.ndarray) -> ndl.Tensor:
    return ndl.Tensor(index, requires_grad=False)


# ----------------------------------------------------------------------------------------------
# where


def _condition(shape: tuple, seed: int, kind: str):
    mask = np.random.default_rng(seed).random(shape) < 0.5
    if kind == "tensor":
        return ndl.Tensor(mask.astype(np.float64), dtype="float64", requires_grad=False), mask
    if kind == "numpy":
        return mask, mask
    return mask.tolist(), mask  # nested lists (a Python bool for 0-d)


@given(shp=broadcast_triples(), seed=st.integers(0, 2**16),
       kind=st.sampled_from(["tensor", "numpy", "list"]))
def test_where_forward(shp, seed, kind):
    sc, sa, sb = shp
    cond, mask = _condition(sc, seed, kind)
    a, b = make_values(sa, "real", seed), make_values(sb, "real", seed + 1)
    assert_close(ndl.where(cond, tensor(a), tensor(b)), np.where(mask, a, b))


@given(shp=broadcast_triples(max_side=3), seed=st.integers(0, 2**16))
def test_where_gradient(shp, seed):
    sc, sa, sb = shp
    cond, _ = _condition(sc, seed, "tensor")
    a, b = make_values(sa, "real", seed), make_values(sb, "real", seed + 1)
    assert gradcheck(lambda x, y: ndl.where(cond, x, y), tensor(a), tensor(b))


@given(shp=broadcast_triples(max_dims=2, max_side=3), seed=st.integers(0, 2**16))
def test_where_second_derivative(shp, seed):
    sc, sa, sb = shp
    cond, _ = _condition(sc, seed, "tensor")
    a, b = make_values(sa, "real", seed), make_values(sb, "real", seed + 1)
    assert gradgradcheck(lambda x, y: ndl.where(cond, x * y, y * y) ** 2, tensor(a), tensor(b))


def test_where_gradient_goes_to_the_picked_branch_only():
    x = tensor([-2.0, -0.5, 1.0, 3.0])
    y = ndl.where(x > 0, x * x, -x)  # the condition itself depends on x
    y.backward()
    assert_close(x.grad, [-1.0, -1.0, 2.0, 6.0])


def test_where_scalar_branches_take_the_tensor_dtype():
    x = ndl.Tensor(np.array([1.0, -2.0, 3.0], dtype=np.float32))
    y = ndl.where(x > 0, x, 0.0)
    assert y.dtype == np.float32
    assert_close(y, np.array([1.0, 0.0, 3.0], dtype=np.float32))
    z = ndl.where(np.array([True, False]), 1.5, -1.5)
    assert_close(z, [1.5, -1.5])
    y.sum().backward()
    assert_close(x.grad, np.array([1.0, 0.0, 1.0], dtype=np.float32))


def test_where_non_zero_condition_counts_as_true():
    cond = ndl.Tensor(np.array([0.0, 2.0, -1.0]), requires_grad=False)
    assert_close(ndl.where(cond, tensor([1.0, 1.0, 1.0]), tensor([0.0, 0.0, 0.0])),
                 [0.0, 1.0, 1.0])


# ----------------------------------------------------------------------------------------------
# clamp / clip

BOUNDS = st.sampled_from([(-0.5, 0.75), (None, 0.25), (-1.0, None), (1.0, -1.0), (0.0, 0.0)])


@given(x=shapes(0, 3).flatmap(lambda s: arrays(s, "real")), bounds=BOUNDS)
def test_clamp_forward(x, bounds):
    lo, hi = bounds
    want = x
    if lo is not None:
        want = np.maximum(want, lo)
    if hi is not None:
        want = np.minimum(want, hi)
    assert_close(ndl.clamp(tensor(x), lo, hi), want)
    assert_close(ndl.clip(tensor(x), lo, hi), want)
    assert_close(tensor(x).clamp(min=lo, max=hi), want)


@given(x=shapes(0, 3).flatmap(lambda s: arrays(s, "offgrid")), bounds=BOUNDS)
def test_clamp_gradient(x, bounds):
    # offgrid values stay 0.125 away from the (grid) bounds: finite differences never cross.
    lo, hi = bounds
    assert gradcheck(lambda a: ndl.clamp(a, lo, hi), tensor(x))


@given(x=shapes(0, 2, max_side=3).flatmap(lambda s: arrays(s, "offgrid")), bounds=BOUNDS)
def test_clamp_second_derivative(x, bounds):
    lo, hi = bounds
    assert gradgradcheck(lambda a: ndl.clamp(a, lo, hi) * a, tensor(x))


def test_clamp_gradient_is_one_on_the_bounds_like_pytorch():
    x = tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    ndl.clamp(x, -1.0, 1.0).sum().backward()
    assert_close(x.grad, [0.0, 1.0, 1.0, 1.0, 0.0])
    x = tensor([-2.0, 0.0, 2.0])
    ndl.clamp(x, 1.0, -1.0).sum().backward()  # min > max: all values are max, no gradient
    assert_close(x.grad, [0.0, 0.0, 0.0])


def test_clamp_keeps_float32_and_nan():
    x = ndl.Tensor(np.array([np.nan, -3.0, 3.0], dtype=np.float32))
    y = ndl.clamp(x, -1, 1)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), np.array([np.nan, -1.0, 1.0], dtype=np.float32))


# ----------------------------------------------------------------------------------------------
# min


@st.composite
def reduction_case(draw, kind, max_dims=3, max_side=4):
    x = draw(shapes(0, max_dims, max_side=max_side).flatmap(lambda s: arrays(s, kind)))
    return x, draw(axes_for(x.ndim)), draw(st.booleans())


@given(case=reduction_case("grid"))
def test_min_forward(case):
    x, axes, keepdims = case
    want = np.min(x, axis=np_axes(axes), keepdims=keepdims)
    assert_close(ndl.min(tensor(x), axes, keepdims), want)
    assert_close(ndl.min(tensor(x), dim=axes, keepdim=keepdims), want)
    assert_close(tensor(x).min(axes, keepdims=keepdims), want)


@given(case=reduction_case("distinct"))
def test_min_gradient(case):
    x, axes, keepdims = case
    assert gradcheck(lambda a: ndl.min(a, axes, keepdims), tensor(x))


@given(case=reduction_case("distinct", max_dims=2, max_side=3))
def test_min_second_derivative(case):
    x, axes, keepdims = case
    assert gradgradcheck(lambda a: ndl.min(a, axes, keepdims) ** 2, tensor(x))


def test_min_gradient_splits_ties_like_max():
    x = tensor([[1.0, -3.0, -3.0], [2.0, 0.0, 5.0]])
    ndl.min(x, axes=1).backward()
    assert_close(x.grad, [[0.0, 0.5, 0.5], [0.0, 1.0, 0.0]])
    y = tensor([[1.0, -3.0, -3.0], [2.0, 0.0, 5.0]])
    (-y).max(axes=1).backward()
    assert_close(y.grad, -x.grad.numpy())


# ----------------------------------------------------------------------------------------------
# var / std

CORRECTIONS = st.sampled_from([0, 1, 2, 0.5])


@st.composite
def var_case(draw, max_dims=3, max_side=4, kind="real"):
    x, axes, keepdims = draw(reduction_case(kind, max_dims, max_side))
    correction = draw(CORRECTIONS)
    count = int(np.prod([x.shape[i] for i in range(x.ndim)
                         if axes is None or i in np.atleast_1d(np.array(axes) % x.ndim)]))
    return x, axes, (correction if count > correction else 0), keepdims


@given(case=var_case())
def test_var_std_forward(case):
    x, axes, correction, keepdims = case
    ax = np_axes(axes)
    want = np.var(x, axis=ax, ddof=correction, keepdims=keepdims)
    assert_close(ndl.var(tensor(x), axes, correction, keepdims), want)
    assert_close(tensor(x).var(dim=axes, correction=correction, keepdim=keepdims), want)
    want_std = np.std(x, axis=ax, ddof=correction, keepdims=keepdims)
    assert_close(ndl.std(tensor(x), axes, correction, keepdims), want_std)
    assert_close(tensor(x).std(axes, correction, keepdims), want_std)


@given(case=var_case())
def test_var_std_gradient(case):
    x, axes, correction, keepdims = case
    assert gradcheck(lambda a: ndl.var(a, axes, correction, keepdims), tensor(x))
    assert gradcheck(lambda a: ndl.std(a, axes, correction, keepdims), tensor(x))


@given(case=var_case(max_dims=2, max_side=3))
def test_var_std_second_derivative(case):
    x, axes, correction, keepdims = case
    assert gradgradcheck(lambda a: ndl.var(a, axes, correction, keepdims) ** 2, tensor(x))
    assert gradgradcheck(lambda a: ndl.std(a, axes, correction, keepdims) ** 3, tensor(x))


def test_var_default_correction_is_one_like_pytorch():
    x = np.array([[1.0, 2.0, 4.0], [3.0, 3.0, 9.0]])
    assert_close(ndl.var(tensor(x)), np.var(x, ddof=1))
    assert_close(ndl.std(tensor(x), 1), np.std(x, axis=1, ddof=1))


def test_var_is_two_pass_accurate_under_a_large_offset():
    noise = np.random.default_rng(0).standard_normal(1000)
    x = 1e9 + noise
    want = np.var(noise, ddof=1)  # the offset does not change the variance
    assert_close(ndl.var(tensor(x)), want, rtol=1e-6)
    naive = (np.mean(x * x) - np.mean(x) ** 2) * 1000 / 999  # one pass: cancels away
    assert abs(naive - want) > 0.1 * want


def test_std_gradient_is_zero_for_constant_input_like_pytorch():
    x = tensor([[2.0, 2.0, 2.0], [1.0, 2.0, 3.0]])
    ndl.std(x, axes=1).sum().backward()
    grad = x.grad.numpy()
    assert np.isfinite(grad).all()
    assert_close(grad[0], [0.0, 0.0, 0.0])
    assert_close(grad[1], [-0.5, 0.0, 0.5])
    # float32 whose mean rounds (3 * v / 3 != v): still exactly 0, with a zero gradient.
    v = np.float32(3.5731368)
    assert np.float32(np.float32(v * 3) / 3) != v
    y = ndl.Tensor(np.full((3, 2), v, dtype=np.float32))
    s = ndl.std(y, 0)
    np.testing.assert_array_equal(s.numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(ndl.var(y, 0).numpy(), [0.0, 0.0])
    s.sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), np.zeros((3, 2), dtype=np.float32))


# ----------------------------------------------------------------------------------------------
# sin / cos

TRIG = [("sin", ndl.sin, np.sin), ("cos", ndl.cos, np.cos),
        ("sin_method", lambda a: a.sin(), np.sin), ("cos_method", lambda a: a.cos(), np.cos)]
TRIG_PARAMS = [pytest.param(fn, ref, id=name) for name, fn, ref in TRIG]


@pytest.mark.parametrize("fn, ref", TRIG_PARAMS)
@given(x=shapes(0, 3).flatmap(lambda s: arrays(s, "real")))
def test_trig_forward_and_gradient(fn, ref, x):
    assert_close(fn(tensor(x)), ref(x))
    assert gradcheck(fn, tensor(x))


@pytest.mark.parametrize("fn, ref", TRIG_PARAMS)
@given(x=shapes(0, 2, max_side=3).flatmap(lambda s: arrays(s, "real")))
def test_trig_second_derivative(fn, ref, x):
    assert gradgradcheck(lambda a: fn(a) * fn(a), tensor(x))


def test_trig_large_arguments():
    x = np.array([1e6, -1e6, 3.5e3], dtype=np.float64)
    assert_close(ndl.sin(tensor(x)), np.sin(x))
    assert_close(ndl.cos(tensor(x)), np.cos(x))


# ----------------------------------------------------------------------------------------------
# concatenate / cat


@st.composite
def concat_case(draw, max_dims=3, max_side=3, max_n=3):
    base = draw(shapes(1, max_dims, max_side=max_side))
    axis = draw(st.integers(-len(base), len(base) - 1))
    n = draw(st.integers(1, max_n))
    sizes = draw(st.lists(st.integers(0, max_side), min_size=n, max_size=n))
    if sum(sizes) == 0:
        sizes[0] = 1
    parts = []
    for k, size in enumerate(sizes):
        shape = list(base)
        shape[axis] = size
        parts.append(make_values(tuple(shape), "real", draw(st.integers(0, 2**16)) + k))
    return parts, axis


@given(case=concat_case())
def test_concatenate_forward(case):
    parts, axis = case
    want = np.concatenate(parts, axis=axis)
    assert_close(ndl.concatenate([tensor(p) for p in parts], axis), want)
    assert_close(ndl.cat([tensor(p) for p in parts], dim=axis), want)
    assert_close(ndl.cat(tuple(tensor(p) for p in parts), axis), want)


@given(case=concat_case())
def test_concatenate_gradient(case):
    parts, axis = case
    assert gradcheck(lambda *xs: ndl.cat(list(xs), axis), *[tensor(p) for p in parts])


@given(case=concat_case(max_dims=2, max_side=2))
def test_concatenate_second_derivative(case):
    parts, axis = case
    assert gradgradcheck(lambda *xs: ndl.cat([x * x for x in xs], axis) ** 2,
                         *[tensor(p) for p in parts])


def test_concatenate_gradient_slices_back_with_each_dtype():
    a = ndl.Tensor(np.ones((2, 1), dtype=np.float32))
    b = ndl.Tensor(np.ones((2, 3)), dtype="float64")
    out = ndl.cat([a, b], 1)
    assert out.dtype == np.float64 and out.shape == (2, 4)
    g = np.arange(8.0).reshape(2, 4)
    out.backward(ndl.Tensor(g, dtype="float64"))
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    assert_close(a.grad, g[:, :1].astype(np.float32))
    assert_close(b.grad, g[:, 1:])


def test_concatenate_input_used_twice_accumulates():
    x = tensor([1.0, 2.0])
    ndl.cat([x, x * 3, x], 0).sum().backward()
    assert_close(x.grad, [5.0, 5.0])


# ----------------------------------------------------------------------------------------------
# squeeze / unsqueeze


@st.composite
def squeeze_case(draw):
    shape = draw(shapes(0, 4, min_side=1, max_side=3))
    ones = [i for i, d in enumerate(shape) if d == 1]
    if ones and draw(st.booleans()):
        picked = draw(st.lists(st.sampled_from(ones), min_size=1, max_size=len(ones),
                               unique=True))
        axis = picked[0] - len(shape) if len(picked) == 1 else tuple(picked)
    else:
        axis = None
    return make_values(shape, "real", draw(st.integers(0, 2**16))), axis


@given(case=squeeze_case())
def test_squeeze_forward_and_gradient(case):
    x, axis = case
    want = np.squeeze(x, axis=axis)
    assert_close(ndl.squeeze(tensor(x), axis), want)
    assert_close(tensor(x).squeeze(dim=axis), want)
    assert gradcheck(lambda a: ndl.squeeze(a, axis) ** 2, tensor(x))


@st.composite
def unsqueeze_case(draw):
    shape = draw(shapes(0, 3, max_side=3))
    n_new = draw(st.integers(1, 2))
    out_ndim = len(shape) + n_new
    picked = draw(st.lists(st.integers(0, out_ndim - 1), min_size=n_new, max_size=n_new,
                           unique=True))
    axes = tuple(ax - out_ndim if draw(st.booleans()) else ax for ax in picked)
    return make_values(shape, "real", draw(st.integers(0, 2**16))), (
        axes[0] if n_new == 1 else axes)


@given(case=unsqueeze_case())
def test_unsqueeze_forward_and_gradient(case):
    x, axis = case
    want = np.expand_dims(x, axis)
    assert_close(ndl.unsqueeze(tensor(x), axis), want)
    assert_close(tensor(x).unsqueeze(dim=axis), want)
    assert gradcheck(lambda a: ndl.unsqueeze(a, axis) ** 2, tensor(x))


def test_squeeze_unsqueeze_second_derivative():
    x = make_values((2, 1, 3), "real", 0)
    assert gradgradcheck(lambda a: ndl.unsqueeze(ndl.squeeze(a, 1) ** 3, -1), tensor(x))
    assert ndl.squeeze(tensor(5.0)).shape == ()
    assert ndl.unsqueeze(tensor(5.0), 0).shape == (1,)


# ----------------------------------------------------------------------------------------------
# argmax / argmin


@st.composite
def arg_case(draw):
    x = draw(shapes(0, 3).flatmap(lambda s: arrays(s, "int")))  # ties on purpose
    axis = None if x.ndim == 0 else draw(st.one_of(st.none(), st.integers(-x.ndim,
                                                                          x.ndim - 1)))
    return x, axis, draw(st.booleans())


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(case=arg_case())
def test_argmax_argmin_forward(name, case):
    x, axis, keepdims = case
    want = getattr(np, name)(x, axis=axis, keepdims=keepdims)
    for out in (getattr(ndl, name)(tensor(x), axis, keepdims),
                getattr(ndl, name)(tensor(x), dim=axis, keepdim=keepdims),
                getattr(tensor(x), name)(axis, keepdims=keepdims)):
        got = out.numpy()
        assert got.shape == np.shape(want)
        np.testing.assert_array_equal(got, want)  # the first index at ties, as numpy
        assert not out.requires_grad and out.is_leaf()


def test_argmax_is_an_integer_constant():
    x = tensor([[0.5, 2.0, 2.0], [3.0, -1.0, 3.0]])
    idx = ndl.argmax(x, 1)
    np.testing.assert_array_equal(idx.numpy(), [1, 0])
    assert idx.dtype == np.int64  # on both backends: tensors hold the namespace's arrays
    # A constant inside a differentiated expression: the gradient ignores it.
    (x.sum(axes=1) * idx).sum().backward()
    assert_close(x.grad, [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    picked = ndl.gather(x, 1, ndl.unsqueeze(ndl.argmin(x, 1), 1))
    assert_close(picked, [[0.5], [-1.0]])


# ----------------------------------------------------------------------------------------------
# gather / take_along_axis / scatter_add


@st.composite
def gather_case(draw, max_dims=3, max_side=3):
    """(x, axis, index) with PyTorch's rule: index no larger than x outside ``axis``."""
    shape = draw(shapes(1, max_dims, max_side=max_side))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    ax = axis % len(shape)
    ishape = tuple(draw(st.integers(1, 4)) if d == ax else draw(st.integers(1, n))
                   for d, n in enumerate(shape))
    seed = draw(st.integers(0, 2**16))
    index = np.random.default_rng(seed).integers(0, shape[ax], ishape)
    return make_values(shape, "real", seed), axis, index


@st.composite
def take_case(draw, max_dims=3, max_side=3):
    """(x, axis, index) with numpy's rule: index broadcasts against x outside ``axis``."""
    shape = draw(shapes(1, max_dims, max_side=max_side))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    ax = axis % len(shape)
    xshape = tuple(1 if d != ax and draw(st.booleans()) else n for d, n in enumerate(shape))
    ishape = tuple(draw(st.integers(1, 4)) if d == ax else
                   (n if xshape[d] == 1 or draw(st.booleans()) else 1)
                   for d, n in enumerate(shape))
    seed = draw(st.integers(0, 2**16))
    n = xshape[ax]
    index = np.random.default_rng(seed).integers(-n, n, ishape)  # negative ones too
    return make_values(xshape, "real", seed), axis, index


@given(case=gather_case())
def test_gather_forward(case):
    x, axis, index = case
    want = np_gather(x, axis % x.ndim, index)
    assert_close(ndl.gather(tensor(x), axis, index), want)
    assert_close(ndl.gather(tensor(x), dim=axis, index=index_tensor(index)), want)
    assert_close(tensor(x).gather(axis, index), want)


@given(case=take_case())
def test_take_along_axis_forward(case):
    x, axis, index = case
    assert_close(ndl.take_along_axis(tensor(x), index_tensor(index), axis),
                 np.take_along_axis(x, index, axis))


@given(case=st.one_of(gather_case().map(lambda c: c + (True,)),
                      take_case().map(lambda c: c + (False,))))
def test_gather_gradient(case):
    x, axis, index, exact = case
    fn = ndl.gather if exact else (lambda a, ax, i: ndl.take_along_axis(a, i, ax))
    assert gradcheck(lambda a: fn(a, axis, index), tensor(x))


@given(case=st.one_of(gather_case(2, 3).map(lambda c: c + (True,)),
                      take_case(2, 3).map(lambda c: c + (False,))))
def test_gather_second_derivative(case):
    x, axis, index, exact = case
    fn = ndl.gather if exact else (lambda a, ax, i: ndl.take_along_axis(a, i, ax))
    assert gradgradcheck(lambda a: fn(a * a, axis, index) ** 2, tensor(x))


def test_gather_gradient_accumulates_repeated_indices():
    x = tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out = ndl.gather(x, 1, np.array([[2, 2, 0, 2], [1, 1, 1, 1]]))
    assert_close(out, [[3.0, 3.0, 1.0, 3.0], [5.0, 5.0, 5.0, 5.0]])
    out.sum().backward()
    assert_close(x.grad, [[1.0, 0.0, 3.0], [0.0, 4.0, 0.0]])


@given(case=gather_case())
def test_scatter_add_forward_gradient_and_second_derivative(case):
    x, axis, index = case
    src = make_values(index.shape, "real", 7)
    want = np_scatter_add(x, axis % x.ndim, index, src)
    assert_close(ndl.scatter_add(tensor(x), axis, index, tensor(src)), want)
    fn = lambda a, s: ndl.scatter_add(a, axis, index, s)  # noqa: E731
    assert gradcheck(fn, tensor(x), tensor(src))
    assert gradgradcheck(lambda a, s: fn(a * s.sum(), s * s) ** 2, tensor(x), tensor(src))


# ----------------------------------------------------------------------------------------------
# nn.Embedding on take_along_axis


def test_embedding_picks_rows_without_a_one_hot_matmul():
    emb = ndl.nn.Embedding(1000, 4, dtype="float64")
    ids = np.array([[3, 999], [3, 0], [17, 3]])
    out = emb(ndl.Tensor(ids, requires_grad=False))
    assert out.shape == (3, 2, 4)
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[ids])
    ops_used = {type(n.op).__name__ for n in ndl.autograd.find_topo_sort([out]) if n.op}
    assert "Gather" in ops_used and "MatMul" not in ops_used
    out.backward(ndl.Tensor(np.ones((3, 2, 4)), dtype="float64"))
    want = np.zeros((1000, 4))
    np.add.at(want, ids.reshape(-1), 1.0)
    assert_close(emb.weight.grad, want)


def test_embedding_second_derivative():
    emb = ndl.nn.Embedding(5, 3, dtype="float64")
    ids = ndl.Tensor(np.array([[0, 4], [4, 2]]), requires_grad=False)

    def lookup_cubed(w):
        emb.weight = w
        return emb(ids) ** 3

    assert gradgradcheck(lookup_cubed, tensor(emb.weight.numpy()))


# ----------------------------------------------------------------------------------------------
# Tensor methods and top-level names


def test_new_names_are_exported():
    for name in ["where", "clamp", "clip", "min", "var", "std", "sin", "cos", "concatenate",
                 "cat", "squeeze", "unsqueeze", "argmax", "argmin", "gather",
                 "take_along_axis", "scatter_add", "Where", "Clamp", "Min", "Var", "Std",
                 "Sin", "Cos", "Concatenate", "Squeeze", "Unsqueeze", "ArgMax", "ArgMin",
                 "Gather", "ScatterAdd"]:
        assert getattr(ndl, name) is getattr(ndl.ops, name), name


# ----------------------------------------------------------------------------------------------
# Graph mode: build on Variables, differentiate with graph.gradients, evaluate, compare with
# finite differences of the evaluated graph (first and second order)

rng = np.random.default_rng(11)
X34 = rng.uniform(-2, 2, (3, 4))
X14 = rng.uniform(-2, 2, (1, 4))
X34_DISTINCT = (rng.permutation(12).reshape(3, 4) - 6) * 0.25
X34_OFFGRID = rng.integers(-8, 8, (3, 4)) * 0.25 + 0.125
IDX = np.array([[0, 3], [2, 2], [1, 0]])
MASK = (rng.random((3, 1)) < 0.5).astype(np.float64)

GRAPH_CASES = {
    "where": (lambda x, y: ndl.where(ndl.Tensor(MASK, dtype="float64", requires_grad=False),
                                     x * y, y), [X34, X14]),
    "clamp": (lambda x: ndl.clamp(x, -0.5, 0.75) * x, [X34_OFFGRID]),
    "min": (lambda x: ndl.min(x, 1, keepdims=True) * x, [X34_DISTINCT]),
    "var": (lambda x: ndl.var(x, 0) * ndl.var(x, 1, correction=0).sum(), [X34]),
    "std": (lambda x: ndl.std(x, (0, 1)) * x, [X34]),
    "sin_cos": (lambda x: ndl.sin(x) * ndl.cos(x * x), [X34]),
    "cat": (lambda x, y: ndl.cat([x * x, y, x], 0), [X34, X14]),
    "squeeze_unsqueeze": (lambda x, y: ndl.unsqueeze(ndl.squeeze(y, 0), 0) * x * y, [X34, X14]),
    "gather": (lambda x: ndl.gather(x * x, 1, IDX), [X34]),
    "take_along_axis": (lambda x: ndl.take_along_axis(x * x, IDX[:, :1], 1) * x, [X34]),
    "scatter_add": (lambda x, s: ndl.scatter_add(x, 1, IDX, s * s) * x,
                    [X34, rng.uniform(-2, 2, (3, 2))]),
}


def _fd(evaluate, feeds: list, k: int, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(feeds[k])
    for j in range(feeds[k].size):
        plus = [f.copy() for f in feeds]
        minus = [f.copy() for f in feeds]
        plus[k].reshape(-1)[j] += eps
        minus[k].reshape(-1)[j] -= eps
        grad.reshape(-1)[j] = (evaluate(plus) - evaluate(minus)) / (2 * eps)
    return grad


@pytest.mark.parametrize("name", sorted(GRAPH_CASES))
def test_graph_mode_matches_finite_differences(name):
    fn, feeds = GRAPH_CASES[name]
    xs = [ad.Variable(f"x{k}") for k in range(len(feeds))]
    out = fn(*xs)
    assert out.cached_data is None  # a graph, not a value
    v = np.random.default_rng(1).standard_normal(fn(*[tensor(f) for f in feeds]).shape)
    y = (out * ndl.Tensor(v, dtype="float64", requires_grad=False)).sum()
    grads = ad.gradients(y, xs)
    us = [np.random.default_rng(2 + k).standard_normal(f.shape) for k, f in enumerate(feeds)]
    z = None
    for g, u in zip(grads, us):
        term = (g * ndl.Tensor(u, dtype="float64", requires_grad=False)).sum()
        z = term if z is None else z + term
    second = ad.gradients(z, xs)
    evaluator = ad.Evaluator([y, z, *grads, *second])

    def run(fs):
        return evaluator.run(dict(zip(xs, fs)))

    values = run(feeds)
    n = len(feeds)
    for k in range(n):
        assert_close(values[2 + k], _fd(lambda fs: run(fs)[0], feeds, k), rtol=1e-5, atol=1e-6)
        assert_close(values[2 + n + k], _fd(lambda fs: run(fs)[1], feeds, k), rtol=1e-4,
                     atol=1e-5)


def test_graph_mode_argmax_and_fed_index():
    x, i = ad.Variable("x"), ad.Variable("i")
    am = ndl.argmax(x, 1)
    picked = ndl.gather(x, 1, i)
    (g,) = ad.gradients(picked.sum(), [x])
    got_am, got_picked, got_g = ad.Evaluator([am, picked, g]).run({x: X34, i: IDX})
    np.testing.assert_array_equal(got_am, np.argmax(X34, 1))
    assert_close(got_picked, np.take_along_axis(X34, IDX, 1))
    want = np.zeros_like(X34)
    np.add.at(want, (np.arange(3)[:, None], IDX), 1.0)
    assert_close(got_g, want)


# ----------------------------------------------------------------------------------------------
# Errors: needle errors that name the op and the shapes


def T(*shape, requires_grad=True):
    return ndl.Tensor(np.ones(shape), dtype="float64", requires_grad=requires_grad)


MISUSE = {
    "where_shapes": (lambda: ndl.where(T(2, 1), T(3), T(4)), ShapeError,
                     "where: shapes (2, 1) (condition), (3,) and (4,)"),
    "clamp_no_bounds": (lambda: ndl.clamp(T(2)), DTypeError, "clamp: at least one"),
    "clamp_tensor_bound": (lambda: ndl.clamp(T(2), T(2)), DTypeError, "clamp: min must be"),
    "min_bad_axis": (lambda: ndl.min(T(2, 3), 2), ShapeError,
                     "min: axis 2 is out of range for a tensor of shape (2, 3)"),
    "min_empty": (lambda: ndl.min(T(0, 3)), ShapeError, "min: cannot reduce an empty"),
    "min_axes_and_dim": (lambda: ndl.min(T(2, 3), 0, dim=1), DTypeError,
                         "min: got both axes=0 and dim=1"),
    "var_dof": (lambda: ndl.var(T(1, 3), 0), ShapeError,
                "var: correction=1 needs more than 1 element(s) per reduction, got 1 over "
                "axes (0,) of shape (1, 3)"),
    "std_bad_correction": (lambda: ndl.std(T(3), correction="1"), DTypeError,
                           "std: correction must be a real number"),
    "var_bad_axis": (lambda: ndl.var(T(2, 3), (0, 0)), ShapeError, "var: repeated axis"),
    "cat_shapes": (lambda: ndl.cat([T(2, 3), T(3, 3)], 1), ShapeError,
                   "concatenate: tensor 1 has shape (3, 3), which does not match tensor 0's "
                   "shape (2, 3) outside axis 1"),
    "cat_ndim": (lambda: ndl.cat([T(2, 3), T(2)]), ShapeError, "tensor 1 has shape (2,)"),
    "cat_axis": (lambda: ndl.cat([T(2, 3), T(2, 3)], 2), ShapeError,
                 "concatenate: axis 2 is out of range for tensors of shape (2, 3)"),
    "cat_empty": (lambda: ndl.cat([]), ShapeError, "cat: needs at least one tensor"),
    "cat_0d": (lambda: ndl.cat([T(), T()]), ShapeError, "cannot join 0-d tensors"),
    "cat_not_list": (lambda: ndl.cat(T(2, 3)), DTypeError, "expects a list or tuple"),
    "cat_dim_and_axis": (lambda: ndl.cat([T(2)], 0, axis=0), DTypeError, "got both"),
    "squeeze_wide": (lambda: ndl.squeeze(T(2, 3), 1), ShapeError,
                     "squeeze: axis 1 of shape (2, 3) has size 3, not 1"),
    "squeeze_bad_axis": (lambda: ndl.squeeze(T(2, 1), 2), ShapeError, "squeeze: axis 2"),
    "unsqueeze_bad_axis": (lambda: ndl.unsqueeze(T(2, 3), 4), ShapeError,
                           "unsqueeze: axis 4 is out of range for inserting 1 axis/axes into "
                           "shape (2, 3) (valid: -3 to 2)"),
    "unsqueeze_no_axis": (lambda: ndl.unsqueeze(T(2)), ShapeError, "unsqueeze: needs"),
    "argmax_empty": (lambda: ndl.argmax(T(2, 0), 1), ShapeError,
                     "argmax: cannot take the argmax of an empty axis 1 (shape (2, 0))"),
    "argmin_bad_axis": (lambda: ndl.argmin(T(2, 3), -3), ShapeError,
                        "argmin: axis -3 is out of range for a tensor of shape (2, 3)"),
    "gather_out_of_range": (lambda: ndl.gather(T(2, 3), 1, np.array([[0, 3]])),
                            IndexOutOfRange, "gather: index 3 is out of range for dim 1 of "
                            "size 3 (input shape (2, 3), index shape (1, 2); valid: 0 to 2)"),
    "gather_negative": (lambda: ndl.gather(T(2, 3), 1, np.array([[-1]])), IndexOutOfRange,
                        "gather: index -1 is out of range"),
    "take_out_of_range": (lambda: ndl.take_along_axis(T(2, 3), np.array([[-4]]), 1),
                          IndexOutOfRange, "take_along_axis: index -4 is out of range for "
                          "dim 1 of size 3"),
    "gather_non_integer": (lambda: ndl.gather(T(2, 3), 1, np.array([[0.5]])), DTypeError,
                           "gather: index must hold integers, got 0.5"),
    "gather_ndim": (lambda: ndl.gather(T(2, 3), 1, np.array([0, 1])), ShapeError,
                    "gather: index must have as many dims as the input (input shape (2, 3), "
                    "index shape (2,))"),
    "gather_larger_index": (lambda: ndl.gather(T(2, 3), 1, np.zeros((3, 1), dtype=int)),
                            ShapeError, "gather: index size 3 cannot exceed the input's size "
                            "2 in dim 0"),
    "take_no_broadcast": (lambda: ndl.take_along_axis(T(2, 3), np.zeros((3, 1), dtype=int),
                                                      1),
                          ShapeError, "index size 3 cannot broadcast against the input's "
                          "size 2 in dim 0"),
    "gather_bad_axis": (lambda: ndl.gather(T(2, 3), 2, np.zeros((2, 3), dtype=int)),
                        ShapeError, "gather: axis 2 is out of range"),
    "scatter_src_shape": (lambda: ndl.scatter_add(T(2, 3), 1, np.zeros((2, 2), dtype=int),
                                                  T(2, 3)),
                          ShapeError, "scatter_add: src has shape (2, 3) but index (2, 2)"),
}


@pytest.mark.parametrize("name", sorted(MISUSE))
def test_misuse(name):
    fn, err, fragment = MISUSE[name]
    with pytest.raises(err) as info:
        fn()
    assert isinstance(info.value, NeedleError)
    assert fragment in str(info.value), f"{name}: message {str(info.value)!r}"


@pytest.mark.skipif(ndl.BACKEND != "np", reason="nd arrays hold floats only")
@pytest.mark.parametrize("fn, op", [(ndl.sin, "sin"), (ndl.cos, "cos"), (ndl.var, "var"),
                                    (ndl.std, "std")])
def test_float_only_ops_reject_integers(fn, op):
    x = ndl.Tensor(np.array([1, 2, 3]))
    assert x.dtype == np.int64
    with pytest.raises(DTypeError, match=rf"{op}: expects a floating-point tensor, got dtype "
                                         r"int64 \(shape \(3,\)\)"):
        fn(x)


@pytest.mark.skipif(ndl.BACKEND != "np", reason="nd arrays hold floats only")
def test_integer_tensors_in_min_clamp_where_cat_argmax():
    x = ndl.Tensor(np.array([[3, 1], [2, 5]]), requires_grad=False)
    np.testing.assert_array_equal(ndl.min(x, 0).numpy(), [2, 1])
    np.testing.assert_array_equal(ndl.clamp(x, 2, 4).numpy(), [[3, 2], [2, 4]])
    np.testing.assert_array_equal(ndl.where(x > 2, x, 0).numpy(), [[3, 0], [0, 5]])
    assert ndl.cat([x, x], 1).dtype == np.int64
    assert ndl.argmax(x).numpy() == 3


def test_graph_mode_error_names_the_node():
    x, i = ad.Variable("x"), ad.Variable("i")
    y = ndl.gather(x, 1, i)
    with pytest.raises(IndexOutOfRange, match=r"gather: index 7 .*\[in graph node"):
        ad.Evaluator([y]).run({x: X34, i: np.array([[7]])})
