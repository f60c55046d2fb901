"""In-place ops with autograd: values, gradients, views, version counters, misuse.

Expected values come from numpy; gradients are checked against central finite
differences (``gradcheck``/``gradgradcheck``) or against the same computation written
out of place. tests/test_backend_np.py runs this file under NEEDLE_BACKEND=np as well.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
from conftest import assert_close, make_values, tensor

import needle as ndl
from needle import graph as ad
from needle import inplace
from needle.autograd import detect_anomaly, find_topo_sort
from needle.errors import DTypeError, GraphError, ShapeError
from needle.gradcheck import gradcheck, gradgradcheck


def const(arr) -> ndl.Tensor:
    return tensor(arr, requires_grad=False)


def vals(*shape, kind="real", seed=0) -> np.ndarray:
    return make_values(shape, kind, seed)


# ----------------------------------------------------------------------------------------------
# Values against numpy


ARITH = [
    ("add_", lambda a, b: a + b),
    ("sub_", lambda a, b: a - b),
    ("mul_", lambda a, b: a * b),
    ("div_", lambda a, b: a / b),
]


@pytest.mark.parametrize("name,ref", ARITH)
@pytest.mark.parametrize("other_shape", [(2, 3), (3,), (1, 3), ()])
def test_arith_values_with_tensor(name, ref, other_shape):
    a, b = vals(2, 3), vals(*other_shape, kind="pos", seed=1)
    x = const(a)
    storage = x.realize_cached_data()
    out = getattr(x, name)(const(b))
    assert out is x
    assert x.realize_cached_data() is storage
    assert_close(x, ref(a, b))


@pytest.mark.parametrize("name,ref", ARITH)
def test_arith_values_with_scalar_and_array(name, ref):
    a = vals(2, 3)
    x = const(a)
    getattr(x, name)(2.5)
    assert_close(x, ref(a, 2.5))
    b = vals(3, kind="pos", seed=2)
    getattr(x, name)(b)
    assert_close(x, ref(ref(a, 2.5), b))


def test_alpha():
    a, b = vals(4), vals(4, seed=1)
    x = const(a)
    x.add_(const(b), alpha=-0.5)
    assert_close(x, a - 0.5 * b)
    x.sub_(2.0, alpha=3)
    assert_close(x, a - 0.5 * b - 6.0)


def test_augmented_assignment_mutates_the_same_object():
    a, b = vals(2, 3), vals(2, 3, kind="pos", seed=1)
    x = const(a)
    alias = x
    x += const(b)
    x -= 1.0
    x *= const(b)
    x /= 4.0
    assert x is alias
    assert_close(x, ((a + b) - 1.0) * b / 4.0)


def test_fill_zero_copy_values():
    x = const(vals(2, 3))
    assert x.fill_(1.5) is x
    assert_close(x, np.full((2, 3), 1.5))
    assert x.zero_() is x
    assert_close(x, np.zeros((2, 3)))
    src = vals(3, seed=3)
    assert x.copy_(const(src)) is x
    assert_close(x, np.broadcast_to(src, (2, 3)))
    x.copy_(np.arange(6.0).reshape(2, 3))
    assert_close(x, np.arange(6.0).reshape(2, 3))


SETITEM_INDICES = [
    1,
    -1,
    slice(None),
    slice(1, None),
    slice(None, None, -2),
    (0, 2),
    (slice(None), 1),
    (Ellipsis, 0),
    (None, 1),
    np.array([0, 2]),
    (np.array([0, 1, 1]), np.array([2, 0, 3])),
    np.array([True, False, True]),
    np.array([[True, False, True, False], [False, False, True, True], [True, True, False,
                                                                       False]]),
]


def _ids(index):
    return repr(index).replace("\n", "").replace(" ", "")[:40]


@pytest.mark.parametrize("index", SETITEM_INDICES, ids=_ids)
def test_setitem_values(index):
    a = vals(3, 4)
    sel_shape = a[index].shape
    v = vals(*sel_shape, seed=5)
    x = const(a)
    x[index] = const(v)
    want = a.copy()
    want[index] = v
    assert_close(x, want)
    # a scalar, and a value that broadcasts over the selection
    x = const(a)
    x[index] = 7.0
    want = a.copy()
    want[index] = 7.0
    assert_close(x, want)
    if sel_shape:
        row = vals(sel_shape[-1], seed=6)
        x = const(a)
        x[index] = row
        want = a.copy()
        want[index] = row
        assert_close(x, want)


@pytest.mark.parametrize("index", SETITEM_INDICES, ids=_ids)
def test_recorded_setitem_values(index):
    a = vals(3, 4)
    v = vals(*a[index].shape, seed=5)
    x = tensor(a)
    h = x * 1.0
    h[index] = tensor(v)
    want = a.copy()
    want[index] = v
    assert_close(h, want)
    assert not h.is_leaf()


def test_setitem_with_tensor_index_and_extra_leading_ones():
    a = vals(3, 4)
    x = const(a)
    x[ndl.Tensor([2, 0], requires_grad=False)] = const(np.ones((1, 1, 4)))
    want = a.copy()
    want[[2, 0]] = 1.0
    assert_close(x, want)


def test_dtype_is_preserved_float32():
    x = ndl.Tensor(np.ones(3), dtype="float32", requires_grad=False)
    x += ndl.Tensor(np.full(3, 1.0 / 3.0), dtype="float64", requires_grad=False)
    x[0] = np.float64(0.1)
    x.mul_(np.float64(3.0))
    assert str(x.dtype) == "float32"
    want = (np.ones(3, np.float32) + np.float32(1.0 / 3.0))
    want[0] = np.float32(0.1)
    np.testing.assert_allclose(x.numpy(), want * 3, rtol=1e-6)


def test_gradient_dtypes_follow_the_inputs():
    x = ndl.Tensor(vals(3), dtype="float32")
    y = ndl.Tensor(vals(3, seed=1), dtype="float64")
    h = x * 1.0
    h += y  # computed in float64, stored in float32
    h *= y
    assert str(h.dtype) == "float32"
    h.sum().backward()
    assert str(x.grad.dtype) == "float32" and str(y.grad.dtype) == "float64"
    np.testing.assert_allclose(x.grad.numpy(), vals(3, seed=1), rtol=1e-6)
    xv32 = vals(3).astype(np.float32)
    want = (xv32 + vals(3, seed=1)).astype(np.float32) + vals(3, seed=1)
    np.testing.assert_allclose(y.grad.numpy(), want, rtol=1e-6)


def test_boolean_tensor_mask_numpy_backend():
    if ndl.BACKEND != "np":
        pytest.skip("the nd backend has no boolean dtype")
    a = vals(2, 3)
    x = const(a)
    mask = ndl.Tensor(a > 0, requires_grad=False)
    x[mask] = 0.0
    assert_close(x, np.where(a > 0, 0.0, a))
    assert_close(const(a)[mask], a[a > 0])


def test_integer_tensors_numpy_backend():
    if ndl.BACKEND != "np":
        pytest.skip("the nd backend holds floats only")
    x = ndl.Tensor(np.array([1, 2, 3]), requires_grad=False)
    x += 2
    x[0] = 9.7  # numpy assignment truncates, as torch does
    assert x.dtype == np.int64
    np.testing.assert_array_equal(x.numpy(), [9, 4, 5])
    with pytest.raises(DTypeError, match="float64.*int64"):
        x.add_(0.5)
    np.testing.assert_array_equal(x.numpy(), [9, 4, 5])


# ----------------------------------------------------------------------------------------------
# Gradients against finite differences


def _through(op):
    """fn(x, y) = op applied in place to a non-leaf copy of x, then a nonlinear read-out."""

    def fn(x, y):
        h = x * 1.0
        op(h, y)
        return h * h + x

    return fn


GRAD_CASES = {
    "add_": lambda h, y: h.add_(y),
    "add_ alpha": lambda h, y: h.add_(y, alpha=-2.0),
    "sub_": lambda h, y: h.sub_(y),
    "mul_": lambda h, y: h.mul_(y),
    "div_": lambda h, y: h.div_(y),
    "+=": lambda h, y: h.__iadd__(y),
    "-=": lambda h, y: h.__isub__(y),
    "*=": lambda h, y: h.__imul__(y),
    "/=": lambda h, y: h.__itruediv__(y),
    "copy_": lambda h, y: h.copy_(y),
    "fill_ 0-d": lambda h, y: h.fill_(y.sum()),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
@pytest.mark.parametrize("y_shape", [(2, 3), (3,), (1, 1)])
def test_inplace_gradients(name, y_shape):
    x = tensor(vals(2, 3))
    y = tensor(vals(*y_shape, kind="pos", seed=1))
    gradcheck(_through(GRAD_CASES[name]), x, y)


@pytest.mark.parametrize("name", ["mul_", "div_", "add_", "copy_"])
def test_inplace_second_derivatives(name):
    x = tensor(vals(2, 3))
    y = tensor(vals(3, kind="pos", seed=1))
    gradgradcheck(_through(GRAD_CASES[name]), x, y)


def test_scalar_inplace_gradients():
    x = tensor(vals(2, 3))

    def fn(x):
        h = x * 1.0
        h += 2.0
        h *= 3.0
        h -= 0.5
        h /= 4.0
        return h * h

    gradcheck(fn, x)
    gradgradcheck(fn, x)


def test_zero_and_fill_cut_the_gradient():
    x = tensor(vals(2, 3))

    def fn(x):
        h = x * 2.0
        h.zero_()
        h += x
        return h * x

    gradcheck(fn, x)
    h = x * 2.0
    h.fill_(3.0)
    (h * x).sum().backward()
    assert_close(x.grad, np.full((2, 3), 3.0))


@pytest.mark.parametrize("index", SETITEM_INDICES, ids=_ids)
def test_setitem_gradients(index):
    a = vals(3, 4)
    sel_shape = a[index].shape
    x = tensor(a)
    v = tensor(vals(*sel_shape, seed=5))

    def fn(x, v):
        h = x * 1.0
        h[index] = v
        return h * h

    gradcheck(fn, x, v)
    gradgradcheck(fn, x, v)


@pytest.mark.parametrize("index", [slice(None), (Ellipsis, 1), np.array([0, 2]),
                                   np.array([True, False, True])], ids=_ids)
def test_setitem_gradient_broadcast_value(index):
    a = vals(3, 4)
    sel_shape = a[index].shape
    x = tensor(a)
    v = tensor(vals(sel_shape[-1], seed=7))

    def fn(x, v):
        h = x * 1.0
        h[index] = v
        return h * h

    gradcheck(fn, x, v)
    h = x * 1.0
    h[index] = v
    h.sum().backward()
    # each element of v is written once per selected row
    rows = int(np.prod(sel_shape[:-1]))
    assert_close(v.grad, np.full(v.shape, float(rows)))
    mask = np.ones(a.shape)
    mask[index] = 0.0
    assert_close(x.grad, mask)


def test_setitem_repeated_indices_only_landed_writes_get_gradient():
    a = vals(3)
    x = tensor(a)
    idx = np.array([0, 2, 0, 0])
    v = tensor(vals(4, seed=3))

    def fn(x, v):
        h = x * 1.0
        h[idx] = v
        return h * h

    gradcheck(fn, x, v)
    gradgradcheck(fn, x, v)
    h = x * 1.0
    h[idx] = v
    h.sum().backward()
    landed = np.zeros(3)
    landed[idx] = np.arange(4)  # numpy decides which duplicate lands
    want = np.zeros(4)
    want[landed[[0, 2]].astype(int)] = 1.0
    assert_close(v.grad, want)


def test_setitem_scalar_value_gradient():
    x = tensor(vals(3, 4))

    def fn(x):
        h = x * 1.0
        h[1:, ::2] = 0.5
        return h * h

    gradcheck(fn, x)


def test_setitem_value_with_extra_leading_ones_gradient():
    x = tensor(vals(3, 4))
    v = tensor(vals(1, 1, 4, seed=2))

    def fn(x, v):
        h = x * 1.0
        h[0] = v
        return h * h

    gradcheck(fn, x, v)


def test_setitem_into_a_constant_makes_it_differentiable():
    base = const(np.zeros((2, 3)))
    v = tensor(vals(3))
    base[1] = v
    assert base.requires_grad and not base.is_leaf()
    (base * base).sum().backward()
    assert_close(v.grad, 2 * v.numpy())


def test_mul_by_itself():
    x = tensor(vals(4))

    def fn(x):
        h = x + 0.0
        h.mul_(h)
        return h

    gradcheck(fn, x)
    gradgradcheck(fn, x)


# ----------------------------------------------------------------------------------------------
# Rebasing: earlier users of the tensor keep its old value; gradients stay right


def test_inplace_on_non_leaf_keeps_gradients_right():
    xv, wv = vals(2, 3), vals(2, 3, kind="pos", seed=1)
    x, w = tensor(xv), tensor(wv)
    a = x * 2.0
    b = a * 3.0  # used a before the in-place op (MulScalar does not save a)
    c = a + w  # EWiseAdd does not save its inputs either
    a += w
    a *= w
    loss = (a + b + c).sum()
    loss.backward()
    # a = (2x + w) * w, b = 6x, c = 2x + w
    assert_close(x.grad, 2 * wv + 6 + 2)
    assert_close(w.grad, 2 * xv + 2 * wv + 1)
    # the same computation out of place
    x2, w2 = tensor(xv), tensor(wv)
    a2 = x2 * 2.0
    ((a2 + w2) * w2 + a2 * 3.0 + (a2 + w2)).sum().backward()
    assert_close(x.grad, x2.grad.numpy())
    assert_close(w.grad, w2.grad.numpy())


def test_inplace_with_an_operand_built_from_the_tensor():
    x = tensor(vals(3))

    def fn(x):
        h = x * 1.0
        h.add_(h * 2.0)  # h * 2.0 was built from the old h
        h.sub_(h.exp())
        return h

    gradcheck(fn, x)


def test_chain_of_rebases_with_users_in_between():
    xv, wv = vals(3), vals(3, kind="pos", seed=1)
    x, w = tensor(xv), tensor(wv)
    h = x * 1.0
    u0 = h * 5.0
    h += w
    u1 = h * 7.0
    h *= 2.0
    u2 = h + 0.0
    (u0 + u1 + u2 + h).sum().backward()
    # u0 = 5x, u1 = 7(x + w), u2 = h = 2(x + w)
    assert_close(x.grad, np.full(3, 5 + 7 + 2 + 2.0))
    assert_close(w.grad, np.full(3, 7 + 2 + 2.0))


def test_inplace_on_a_constant_with_a_differentiable_operand():
    c = const(vals(3))
    w = tensor(vals(3, seed=1))
    before = c * 1.0  # constant: no graph
    c.add_(w)
    assert c.requires_grad and not c.is_leaf()
    (c * c + before).sum().backward()
    assert_close(w.grad, 2 * c.numpy())


def test_rows_filled_one_by_one_from_the_previous_row():
    # h[t - 1] is a view that EWiseMul saves; later writes hit other rows only, so the
    # saved values are intact (PyTorch, with one counter per storage, would refuse this).
    steps = 40
    w = tensor(np.full(3, 0.9))
    h = const(np.zeros((steps, 3)))
    h[0] = w
    for t in range(1, steps):
        h[t] = h[t - 1] * w
    assert_close(h, 0.9 ** np.arange(1, steps + 1)[:, None] * np.ones(3))
    h.sum().backward()
    assert_close(w.grad, np.full(3, sum(k * 0.9 ** (k - 1) for k in range(1, steps + 1))),
                 rtol=1e-9)


def test_writes_to_other_rows_keep_a_saved_row_valid():
    x, w = tensor(vals(3, 4)), tensor(vals(4, seed=1))
    h = x * 1.0
    y = h[0] * w  # saves the view h[0]
    h[1] = 0.0
    h[2] += w
    (y.sum() + h.sum()).backward()
    want = np.ones((3, 4))
    want[0] += w.numpy()
    want[1] = 0.0
    assert_close(x.grad, want)
    assert_close(w.grad, x.numpy()[0] + 1.0)


def test_topo_sort_sees_the_rebased_graph():
    x = tensor(vals(2))
    h = x * 2.0
    user = h * 3.0
    h += 1.0
    order = find_topo_sort([user])
    assert order[-1] is user
    assert h not in order  # user reads the node h was before the in-place op
    assert find_topo_sort([h])[-1] is h
    assert x in find_topo_sort([h])


def test_backward_twice_and_grad_of_grad_after_rebase():
    x = tensor(vals(3))
    h = x * 1.0
    h *= x  # keeps a copy of the old h for the gradient w.r.t. x
    y = (h * x).sum()  # x ** 3
    y.backward()
    assert_close(x.grad, 3 * x.numpy() ** 2)
    x.grad.sum().backward()
    assert_close(x.grad, 6 * x.numpy())


# ----------------------------------------------------------------------------------------------
# Storage: views see writes and share the version counter


def test_views_share_storage_and_version():
    x = const(np.arange(6.0))
    r = x.reshape((2, 3))
    d = x.detach()
    t = ndl.Tensor(x, requires_grad=False)
    assert x._version == 0
    x.add_(1.0)
    np.testing.assert_array_equal(r.numpy(), np.arange(6.0).reshape(2, 3) + 1)
    np.testing.assert_array_equal(d.numpy(), np.arange(6.0) + 1)
    np.testing.assert_array_equal(t.numpy(), np.arange(6.0) + 1)
    r[0, 0] = 100.0
    assert x.numpy()[0] == 100.0
    assert x._version == r._version == d._version == 2
    assert x.data._version == 2


def test_writes_reach_the_array_behind_the_tensor():
    x = const(np.zeros(4))
    data = x.realize_cached_data()
    x[1:3] = 5.0
    got = data.numpy() if ndl.BACKEND == "nd" else np.asarray(data)
    np.testing.assert_array_equal(got, [0, 5, 5, 0])


def test_logs_leave_with_their_storage():
    gc.collect()
    before = len(inplace._LOGS)
    x = const(np.zeros(5))
    x += 1.0
    assert len(inplace._LOGS) == before + 1
    del x
    gc.collect()
    assert len(inplace._LOGS) == before


def test_rebased_graph_is_freed():
    gc.collect()
    start = ndl.autograd.TENSOR_COUNTER
    x = tensor(vals(3))
    h = x * 2.0
    h += 1.0
    h *= x
    (h * h).sum().backward()
    del h
    x.grad = None
    del x
    gc.collect()
    assert ndl.autograd.TENSOR_COUNTER == start


# ----------------------------------------------------------------------------------------------
# The version-counter check


def test_saved_input_modified_names_both_ops():
    x, w = tensor(vals(3)), tensor(vals(3, seed=1))
    h = x * 1.0
    y = h * w  # saves h for the gradient w.r.t. w
    h.add_(1.0)
    with pytest.raises(GraphError) as info:
        y.sum().backward()
    msg = str(info.value)
    assert "input 0 of EWiseMul" in msg
    assert "add_" in msg and "test_inplace.py" in msg
    assert "version 0 \u2192 1" in msg


def test_saved_output_modified():
    x = tensor(vals(3))
    y = ndl.exp(x)
    y.mul_(2.0)
    with pytest.raises(GraphError, match="the output of Exp .*mul_"):
        y.sum().backward()


def test_several_writes_are_counted():
    x, w = tensor(vals(3)), tensor(vals(3, seed=1))
    h = x * 1.0
    y = h * w
    h += 1.0
    h[0] = 3.0
    with pytest.raises(GraphError, match=r"add_ .* and 1 more .*version 0 \u2192 2"):
        y.sum().backward()


def test_creation_site_under_anomaly_mode():
    x, w = tensor(vals(3)), tensor(vals(3, seed=1))
    with detect_anomaly():
        h = x * 1.0
        y = h * w
        h.add_(1.0)
        with pytest.raises(GraphError, match=r"EWiseMul \(created at .*test_inplace.py"):
            y.sum().backward()


def test_modification_is_fine_when_the_gradient_does_not_read_it():
    x, w = tensor(vals(2, 3)), tensor(vals(2, 3, seed=1))
    h = x * 1.0
    users = [h + w, h.reshape((3, 2)).sum(), h.sum(axes=0), h * 3.0]
    h.add_(1.0)
    # w does not require grad: EWiseMul's gradient for h reads only w
    y = h * const(vals(2, 3, seed=2))
    sum(u.sum() for u in users).backward()
    y.sum().backward()


def test_only_the_gradient_that_reads_the_value_fails():
    x = tensor(vals(3))
    c = const(vals(3, seed=1))
    h = x * 1.0
    y = h * c  # the gradient w.r.t. h reads c only
    c.add_(1.0)  # a constant leaf may be modified...
    with pytest.raises(GraphError, match="input 1 of EWiseMul"):
        y.sum().backward()  # ...but y's gradient needs its old value


def test_parameter_update_between_forward_and_backward():
    w = ndl.nn.Parameter(ndl.Tensor(vals(3), dtype="float64"))
    x = tensor(vals(3, seed=1))
    loss = (w * x).sum()
    with ndl.no_grad():
        w -= 0.1 * x.detach()  # in place on a leaf is fine under no_grad
    with pytest.raises(GraphError, match="input 0 of EWiseMul.*sub_"):
        loss.backward()  # the gradient w.r.t. x needs the old w


def test_tuple_elements_modified_in_place():
    x = tensor(vals(2, 3))
    a, b = ndl.split(x * 1.0, 0)
    a += 1.0
    b *= 2.0
    (ndl.stack([a, b], 0) * x).sum().backward()
    assert_close(x.grad, np.stack([2 * x.numpy()[0] + 1, 4 * x.numpy()[1]]))


# ----------------------------------------------------------------------------------------------
# Leaves, views of leaves, stale views


def test_leaf_that_requires_grad_refuses_in_place():
    w = tensor(vals(3))
    for op in (lambda: w.add_(1.0), lambda: w.mul_(2.0), lambda: w.zero_(),
               lambda: w.fill_(1.0), lambda: w.copy_(const(vals(3))),
               lambda: w.__setitem__(0, 1.0), lambda: w.__iadd__(1.0)):
        with pytest.raises(GraphError, match="leaf tensor that requires grad"):
            op()
    assert_close(w, vals(3))


def test_no_grad_allows_updating_leaves_by_hand():
    w = tensor(vals(3))
    x = const(vals(3, seed=1))
    for _ in range(3):
        loss = (w * w * x).sum()
        loss.backward()
        with ndl.no_grad():
            w -= 0.1 * w.grad
            w[0] = 0.0
        assert w.is_leaf() and w.requires_grad
    assert w.numpy()[0] == 0.0


def test_in_place_on_data_and_detach_is_allowed():
    w = tensor(vals(3))
    w.data.mul_(2.0)
    w.detach().add_(1.0)
    assert_close(w, vals(3) * 2 + 1)
    assert w.is_leaf()


def test_view_of_a_leaf_refuses_recorded_in_place():
    w = tensor(vals(2, 3))
    r = w.reshape((6,))
    with pytest.raises(GraphError, match="shares its storage with a leaf"):
        r.add_(1.0)
    with ndl.no_grad():
        r.add_(1.0)
    assert_close(w, vals(2, 3) + 1)


def _row_of_non_leaf(x, w):
    h = x * 1.0
    row = h[0]
    row += w
    row *= w
    return h * h


def _row_of_constant(x, w):
    buf = const(np.zeros((2, 3)))
    row = buf[1]  # records no graph, but remembers that it views buf
    row += w * x[0]
    return buf * x


def _reshape_view(x, w):
    h = x * 1.0
    v = ndl.reshape(h, (3, 2))
    v.mul_(2.0)
    v += ndl.broadcast_to(w[:2], (3, 2))
    return h * h


def _transpose_view(x, w):
    h = x * 1.0
    t = h.transpose()
    t -= ndl.reshape(w, (3, 1))
    return h * h


def _view_of_a_view(x, w):
    h = x * 1.0
    r = h[1]
    tail = r[1:]
    tail *= w[1:]
    return h * h + r


def _augmented_item_assignment(x, w):
    h = x * 1.0
    h[0] += w
    h[1, 1:] *= w[:2]
    h[:, 0] -= w[2]  # a copy, not a view: written back by the assignment
    return h * h


VIEW_CASES = {f.__name__[1:]: f for f in (_row_of_non_leaf, _row_of_constant, _reshape_view,
                                          _transpose_view, _view_of_a_view,
                                          _augmented_item_assignment)}


@pytest.mark.parametrize("name", sorted(VIEW_CASES))
def test_in_place_through_a_view_rebases_its_base(name):
    x = tensor(vals(2, 3))
    w = tensor(vals(3, kind="pos", seed=1))
    gradcheck(VIEW_CASES[name], x, w)


def test_view_values_and_rebased_base():
    x, w = tensor(vals(2, 3)), tensor(vals(3, seed=1))
    buf = const(np.zeros((2, 3)))
    row = buf[1]
    row += w
    assert buf.requires_grad and not buf.is_leaf()
    assert_close(buf, np.stack([np.zeros(3), vals(3, seed=1)]))
    (buf * x).sum().backward()
    assert_close(w.grad, x.numpy()[1])


def test_view_of_a_leaf_made_under_no_grad_refuses_recorded_in_place():
    w = tensor(vals(2, 3))
    with ndl.no_grad():
        row = w[0]
    with pytest.raises(GraphError, match="shares its storage with a leaf"):
        row += tensor(vals(3))
    assert_close(w, vals(2, 3))


def test_split_parts_of_a_leaf_refuse_recorded_in_place():
    w = tensor(vals(2, 3))
    a, _ = ndl.split(w, 0)
    assert inplace._buffer(a.cached_data) is inplace._buffer(w.cached_data)  # a is a view
    with pytest.raises(GraphError, match="shares its storage with a leaf"):
        a += 1.0
    assert_close(w, vals(2, 3))


def test_view_of_a_non_leaf_made_under_no_grad_keeps_no_link():
    x, w = tensor(vals(2, 3)), tensor(vals(3, seed=1))
    h = x * 1.0
    with ndl.no_grad():
        row = h[0]
    row += w  # a recorded write into h's memory that h's graph cannot see
    with pytest.raises(GraphError, match="shares its storage with a tensor that add_"):
        (h * 2.0).sum().backward()
    (row * 2.0).sum().backward()  # row itself is fine
    assert_close(w.grad, np.full(3, 2.0))


def test_detached_alias_of_a_leaf_is_refused_when_used():
    leaf = const(vals(3))
    v = tensor(vals(3, seed=1))
    leaf.detach().add_(v)  # detach() drops the link: leaf's value now depends on v
    with pytest.raises(GraphError, match="shares its storage with a tensor that add_"):
        (leaf * v).sum().backward()


def test_view_of_a_modified_base_is_regenerated():
    xv, wv = vals(2, 3), vals(2, 3, seed=1)
    x, w = tensor(xv), tensor(wv)
    h = x * 1.0
    v = h.reshape((3, 2))  # shares h's storage
    early = v * 1.0  # uses v before the write
    h.add_(w)
    assert_close(v, (xv + wv).reshape(3, 2))
    (v * 2.0 + early).sum().backward()  # v's graph now goes through the add
    assert_close(x.grad, np.full((2, 3), 3.0))
    assert_close(w.grad, np.full((2, 3), 2.0))

    def fn(x, w):
        h = x * 1.0
        v = h.reshape((3, 2))
        h.mul_(w)
        return v * v

    gradcheck(fn, tensor(xv), tensor(wv))


def test_stale_view_as_the_output_of_backward():
    x, w = tensor(vals(2, 3)), tensor(vals(2, 3, seed=1))
    h = x * 1.0
    v = h[1]
    h *= w
    v.backward(const(np.ones(3)))
    assert_close(x.grad, np.stack([np.zeros(3), w.numpy()[1]]))


@pytest.mark.parametrize("second", ["add_", "mul_"])
def test_in_place_through_a_view_made_stale_by_its_base(second):
    def fn(x, w):
        h = x * 1.0
        row = h[0]
        h *= 3.0  # changes row's memory
        getattr(row, second)(w)  # row's graph is brought up to date first
        return h * h + row

    gradcheck(fn, tensor(vals(2, 3)), tensor(vals(3, seed=1)))


def test_non_view_alias_of_a_modified_tensor_is_refused():
    x, w = tensor(vals(2, 3)), tensor(vals(2, 3, seed=1))
    h = x * 1.0
    h.detach().add_(w)  # detach() keeps no link: h's graph cannot know about w
    with pytest.raises(GraphError, match="shares its storage with a tensor that add_"):
        (h * 2.0).sum().backward()
    with pytest.raises(GraphError, match="shares its storage"):
        h.backward(const(np.ones((2, 3))))


def test_view_used_before_the_write_is_fine():
    x, w = tensor(vals(2, 3)), tensor(vals(2, 3, seed=1))
    h = x * 1.0
    early = h.reshape((3, 2)) * 2.0
    h.add_(w)
    (early.sum() + h.sum()).backward()
    assert_close(x.grad, np.full((2, 3), 3.0))
    assert_close(w.grad, np.ones((2, 3)))


def test_untracked_write_to_a_view_is_not_refused():
    x = tensor(vals(2, 3))
    h = x * 1.0
    v = h.reshape((3, 2))
    with ndl.no_grad():
        h.add_(1.0)
    (v * 2.0).sum().backward()  # like PyTorch: writes under no_grad are invisible
    assert_close(x.grad, np.full((2, 3), 2.0))


# ----------------------------------------------------------------------------------------------
# Misuse


def test_shape_cannot_change():
    h = tensor(vals(3)) * 1.0
    with pytest.raises(ShapeError, match=r"\(2, 3\).*\(3,\)"):
        h.add_(const(vals(2, 3)))


def test_setitem_errors():
    h = const(vals(2, 3))
    with pytest.raises(IndexError, match=r"\(2, 3\)"):
        h[5] = 1.0
    with pytest.raises(ShapeError, match=r"\(4,\).*\(3,\)"):
        h[0] = const(vals(4))
    with pytest.raises(ShapeError, match="0-d"):
        h.fill_(const(vals(2)))
    assert_close(h, vals(2, 3))


def test_placeholders_refuse_in_place():
    x = ad.Variable("x")
    with pytest.raises(GraphError, match="not supported on placeholders"):
        x.add_(1.0)
    with pytest.raises(GraphError, match="not supported on placeholders"):
        (x * 2.0)[0] = 1.0
    h = const(vals(3))
    with pytest.raises(GraphError, match="placeholders"):
        h.add_(x)


def test_lazy_mode_refuses_in_place(monkeypatch):
    h = const(vals(3))
    monkeypatch.setattr(ndl.autograd, "LAZY_MODE", True)
    with pytest.raises(GraphError, match="LAZY_MODE"):
        h.add_(1.0)


def test_each_leaf_gets_its_own_grad_storage():
    a, b = tensor(vals(3)), tensor(vals(3, seed=1))
    (a + b).sum().backward()  # one gradient tensor would serve both
    a.grad.mul_(5.0)
    assert_close(a.grad, np.full(3, 5.0))
    assert_close(b.grad, np.ones(3))


def test_optimizers_update_through_data():
    model = ndl.nn.Linear(3, 2, dtype="float32")
    opt = ndl.optim.Adam(model.parameters(), lr=0.1)
    x = ndl.Tensor(vals(4, 3), dtype="float32", requires_grad=False)
    h = model(x)
    h += 1.0  # in place on the activation
    h.sum().backward()
    before = [p.numpy() for p in model.parameters()]
    opt.step()
    assert all(p.is_leaf() for p in model.parameters())
    assert any(not np.allclose(b, p.numpy()) for b, p in zip(before, model.parameters()))


# ----------------------------------------------------------------------------------------------
# Random programs of views and in-place ops (also run against PyTorch in
# test_inplace_oracle.py): needle either refuses with GraphError or matches finite differences.


class NeedleLib:
    def transpose(self, t):
        return t.transpose()


def random_program(seed: int):
    """``(x values, w values, steps)``: a few views and in-place ops drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    steps = []
    for _ in range(rng.integers(3, 9)):
        kind = str(rng.choice(["view", "view", "inplace", "inplace", "setitem", "use"]))
        pick = int(rng.integers(0, 1000))
        c = float(np.round(rng.uniform(0.5, 1.5), 2))
        if kind == "view":
            how = str(rng.choice(["row", "rows", "reshape", "transpose"]))
        elif kind == "inplace":
            how = str(rng.choice(["add_", "sub_", "mul_", "div_", "iadd", "imul", "copy_",
                                  "fill_", "zero_"]))
        elif kind == "setitem":
            how = str(rng.choice(["row", "rows"]))
        else:
            how = str(rng.choice(["scale", "square", "exp"]))
        steps.append((kind, how, pick, c, bool(rng.integers(0, 2))))
    return rng.uniform(0.5, 1.5, (3, 4)), rng.uniform(0.5, 1.5, 2), steps


def run_program(lib, steps, x, w):
    """Run ``steps`` on ``h = x * 1`` and views of it; returns a scalar loss."""
    h = x * 1.0
    # (tensor, row-major?): needle's indexing returns a view only of a row-major selection
    # (else a copy), so rows are taken only of row-major tensors, where needle and PyTorch
    # both return views.
    pool, uses = [(h, True)], []
    for kind, how, pick, c, with_w in steps:
        t, row_major = pool[pick % len(pool)]
        if kind == "view":
            if t.ndim != 2 or (how in ("row", "rows") and not row_major):
                continue
            if how == "row":
                pool.append((t[pick % t.shape[0]], True))
            elif how == "rows":
                pool.append((t[: 1 + pick % t.shape[0]], True))
            elif how == "reshape":  # a view of a row-major tensor, else a copy in both
                pool.append((t.reshape((t.shape[0] * t.shape[1],)), True))
            else:
                pool.append((lib.transpose(t), not row_major))
            continue
        operand = (w * c).sum() if with_w else c
        if kind == "setitem":
            if how == "row":
                t[pick % t.shape[0]] = operand
            else:
                t[pick % t.shape[0]:] = operand
        elif kind == "use":
            uses.append(t * c if how == "scale" else t * t if how == "square" else t.exp())
        elif how == "iadd":
            t += operand
        elif how == "imul":
            t *= operand
        elif how == "zero_":
            t.zero_()
        elif how == "fill_":
            t.fill_((w * c).sum() if with_w else c)
        elif how == "copy_":
            t.copy_((w * c).sum() * 1.0 if with_w else x[0, 0] * c)
        else:
            getattr(t, how)(operand)
    loss = (h * h).sum()
    for u in uses:
        loss = loss + u.sum()
    return loss


@pytest.mark.parametrize("seed", range(40))
def test_random_view_programs_gradcheck(seed):
    xv, wv, steps = random_program(seed)

    def fn(x, w):
        return run_program(NeedleLib(), steps, x, w)

    try:
        fn(tensor(xv), tensor(wv)).backward()
    except GraphError as e:
        # Only a value a gradient needs, overwritten afterwards, may be refused here.
        assert "after it was saved for the gradient" in str(e), str(e)
        return
    gradcheck(fn, tensor(xv), tensor(wv))
