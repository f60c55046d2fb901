"""Tensor gradient hooks, retain_grad, queue_callback and Module forward hooks."""

import numpy as np
import pytest

import needle as ndl
from needle import nn
from needle.autograd import queue_callback
from needle.errors import GraphError, ShapeError


def t64(a, requires_grad=True):
    return ndl.Tensor(np.asarray(a, dtype=np.float64), dtype="float64", requires_grad=requires_grad)


def test_leaf_hook_sees_total_gradient_once_per_backward():
    x = t64([1.0, 2.0, 3.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    y = (x * x + x * 3.0).sum()  # x used twice: the hook sees the sum, 2x + 3
    y.backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [5.0, 7.0, 9.0])
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 7.0, 9.0])


def test_hook_replacement_goes_to_grad_and_downstream():
    x = t64([1.0, 2.0])
    h = x * 2.0  # non-leaf
    h.register_hook(lambda g: g * 10.0)
    (h * h).sum().backward()
    # d/dh = 2h = [4, 8], times 10, then dh/dx = 2
    np.testing.assert_allclose(x.grad.numpy(), [80.0, 160.0])

    w = t64([1.0, -1.0])
    w.register_hook(lambda g: g * 0.0 + 7.0)
    (w * 3.0).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [7.0, 7.0])


def test_hooks_run_in_order_and_remove():
    x = t64([1.0])
    calls = []
    h1 = x.register_hook(lambda g: calls.append("a") or g * 2.0)
    x.register_hook(lambda g: calls.append(("b", g.numpy().item())))
    (x * 1.5).sum().backward()
    assert calls == ["a", ("b", 3.0)]
    h1.remove()
    h1.remove()  # harmless twice
    calls.clear()
    (x * 1.5).sum().backward()
    assert calls == [("b", 1.5)]
    np.testing.assert_allclose(x.grad.numpy(), [1.5])


def test_hook_with_bad_return_value_is_named():
    x = t64([1.0, 2.0])

    def bad(g):
        return ndl.Tensor(np.zeros(3), dtype="float64")

    x.register_hook(bad)
    with pytest.raises(ShapeError, match=r"register_hook: the hook 'bad' returned shape \(3,\)"):
        (x * 2.0).sum().backward()
    y = t64([1.0])
    y.register_hook(lambda g: 5)
    with pytest.raises(GraphError, match="returned int"):
        (y * 2.0).sum().backward()


def test_hook_needs_grad_and_callable():
    c = t64([1.0], requires_grad=False)
    with pytest.raises(GraphError, match="does not require grad"):
        c.register_hook(lambda g: None)
    with pytest.raises(TypeError, match="must be callable"):
        t64([1.0]).register_hook(3)


def test_retain_grad_on_non_leaf():
    x = t64([1.0, 2.0])
    h = x * 3.0
    h.retain_grad()
    assert h.retains_grad
    z = (h * h).sum()
    z.backward()
    np.testing.assert_allclose(h.grad.numpy(), [6.0, 12.0])
    np.testing.assert_allclose(x.grad.numpy(), [18.0, 36.0])
    x.retain_grad()  # leaf: no-op
    assert not x.retains_grad


def test_hook_gradient_is_a_graph_for_higher_order():
    x = t64([2.0])
    grads = []
    x.register_hook(lambda g: grads.append(g))
    (x * x * x).sum().backward()
    np.testing.assert_allclose(grads[0].numpy(), [12.0])  # 3x^2
    grads[0].backward()
    np.testing.assert_allclose(x.grad.numpy(), [12.0])  # 6x


def test_queue_callback_runs_after_grads_are_set():
    x = t64([1.0, 2.0])
    order = []

    def hook(g):
        queue_callback(lambda: order.append(("callback", x.grad.numpy().tolist())))
        order.append("hook")

    x.register_hook(hook)
    (x * 2.0).sum().backward()
    assert order == ["hook", ("callback", [2.0, 2.0])]
    with pytest.raises(GraphError, match="only valid inside backward"):
        queue_callback(lambda: None)


def test_module_forward_hooks():
    np.random.seed(0)
    lin = nn.Linear(3, 2)
    x = ndl.Tensor(np.ones((4, 3), dtype=np.float32))
    log = []
    pre = lin.register_forward_pre_hook(lambda m, args: log.append(("pre", m is lin, len(args))))
    post = lin.register_forward_hook(lambda m, args, out: log.append(("post", out.shape)))
    expected = lin(x).numpy()
    assert log == [("pre", True, 1), ("post", (4, 2))]
    # Replacement of inputs and outputs.
    pre.remove()
    post.remove()
    h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0.0,))
    h2 = lin.register_forward_hook(lambda m, args, out: out * 2.0)
    out = lin(x).numpy()
    bias = np.broadcast_to(lin.bias.numpy().reshape(1, -1), (4, 2))
    np.testing.assert_allclose(out, 2.0 * bias, rtol=1e-6)
    h1.remove()
    h2.remove()
    np.testing.assert_allclose(lin(x).numpy(), expected)
    # Hooks are not parameters or children, even if a Module is registered as a hook.
    lin.register_forward_hook(nn.Identity())
    assert len(lin.parameters()) == 2 and lin._children() == []
    assert set(lin.state_dict()) == {"weight", "bias"}
