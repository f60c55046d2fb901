"""Tests of needle.backend_ndarray: NDArray views, kernels and the numpy fast path."""

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from needle import backend_ndarray as nd

DTYPES = ["float32", "float64"]
TOL = {"float32": 1e-5, "float64": 1e-12}
DEVICES = [nd.cpu(), nd.cpu_numpy()]

SETTINGS = settings(max_examples=30, deadline=None)

dtypes = st.sampled_from(DTYPES)
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


def np_strides(a: np.ndarray) -> tuple:
    return tuple(s // a.itemsize for s in a.strides)


def close(actual, expected, dtype):
    np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype])


@st.composite
def slices_for(draw, shape):
    """One slice or int per axis, negative steps and indices included."""
    out = []
    for dim in shape:
        if draw(st.booleans()):
            out.append(draw(st.integers(-dim, dim - 1)))
        else:
            start = draw(st.none() | st.integers(-dim, dim))
            stop = draw(st.none() | st.integers(-dim - 1, dim + 1))
            step = draw(st.none() | st.sampled_from([1, 2, 3, -1, -2]))
            out.append(slice(start, stop, step))
    return tuple(out)


def np_index(idxs):
    """numpy equivalent of NDArray indexing: ints keep their axis."""
    return tuple(slice(i, (i + 1) or None, 1) if isinstance(i, int) else i for i in idxs)


@st.composite
def arrays(draw, min_dims=1):
    """(numpy array, NDArray) pairs, often not compact: permuted, sliced or broadcast."""
    dtype = draw(dtypes)
    shape = draw(st.lists(st.integers(1, 5), min_size=min_dims, max_size=4).map(tuple))
    seed = draw(st.integers(0, 2**16))
    base = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    device = draw(st.sampled_from(DEVICES))
    a_nd = nd.array(base, dtype=dtype, device=device)
    a_np = base
    kind = draw(st.sampled_from(["compact", "permute", "slice", "broadcast"]))
    if kind == "permute":
        axes = tuple(draw(st.permutations(range(len(shape)))))
        a_np, a_nd = a_np.transpose(axes), a_nd.permute(axes)
    elif kind == "slice":
        idx = tuple(slice(None, None, draw(st.sampled_from([1, 2, -1, -2]))) for _ in shape)
        a_np, a_nd = a_np[idx], a_nd[idx]
    elif kind == "broadcast":
        new_shape = tuple(3 if d == 1 else d for d in shape)
        a_np, a_nd = np.broadcast_to(a_np, new_shape), a_nd.broadcast_to(new_shape)
    return a_np, a_nd, dtype


# ------------------------------------------------------------------ devices
def test_devices():
    assert str(nd.cpu()) == "cpu()" and repr(nd.cuda()) == "cuda()"
    assert nd.cpu() == nd.cpu() and nd.cpu() != nd.cpu_numpy()
    assert hash(nd.cpu()) == hash(nd.BackendDevice("cpu", None))
    assert nd.cpu().enabled() and nd.cpu_numpy().enabled() and not nd.cuda().enabled()
    assert nd.all_devices() == [nd.cpu(), nd.cuda(), nd.cpu_numpy()]
    assert nd.default_device() == nd.cpu_numpy()
    assert nd.cpu().__tile_size__ == 8 and hasattr(nd.cpu(), "matmul_tiled")
    assert not hasattr(nd.cuda(), "ewise_add")
    assert copy.deepcopy(nd.cpu()) == nd.cpu()
    assert pickle.loads(pickle.dumps(nd.cpu_numpy())).enabled()


@pytest.mark.parametrize("dtype", DTYPES)
def test_device_random_uses_global_rng_in_one_call(dtype):
    np.random.seed(7)
    expected_n = np.random.randn(3, 4).astype(dtype)
    expected_u = np.random.rand(2, 5).astype(dtype)
    np.random.seed(7)
    got_n = nd.cpu().randn(3, 4, dtype=dtype)
    got_u = nd.cpu().rand(2, 5, dtype=dtype)
    assert got_n.dtype == dtype and got_u.dtype == dtype
    np.testing.assert_array_equal(got_n.numpy(), expected_n)
    np.testing.assert_array_equal(got_u.numpy(), expected_u)


def test_device_constructors():
    dev = nd.cpu()
    oh = dev.one_hot(4, np.array([2, 0, 3]), dtype="float64")
    np.testing.assert_array_equal(oh.numpy(), np.eye(4)[[2, 0, 3]])
    assert oh.dtype == "float64" and oh.device == dev
    np.testing.assert_array_equal(dev.one_hot(3, [1]).numpy(), [[0, 1, 0]])
    assert dev.empty((2, 3)).shape == (2, 3)
    np.testing.assert_array_equal(dev.full((2, 2), 1.5).numpy(), np.full((2, 2), 1.5))
    np.testing.assert_array_equal(dev.zeros(2, 3).numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(dev.ones(2, dtype="float64").numpy(), np.ones(2))
    f = nd.full((3,), 2.0, dtype="float64", device=nd.cpu_numpy())
    assert f.dtype == np.float64 and f.device == nd.cpu_numpy()
    assert nd.empty((1, 2)).device == nd.default_device()


def test_cuda_unavailable_errors():
    with pytest.raises(AttributeError, match="not enabled"):
        nd.array([1.0], device=nd.cuda())


# ------------------------------------------------------------------- dtypes
def test_dtype_rules():
    assert nd.array([1, 2]).dtype == np.float32
    assert nd.array(np.ones(2)).dtype == "float32"
    assert nd.array(np.ones(2), dtype=None).dtype == "float32"
    assert nd.array(np.ones(2), dtype=np.float64).dtype == "float64"
    assert nd.array(np.ones(2), dtype=np.dtype("float64")).dtype == "float64"
    assert nd.NDArray(np.ones(2)).dtype == "float64"
    assert nd.NDArray(np.ones(2, np.int64)).dtype == "float32"
    assert nd.NDArray([1.0, 2.0]).dtype == "float32"
    for bad in ["int32", np.int64, "float16", "bogus"]:
        with pytest.raises(TypeError, match="float32"):
            nd.array([1.0], dtype=bad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_results_keep_dtype(dtype):
    a = nd.array(np.arange(1.0, 17.0).reshape(4, 4), dtype=dtype)
    results = [a + a, a + 1, 1 - a, a * 2, a / a, 2 / a, a**2, -a, a.maximum(3.0)]
    results += [a == a, a >= 2, a != 2, a > a, a < 2, a <= a, a.log(), a.exp(), a.tanh()]
    results += [a @ a, a[:3, :3] @ a[:3, :2], a.sum(), a.max(axis=0), a.flip(0)]
    results += [a.pad(((1, 1), (0, 0))), a.compact(), a.permute((1, 0)).compact()]
    assert all(r.dtype == dtype for r in results)


# ----------------------------------------------------- views share the buffer
@SETTINGS
@given(shape=shapes, dtype=dtypes)
def test_views_share_buffer(shape, dtype):
    a = nd.array(np.random.randn(*shape), dtype=dtype)
    ptr = a._handle.ptr()
    n = len(shape)
    views = [
        a.reshape((a.size,)),
        a.reshape((-1, 1)),
        a.permute(tuple(reversed(range(n)))),
        a.broadcast_to((2, *shape)),
        a[tuple(slice(None, None, -1) for _ in shape)],
        a[(0,) * n],
        a.as_strided(shape, a.strides),
    ]
    for v in views:
        assert v._handle is a._handle and v._handle.ptr() == ptr
        assert np.shares_memory(v._np, a._np)


@SETTINGS
@given(shape=shapes, dtype=dtypes, data=st.data())
def test_strides_match_numpy(shape, dtype, data):
    base = np.random.randn(*shape).astype(dtype)
    a = nd.array(base, dtype=dtype)
    assert a.strides == np_strides(base) == nd.NDArray.compact_strides(shape)
    assert a.is_compact()
    axes = tuple(data.draw(st.permutations(range(len(shape)))))
    p = a.permute(axes)
    assert p.strides == np_strides(base.transpose(axes))
    assert p.shape == base.transpose(axes).shape


def test_make_and_as_strided():
    a = nd.NDArray.make((2, 3))
    assert a.shape == (2, 3) and a.strides == (3, 1) and a._offset == 0
    assert a.dtype == "float32" and a.device == nd.default_device() and a.ndim == 2
    b = nd.NDArray.make((2, 3), strides=(1, 2), handle=a._handle, offset=0)
    assert b._handle is a._handle and not b.is_compact()
    c = nd.array(np.arange(6.0)).as_strided((2, 2), (1, 2))
    np.testing.assert_array_equal(c.numpy(), [[0, 2], [1, 3]])
    with pytest.raises(ValueError, match="strides"):
        a.as_strided((2, 3), (1,))


# ----------------------------------------------------------- compact / numpy
@SETTINGS
@given(pair=arrays())
def test_compact_and_numpy_match(pair):
    a_np, a_nd, dtype = pair
    assert a_nd.shape == a_np.shape
    np.testing.assert_array_equal(a_nd.numpy(), a_np)
    np.testing.assert_array_equal(a_nd._np, a_np)
    c = a_nd.compact()
    assert c.is_compact() and c.strides == nd.NDArray.compact_strides(a_np.shape)
    np.testing.assert_array_equal(c.numpy(), a_np)
    if a_nd.is_compact():
        assert c is a_nd
    else:
        assert c._handle is not a_nd._handle


def test_numpy_is_a_copy():
    a = nd.array([1.0, 2.0])
    a.numpy()[0] = 5.0
    assert a.numpy()[0] == 1.0


def test_repr_and_array_protocol():
    a = nd.array([[1.0, 2.0]])
    assert repr(a).startswith("NDArray([[1. 2.]]") and repr(a).endswith("device=cpu_numpy())")
    np.testing.assert_array_equal(np.asarray(a), [[1.0, 2.0]])
    r = np.float32(2.0) * a
    assert isinstance(r, nd.NDArray)


def test_to_device_and_copy_constructor():
    a = nd.array([1.0, 2.0], device=nd.cpu())
    assert a.to(nd.cpu()) is a
    b = a.to(nd.cpu_numpy())
    assert b.device == nd.cpu_numpy() and b._handle is not a._handle
    np.testing.assert_array_equal(b.numpy(), a.numpy())
    c = nd.NDArray(a[::-1])
    assert c.device == nd.cpu() and c._handle is not a._handle
    np.testing.assert_array_equal(c.numpy(), [2.0, 1.0])


# ------------------------------------------------------------------ getitem
@SETTINGS
@given(shape=shapes, dtype=dtypes, data=st.data())
def test_getitem_matches_numpy(shape, dtype, data):
    base = np.random.randn(*shape).astype(dtype)
    a = nd.array(base, dtype=dtype)
    idxs = data.draw(slices_for(shape))
    v = a[idxs]
    expected = base[np_index(idxs)]
    assert v.shape == expected.shape and v.ndim == len(shape)
    assert v._handle is a._handle
    np.testing.assert_array_equal(v.numpy(), expected)
    np.testing.assert_array_equal(v._np, expected)
    # Second-level views on a non-compact view.
    v2 = v[tuple(slice(None, None, -1) for _ in shape)]
    np.testing.assert_array_equal(v2.numpy(), expected[tuple(slice(None, None, -1) for _ in shape)])


def test_getitem_ints_keep_axes_and_partial_index():
    a = nd.array(np.arange(24.0).reshape(2, 3, 4))
    assert a[1, 2, 3].shape == (1, 1, 1) and a[1, 2, 3].numpy().item() == 23.0
    assert a[-1].shape == (1, 3, 4)
    np.testing.assert_array_equal(a[..., -1].numpy(), np.arange(24.0).reshape(2, 3, 4)[..., -1:])


def test_getitem_out_of_range():
    a = nd.array(np.zeros((2, 3)))
    with pytest.raises(IndexError, match="axis 1 with size 3"):
        a[0, 3]
    with pytest.raises(IndexError, match="axis 0"):
        a[-3]
    with pytest.raises(IndexError, match="too many"):
        a[0, 0, 0]
    with pytest.raises(TypeError):
        a[0.5]


class _ShapeAndSlices(nd.NDArray):
    """How course tests build (shape, slices) pairs through process_slice."""

    def __getitem__(self, idxs):
        idxs = tuple(
            self.process_slice(s, i) if isinstance(s, slice) else slice(s, s + 1, 1)
            for i, s in enumerate(idxs)
        )
        return self.shape, idxs


@SETTINGS
@given(shape=shapes, data=st.data())
def test_process_slice_is_reusable(shape, data):
    base = np.arange(float(np.prod(shape))).reshape(shape)
    sls = tuple(
        slice(
            data.draw(st.none() | st.integers(-6, 6)),
            data.draw(st.none() | st.integers(-7, 7)),
            data.draw(st.none() | st.sampled_from([1, 2, -1, -3])),
        )
        for _ in shape
    )
    got_shape, processed = _ShapeAndSlices(np.ones(shape))[sls]
    assert got_shape == shape
    assert all(isinstance(s.start, int) and isinstance(s.step, int) for s in processed)
    a = nd.array(base)
    np.testing.assert_array_equal(a[processed].numpy(), base[sls])
    twice = tuple(a.process_slice(s, i) for i, s in enumerate(processed))
    assert twice == processed


# ------------------------------------------------------------------ setitem
@SETTINGS
@given(shape=shapes, dtype=dtypes, data=st.data())
def test_setitem_in_place(shape, dtype, data):
    base = np.random.randn(*shape).astype(dtype)
    a = nd.array(base, dtype=dtype)
    ptr = a._handle.ptr()
    idxs = data.draw(slices_for(shape))
    np_idx = np_index(idxs)
    target_shape = base[np_idx].shape
    src = np.random.randn(*target_shape).astype(dtype)
    # The source is a non-compact (reversed) view, to exercise compact().
    src_nd = nd.array(src[tuple(slice(None, None, -1) for _ in shape)], dtype=dtype)
    src_nd = src_nd[tuple(slice(None, None, -1) for _ in shape)]
    a[idxs] = src_nd
    base[np_idx] = src
    assert a._handle.ptr() == ptr
    assert a.strides == np_strides(base)
    np.testing.assert_array_equal(a.numpy(), base)
    a[idxs] = 0.5
    base[np_idx] = 0.5
    assert a._handle.ptr() == ptr
    np.testing.assert_array_equal(a.numpy(), base)


def test_setitem_broadcast_overlap_and_errors():
    a = nd.array(np.arange(12.0).reshape(3, 4))
    a[:, :] = nd.array([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(a.numpy(), np.tile([1.0, 2.0, 3.0, 4.0], (3, 1)))
    b = nd.array(np.arange(6.0))
    b[1:6] = b[0:5]
    np.testing.assert_array_equal(b.numpy(), [0, 0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"\(2,\).*\(3, 4\)"):
        a[:, :] = nd.array([1.0, 2.0])


def test_fill_on_views_only_touches_the_view():
    a = nd.array(np.zeros((3, 4)))
    a[1:, ::2].fill(7.0)
    expected = np.zeros((3, 4))
    expected[1:, ::2] = 7.0
    np.testing.assert_array_equal(a.numpy(), expected)
    a.fill(1.0)
    np.testing.assert_array_equal(a.numpy(), np.ones((3, 4)))


# ------------------------------------------------------------ reshape & co.
@SETTINGS
@given(pair=arrays())
def test_reshape_broadcast_permute(pair):
    a_np, a_nd, dtype = pair
    c = a_nd.compact()
    flat = c.reshape((-1,))
    np.testing.assert_array_equal(flat.numpy(), a_np.reshape(-1))
    assert flat._handle is c._handle
    np.testing.assert_array_equal(nd.reshape(c, (1, a_np.size)).numpy(), a_np.reshape(1, -1))
    b = nd.broadcast_to(a_nd, (2, *a_np.shape))
    np.testing.assert_array_equal(b.numpy(), np.broadcast_to(a_np, (2, *a_np.shape)))
    assert b.strides[0] == 0


def test_reshape_errors():
    a = nd.array(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        a.reshape((4, 2))
    with pytest.raises(ValueError, match="compact"):
        a.permute((1, 0)).reshape((6,))
    with pytest.raises(ValueError, match="-1"):
        a.reshape((-1, -1))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, -1\)"):
        a.reshape((4, -1))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 3\)"):
        a.broadcast_to((4, 3))
    with pytest.raises(ValueError, match="permutation"):
        a.permute((0, 0))


# ---------------------------------------------------- element-wise & compare
BINARY = [
    ("add", lambda x, y: x + y),
    ("sub", lambda x, y: x - y),
    ("mul", lambda x, y: x * y),
    ("div", lambda x, y: x / y),
    ("maximum", lambda x, y: x.maximum(y) if isinstance(x, nd.NDArray) else np.maximum(x, y)),
    ("eq", lambda x, y: x == y),
    ("ne", lambda x, y: x != y),
    ("ge", lambda x, y: x >= y),
    ("gt", lambda x, y: x > y),
    ("lt", lambda x, y: x < y),
    ("le", lambda x, y: x <= y),
]


@pytest.mark.parametrize("name,fn", BINARY, ids=[b[0] for b in BINARY])
@SETTINGS
@given(pair=arrays())
def test_binary_ops_match_numpy(name, fn, pair):
    a_np, a_nd, dtype = pair
    # Second operand: a permuted-then-permuted-back copy with some equal entries.
    b_np = np.where(np.arange(a_np.size).reshape(a_np.shape) % 3 == 0, a_np, a_np * 0.5 + 1)
    b_np = b_np.astype(dtype)
    b_nd = nd.array(b_np, dtype=dtype)
    got = fn(a_nd, b_nd)
    assert got.dtype == dtype and got.shape == a_np.shape
    close(got.numpy(), np.asarray(fn(a_np, b_np), dtype=dtype), dtype)
    got_s = fn(a_nd, 0.25)
    close(got_s.numpy(), np.asarray(fn(a_np, 0.25), dtype=dtype), dtype)


@SETTINGS
@given(pair=arrays())
def test_unary_and_scalar_ops_match_numpy(pair):
    a_np, a_nd, dtype = pair
    pos_np = np.abs(a_np) + 0.5
    pos_nd = nd.array(pos_np, dtype=dtype)
    close(nd.log(pos_nd).numpy(), np.log(pos_np), dtype)
    close(nd.exp(a_nd).numpy(), np.exp(a_np), dtype)
    close(nd.tanh(a_nd).numpy(), np.tanh(a_np), dtype)
    close((pos_nd**1.5).numpy(), pos_np**1.5, dtype)
    close((-a_nd).numpy(), -a_np, dtype)
    close((2.0 - a_nd).numpy(), 2.0 - a_np, dtype)
    close((3.0 / pos_nd).numpy(), 3.0 / pos_np, dtype)
    close((1.0 + a_nd).numpy(), 1.0 + a_np, dtype)
    close((2.0 * a_nd).numpy(), 2.0 * a_np, dtype)
    close(nd.maximum(a_nd, 0.0).numpy(), np.maximum(a_np, 0.0), dtype)


def test_comparisons_are_zero_one_floats():
    a = nd.array([1.0, 2.0, 3.0])
    b = nd.array([3.0, 2.0, 1.0])
    for got, want in [
        (a == b, [0, 1, 0]),
        (a >= b, [0, 1, 1]),
        (a != b, [1, 0, 1]),
        (a > b, [0, 0, 1]),
        (a < b, [1, 0, 0]),
        (a <= b, [1, 1, 0]),
    ]:
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.numpy(), want)


def test_elementwise_shape_mismatch():
    a, b = nd.array(np.zeros((2, 3))), nd.array(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(3, 2\)"):
        a + b
    with pytest.raises(ValueError, match=r"mul: shapes"):
        a * b
    with pytest.raises(TypeError, match="power"):
        a**a


# ------------------------------------------------------------------- matmul
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,p", [(8, 8, 8), (16, 24, 8), (3, 5, 7), (1, 1, 1), (16, 9, 16)])
def test_matmul_matches_numpy(m, n, p, dtype):
    rng = np.random.default_rng(m * 100 + n * 10 + p)
    A, B = rng.standard_normal((m, n)).astype(dtype), rng.standard_normal((n, p)).astype(dtype)
    got = nd.array(A, dtype=dtype, device=nd.cpu()) @ nd.array(B, dtype=dtype, device=nd.cpu())
    close(got.numpy(), A @ B, dtype)
    assert got.shape == (m, p) and got.dtype == dtype
    # Non-compact operands: transposed views.
    got_t = nd.array(B.T.copy(), dtype=dtype).permute((1, 0))
    close((nd.array(A, dtype=dtype) @ got_t).numpy(), A @ B, dtype)


@pytest.mark.parametrize("m,n,p", [(1, 1, 1), (2, 3, 4), (3, 1, 2)])
def test_matmul_tiled_kernel_directly(m, n, p):
    device = nd.cpu()
    t = device.__tile_size__
    A = nd.array(np.random.randn(m, n, t, t), device=device)
    B = nd.array(np.random.randn(n, p, t, t), device=device)
    C = nd.NDArray.make((m, p, t, t), device=device)
    device.matmul_tiled(A._handle, B._handle, C._handle, m * t, n * t, p * t)
    lhs = A.numpy().transpose(0, 2, 1, 3).reshape(m * t, n * t)
    rhs = B.numpy().transpose(0, 2, 1, 3).reshape(n * t, p * t)
    out = C.numpy().transpose(0, 2, 1, 3).reshape(m * t, p * t)
    np.testing.assert_allclose(out, lhs @ rhs, rtol=1e-4, atol=1e-4)


def test_matmul_errors():
    a = nd.array(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\).*3 != 4"):
        a @ nd.array(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="2-D"):
        a @ nd.array(np.zeros((3, 2, 1)))


# --------------------------------------------------------------- reductions
@SETTINGS
@given(pair=arrays(), keepdims=st.booleans(), data=st.data())
def test_reductions_match_numpy(pair, keepdims, data):
    a_np, a_nd, dtype = pair
    ndim = a_np.ndim
    axis = data.draw(
        st.none()
        | st.integers(-ndim, ndim - 1)
        | st.integers(0, ndim - 1).map(lambda i: (i,))
        | st.sets(st.integers(0, ndim - 1), min_size=1).map(tuple)
    )
    for ours, theirs in [(a_nd.sum, np.sum), (a_nd.max, np.max)]:
        got = ours(axis=axis, keepdims=keepdims)
        want = theirs(a_np.astype(np.float64), axis=axis, keepdims=keepdims)
        if axis is None and not keepdims:
            want = np.reshape(want, (1,))
        assert got.shape == want.shape and got.dtype == dtype
        tol = 1e-4 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(got.numpy(), want, rtol=tol, atol=tol)
    got = nd.sum(a_nd, axis=axis, keepdims=keepdims)
    np.testing.assert_array_equal(got.numpy(), a_nd.sum(axis=axis, keepdims=keepdims).numpy())


def test_reduce_view_out_layout():
    a = nd.array(np.arange(24.0).reshape(2, 3, 4))
    view, out = a.reduce_view_out(1)
    assert view.shape == (2, 4, 3) and out.shape == (2, 4)
    view, out = a.reduce_view_out(1, keepdims=True)
    assert out.shape == (2, 1, 4)
    view, out = a.reduce_view_out(None)
    assert view.shape == (1, 1, 24) and out.shape == (1,)
    assert a.reduce_view_out(None, keepdims=True)[1].shape == (1, 1, 1)
    with pytest.raises(ValueError, match="axis 3"):
        a.sum(axis=3)


# ---------------------------------------------------------------- flip / pad
@SETTINGS
@given(pair=arrays(), data=st.data())
def test_flip_matches_numpy(pair, data):
    a_np, a_nd, dtype = pair
    axes = tuple(data.draw(st.sets(st.integers(0, a_np.ndim - 1))))
    got = nd.flip(a_nd, axes)
    assert got.is_compact() and got._handle is not a_nd._handle
    np.testing.assert_array_equal(got.numpy(), np.flip(a_np, axes))


@SETTINGS
@given(pair=arrays(), data=st.data())
def test_pad_matches_numpy(pair, data):
    a_np, a_nd, dtype = pair
    widths = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in a_np.shape)
    got = a_nd.pad(widths)
    assert got.dtype == dtype and got.is_compact()
    np.testing.assert_array_equal(got.numpy(), np.pad(a_np, widths))


def test_pad_errors():
    with pytest.raises(ValueError, match="pad"):
        nd.array(np.zeros((2, 2))).pad(((1, 1),))
    with pytest.raises(ValueError, match="pad"):
        nd.array(np.zeros((2,))).pad(((-1, 1),))


# ---------------------------------------------------------- flat, _np, _wrap
@pytest.mark.parametrize("dtype", DTYPES)
def test_flat_writes_through(dtype):
    a = nd.array(np.zeros((2, 3)), dtype=dtype)
    a.flat[4] += 1e-4
    expected = np.zeros((2, 3), dtype)
    expected[1, 1] = 1e-4
    np.testing.assert_array_equal(a.numpy(), expected)
    row = a[1:2]
    row.flat[0] += 2.0
    assert a.numpy()[1, 0] == 2.0
    with pytest.raises(ValueError, match="compact"):
        _ = a.permute((1, 0)).flat


@SETTINGS
@given(pair=arrays())
def test_np_view_shares_memory_both_ways(pair):
    a_np, a_nd, dtype = pair
    view = a_nd._np
    assert a_nd._np is view
    assert view.dtype == dtype and view.shape == a_np.shape
    assert np.shares_memory(view, a_nd._handle.array)
    if view.strides and 0 in view.strides:
        return
    view[(0,) * view.ndim] = 42.0
    assert a_nd.numpy()[(0,) * view.ndim] == 42.0
    a_nd[(0,) * view.ndim] = -7.0
    assert view[(0,) * view.ndim] == -7.0


def test_np_view_of_negative_strides():
    a = nd.array(np.arange(10.0))
    r = a[::-2]
    assert r.strides == (-2,)
    np.testing.assert_array_equal(r._np, np.arange(10.0)[::-2])
    r._np[0] = 100.0
    assert a.numpy()[9] == 100.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_wrap_shares_contiguous_memory(dtype):
    arr = np.arange(6, dtype=dtype).reshape(2, 3)
    w = nd.NDArray._wrap(arr, nd.cpu())
    assert w._np is arr and np.shares_memory(w._handle.array, arr)
    assert w.shape == (2, 3) and w.strides == (3, 1) and w.is_compact()
    assert w.dtype == dtype and w.device == nd.cpu()
    arr[0, 0] = 9.0
    assert w.numpy()[0, 0] == 9.0
    w[1, 2] = -1.0
    assert arr[1, 2] == -1.0
    np.testing.assert_array_equal((w + w).numpy(), arr + arr)


def test_wrap_views_every_layout_and_dtype_without_copying():
    arr = np.arange(6.0).reshape(2, 3)
    wt = nd.NDArray._wrap(arr.T, nd.cpu())  # F-contiguous
    assert np.shares_memory(wt._np, arr) and wt.strides == (1, 3) and not wt.is_compact()
    assert wt._handle.ptr() == arr.ctypes.data
    np.testing.assert_array_equal(wt.numpy(), arr.T)
    np.testing.assert_array_equal(wt.compact().numpy(), arr.T)
    base = np.arange(48.0).reshape(2, 3, 8)
    cases = [base.transpose(1, 0, 2), base[:, ::-1, ::3], base[::-1, :, 1::2].transpose(2, 0, 1),
             np.broadcast_to(base[:, :1, :], (2, 3, 8)), base[1, 2, 5:5]]
    for strided in cases:
        w = nd.NDArray._wrap(strided, nd.cpu())
        assert w._np is strided
        # The handle and (strides, offset) describe the same memory: a view built from
        # them sees the same elements, and writes through to ``base``.
        assert w.strides == tuple(s // 8 for s in strided.strides)
        rebuilt = nd.NDArray.make(w.shape, strides=w.strides, device=w.device,
                                  handle=w._handle, offset=w._offset)
        np.testing.assert_array_equal(rebuilt._np, strided)
        if strided.size and strided.flags.writeable:
            rebuilt._np[(0,) * strided.ndim] = -1.0
            assert strided[(0,) * strided.ndim] == -1.0
        np.testing.assert_array_equal(w.compact().numpy(), strided)
    wi = nd.NDArray._wrap(np.arange(3), nd.cpu())  # op results such as argmax keep ints
    assert wi.dtype == np.int64 and wi.numpy().tolist() == [0, 1, 2]
    ws = nd.NDArray._wrap(np.float64(2.5), nd.cpu())
    assert ws.shape == () and ws.numpy() == 2.5 and ws.dtype == "float64"


# ------------------------------------------------------------------- 0-d
def test_zero_dim_arrays():
    z = nd.array(3.0)
    assert z.shape == () and z.strides == () and z.size == 1 and z.ndim == 0
    assert z.is_compact() and float(z._np) == 3.0
    np.testing.assert_array_equal((z * 2).numpy(), np.array(6.0, np.float32))
    assert z.sum().shape == (1,) and z.sum(keepdims=True).shape == ()
    assert z.reshape((1, 1)).shape == (1, 1)
    assert z.broadcast_to((2, 2)).numpy().tolist() == [[3.0, 3.0], [3.0, 3.0]]
    z[()] = 5.0
    assert z.numpy() == 5.0
    z.flat[0] += 1.0
    assert z.numpy() == 6.0


# ----------------------------------------------------------------- copying
def test_pickle_and_deepcopy_keep_np_sharing():
    a = nd.array(np.arange(6.0).reshape(2, 3), dtype="float64")[:, ::-1]
    for b in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a), copy.copy(a)):
        np.testing.assert_array_equal(b.numpy(), a.numpy())
        assert b.dtype == "float64" and b._handle is not a._handle
        b._np[0, 0] = -1.0
        assert b.numpy()[0, 0] == -1.0 and a.numpy()[0, 0] != -1.0
