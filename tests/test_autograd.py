"""The engine: graph building, topological order, the reverse pass, grad modes, Tensor API."""

import gc
import sys
import threading
import weakref

import numpy as np
import pytest

import needle as ndl
from needle import autograd
from needle.errors import DeviceError, DTypeError, GraphError, NeedleError, ShapeError


def t64(a, requires_grad=True):
    return ndl.Tensor(np.asarray(a, dtype=np.float64), dtype="float64",
                      requires_grad=requires_grad)


# ---------------------------------------------------------------------------------------------
# Gradients through graph shapes


def test_shared_subgraph_sums_all_paths():
    a = t64([1.0, -2.0, 3.0])
    b = a + a
    c = (b * b).sum()
    c.backward()
    # c = 4 a^2 -> dc/da = 8a
    np.testing.assert_allclose(a.grad.numpy(), 8 * np.array([1.0, -2.0, 3.0]))


def test_input_used_by_several_ops():
    x = t64([0.5, 2.0])
    y = (ndl.exp(x) + x * x + ndl.log(x)).sum()
    y.backward()
    xv = np.array([0.5, 2.0])
    np.testing.assert_allclose(x.grad.numpy(), np.exp(xv) + 2 * xv + 1 / xv)


def test_unused_input_gets_no_grad():
    x, unused = t64([1.0, 2.0]), t64([3.0])
    (x * 2).sum().backward()
    assert unused.grad is None
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_non_scalar_output_with_out_grad():
    x = t64([[1.0, 2.0], [3.0, 4.0]])
    y = x * x
    seed = np.array([[1.0, 0.0], [2.0, -1.0]])
    y.backward(t64(seed, requires_grad=False))
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() * seed)


def test_non_scalar_output_default_seed_is_ones():
    x = t64([1.0, 2.0, 3.0])
    (x * 3).backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0, 3.0])


def test_backward_overwrites_grad_each_pass():
    x = t64([2.0])
    (x * 3).backward()
    (x * 5).backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0])


def test_grad_of_grad_needle_example():
    x2, x3 = t64([6.0]), t64([2.0])
    y = x2 * x2 + x2 * x3
    y.backward()
    np.testing.assert_allclose(x2.grad.numpy(), [2 * 6.0 + 2.0])
    np.testing.assert_allclose(x3.grad.numpy(), [6.0])
    grad_x2 = x2.grad
    grad_x2.backward()
    np.testing.assert_allclose(x2.grad.numpy(), [2.0])
    np.testing.assert_allclose(x3.grad.numpy(), [1.0])


def test_third_derivative():
    x = t64([1.5])
    (x ** 4).backward()
    g1 = x.grad
    g1.backward()
    g2 = x.grad
    g2.backward()
    np.testing.assert_allclose(x.grad.numpy(), [24 * 1.5])


# ---------------------------------------------------------------------------------------------
# Topological order


def _recursive_topo(nodes):
    visited, order = set(), []

    def visit(n):
        if n in visited:
            return
        for i in n.inputs:
            visit(i)
        visited.add(n)
        order.append(n)

    for n in nodes:
        visit(n)
    return order


def test_topo_sort_matches_recursive_post_order():
    rng = np.random.default_rng(0)
    a, b = t64(rng.standard_normal((2, 3))), t64(rng.standard_normal((3, 2)))
    c = a @ b
    d = ndl.exp(c) + c * 2 - ndl.relu(c)
    e = (d @ ndl.transpose(c)).sum() + a.sum()
    assert autograd.find_topo_sort([e]) == _recursive_topo([e])
    assert autograd.find_topo_sort([e, d, a]) == _recursive_topo([e, d, a])


def test_subtraction_is_add_of_negate():
    a, b = t64([1.0]), t64([2.0])
    c = a - b
    assert isinstance(c.op, ndl.ops.EWiseAdd)
    assert isinstance(c.inputs[1].op, ndl.ops.Negate)
    assert len(autograd.find_topo_sort([c])) == 4


def test_topo_sort_dfs_helper():
    a = t64([1.0])
    b = a * 2
    order, visited = [], set()
    autograd.topo_sort_dfs(b, visited, order)
    assert order == [a, b] and visited == {a, b}


# ---------------------------------------------------------------------------------------------
# Deep graphs: no recursion anywhere


def test_100k_op_chain_forward_backward_and_free():
    assert sys.getrecursionlimit() < 100_000
    x = t64([1.0])
    y = x
    for i in range(100_000):
        y = y * 1.0 if i % 2 else y + 1.0
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0])
    np.testing.assert_allclose(y.numpy(), [1.0 + 50_000])
    ref = weakref.ref(y.inputs[0])
    del y
    gc.collect()
    assert ref() is None


def test_100k_op_chain_lazy_realisation():
    x = t64([0.0])
    autograd.LAZY_MODE = True
    try:
        y = x
        for _ in range(100_000):
            y = y + 1.0
        assert y.cached_data is None
    finally:
        autograd.LAZY_MODE = False
    np.testing.assert_allclose(y.numpy(), [100_000.0])


def test_lazy_mode_matches_eager():
    rng = np.random.default_rng(1)
    av, bv = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))

    def run():
        a, b = t64(av), t64(bv)
        out = ndl.logsumexp(ndl.tanh(a @ b) * 3, axes=(1,)).sum()
        out.backward()
        return out.numpy(), a.grad.numpy(), b.grad.numpy()

    eager = run()
    autograd.LAZY_MODE = True
    try:
        lazy = run()
    finally:
        autograd.LAZY_MODE = False
    for e, lz in zip(eager, lazy):
        np.testing.assert_allclose(e, lz, rtol=1e-12)


def test_freed_after_backward_when_output_dropped():
    x = t64(np.ones((50, 50)))
    h = ndl.tanh(x @ x)
    out = (h * h).sum()
    out.backward()
    refs = [weakref.ref(h), weakref.ref(out)]
    del h, out
    x.grad = None
    gc.collect()
    assert all(r() is None for r in refs)


def test_tensor_counter_returns_to_start():
    gc.collect()
    start = autograd.TENSOR_COUNTER
    x = t64(np.ones(3))
    for _ in range(10):
        y = (ndl.exp(x) * 2).sum()
        y.backward()
    del x, y
    gc.collect()
    assert autograd.TENSOR_COUNTER == start


# ---------------------------------------------------------------------------------------------
# Grad modes, detach, requires_grad


def test_no_grad_context_detaches_results():
    x = t64([1.0])
    with ndl.no_grad():
        y = x * 2
        assert not ndl.is_grad_enabled()
    assert ndl.is_grad_enabled()
    assert not y.requires_grad and y.op is None and y.inputs == ()


def test_no_grad_decorator_and_nesting_restore_previous_mode():
    @ndl.no_grad()
    def f(x):
        assert not ndl.is_grad_enabled()
        with ndl.enable_grad():
            assert ndl.is_grad_enabled()
            inner = x * 2
        return inner, x * 3

    x = t64([1.0])
    inner, outer = f(x)
    assert inner.requires_grad and not outer.requires_grad
    assert ndl.is_grad_enabled()


def test_no_grad_restores_mode_after_exception():
    with pytest.raises(RuntimeError):
        with ndl.no_grad():
            raise RuntimeError("boom")
    assert ndl.is_grad_enabled()


def test_grad_mode_is_per_thread():
    seen = []

    def worker():
        seen.append(ndl.is_grad_enabled())

    with ndl.no_grad():
        th = threading.Thread(target=worker)
        th.start()
        th.join()
    assert seen == [True]


def test_detach_and_requires_grad_propagation():
    x = t64([1.0])
    c = t64([2.0], requires_grad=False)
    assert not (c * 2).requires_grad
    assert (x * c).requires_grad
    d = (x * 2).detach()
    assert not d.requires_grad and d.op is None
    np.testing.assert_allclose(d.numpy(), [2.0])
    c.requires_grad_()
    assert c.requires_grad


def test_backward_on_tensor_without_grad_raises():
    c = t64([1.0], requires_grad=False)
    with pytest.raises(GraphError, match="does not require grad"):
        (c * 2).backward()


def test_backward_out_grad_shape_checked():
    x = t64([[1.0, 2.0]])
    with pytest.raises(ShapeError, match=r"\(3,\).*\(1, 2\)"):
        (x * 2).backward(t64([1.0, 2.0, 3.0], requires_grad=False))


# ---------------------------------------------------------------------------------------------
# Tensor construction and API


def test_default_dtypes():
    t = ndl.Tensor(np.arange(3, dtype=np.float64))
    if ndl.BACKEND == "nd":
        assert t.dtype == "float32"
        assert isinstance(t.cached_data, ndl.NDArray)
    else:
        assert t.dtype == np.float64
    assert ndl.Tensor([1.0], dtype="float64").dtype == "float64"


@pytest.mark.parametrize(
    "bad, err, fragment",
    [
        ([[1, 2], [3]], ShapeError, "ragged"),
        (["a", "b"], DTypeError, "strings"),
        (None, DTypeError, "Python objects"),
        ([1 + 2j], DTypeError, "complex"),
        (np.array([object()]), DTypeError, "Python objects"),
    ],
)
def test_bad_constructor_input(bad, err, fragment):
    with pytest.raises(err, match=fragment):
        ndl.Tensor(bad)


def test_errors_are_builtin_subclasses():
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, NeedleError)
    assert issubclass(DTypeError, TypeError) and issubclass(GraphError, RuntimeError)


def test_from_tensor_and_scalars():
    a = ndl.Tensor([1.0, 2.0])
    b = ndl.Tensor(a)
    np.testing.assert_allclose(b.numpy(), [1.0, 2.0])
    assert ndl.Tensor(3.5).shape == ()
    assert ndl.Tensor(np.float32(2.0)).numpy() == 2.0


@pytest.mark.skipif(ndl.BACKEND != "nd", reason="devices are distinct only on the nd backend")
def test_mixing_devices_raises():
    a = ndl.Tensor([1.0], device=ndl.cpu())
    b = ndl.Tensor([1.0], device=ndl.cpu_numpy())
    assert str(a.device) == "cpu()" and str(b.device) == "cpu_numpy()"
    with pytest.raises(DeviceError, match="different devices"):
        a + b


@pytest.mark.skipif(ndl.BACKEND != "nd", reason="NDArray input is an nd-backend feature")
def test_tensor_from_ndarray_moves_device():
    arr = ndl.backend_ndarray.array(np.ones((2, 2)), device=ndl.cpu_numpy())
    t = ndl.Tensor(arr, device=ndl.cpu())
    assert t.device == ndl.cpu()
    np.testing.assert_allclose(t.numpy(), np.ones((2, 2)))


def test_numpy_returns_a_copy():
    t = t64([1.0, 2.0])
    arr = t.numpy()
    arr[0] = 100.0
    assert t.numpy()[0] == 1.0


def test_realize_cached_data_is_live_storage():
    a = t64([1.0, 2.0])
    a.realize_cached_data().flat[0] += 5.0
    assert a.numpy()[0] == 6.0


def test_data_getter_and_setter():
    w = ndl.Tensor([1.0, 2.0], dtype="float32")
    d = w.data
    assert not d.requires_grad
    w.data = ndl.Tensor([3.0, 4.0], dtype="float32")
    np.testing.assert_allclose(w.numpy(), [3.0, 4.0])
    with pytest.raises(DTypeError, match="dtype"):
        w.data = ndl.Tensor([1.0, 2.0], dtype="float64")
    with pytest.raises(ShapeError, match=r"\(3,\)"):
        w.data = ndl.Tensor([1.0, 2.0, 3.0], dtype=w.dtype)


def test_repr_shows_values_shape_dtype_device():
    r = repr(ndl.Tensor([[1.0, 2.0]]))
    assert r.startswith("needle.Tensor(")
    assert "shape=(1, 2)" in r and ("float32" in r or "float64" in r)
    assert str(ndl.default_device()) in r and "1." in r


def test_operators_with_scalars_on_either_side():
    x = t64([1.0, 2.0])
    np.testing.assert_allclose((2 - x).numpy(), [1.0, 0.0])
    np.testing.assert_allclose((2 / x).numpy(), [2.0, 1.0])
    np.testing.assert_allclose((x / 2).numpy(), [0.5, 1.0])
    np.testing.assert_allclose((2 ** x).numpy(), [2.0, 4.0])
    np.testing.assert_allclose((x ** 2).numpy(), [1.0, 4.0])
    np.testing.assert_allclose((3 * x + 1).numpy(), [4.0, 7.0])
    np.testing.assert_allclose((-x).numpy(), [-1.0, -2.0])
    np.testing.assert_allclose((np.array([1.0, 1.0]) + x).numpy(), [2.0, 3.0])


def test_reflected_ops_gradients():
    x = t64([1.0, 2.0])
    (2 / x + 3 - x + 2 ** x).sum().backward()
    xv = np.array([1.0, 2.0])
    np.testing.assert_allclose(x.grad.numpy(), -2 / xv**2 - 1 + np.log(2) * 2**xv)


def test_tensor_methods():
    x = t64(np.arange(6.0).reshape(2, 3))
    assert x.reshape((3, 2)).shape == (3, 2)
    assert x.reshape(3, 2).shape == (3, 2)
    assert x.transpose().shape == (3, 2)
    assert x.broadcast_to((4, 2, 3)).shape == (4, 2, 3)
    np.testing.assert_allclose(x.sum(axes=1).numpy(), [3.0, 12.0])
    np.testing.assert_allclose(x.sum().numpy(), 15.0)
    assert x.permute((1, 0)).shape == (3, 2)


def test_getitem_forward_and_gradient():
    xv = np.arange(12.0).reshape(3, 4)
    x = t64(xv)
    np.testing.assert_allclose(x[1].numpy(), xv[1])
    np.testing.assert_allclose(x[1:, ::-2].numpy(), xv[1:, ::-2])
    np.testing.assert_allclose(x[-1, 2].numpy(), xv[-1, 2])
    np.testing.assert_allclose(x[[0, 0, 2]].numpy(), xv[[0, 0, 2]])
    (x[[0, 0, 2]] * 2).sum().backward()
    expected = np.zeros((3, 4))
    expected[0] = 4.0
    expected[2] = 2.0
    np.testing.assert_allclose(x.grad.numpy(), expected)
    with pytest.raises(IndexError, match=r"\(3, 4\)"):
        x[5]


def test_tensors_hash_and_compare_by_identity():
    a, b = ndl.Tensor([1.0]), ndl.Tensor([1.0])
    assert len({a, b}) == 2
    assert (a, b) == (a, b)
    assert not ((a, b) != (a, b))


def test_tensor_tuple():
    a, b = t64([1.0]), t64([2.0, 3.0])
    tup = ndl.make_tuple(a, b)
    assert isinstance(tup, ndl.TensorTuple) and len(tup) == 2
    assert repr(tup).startswith("needle.TensorTuple(")
    summed = tup + tup
    np.testing.assert_allclose(summed[1].numpy(), [4.0, 6.0])
    assert tup.detach().inputs == ()


def test_gradient_as_tuple_direct_call():
    a, b = t64([[1.0, 2.0]]), t64([[3.0, 4.0]])
    out = ndl.multiply(a, b)
    grads = out.op.gradient_as_tuple(t64([[1.0, 1.0]], requires_grad=False), out)
    assert isinstance(grads, tuple) and len(grads) == 2
    np.testing.assert_allclose(grads[0].numpy(), b.numpy())
