"""The device seam: a device is a name plus an array namespace, and every op computes
through the namespace of its operands' device.

The proof on a machine without a GPU is a probe device, ``BackendDevice("probe", ns)``
over a namespace that forwards every function to numpy and records its name. Every
computing op runs forward and backward on it; each must have looked its functions up in
the probe, give numpy's values, and fail when the probe is made to raise.
"""

from __future__ import annotations

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import ops
from needle.errors import DeviceError


class ProbeError(Exception):
    """Raised by a probe namespace that was told to refuse every lookup."""


class ProbeNamespace:
    """numpy's functions, looked up through this object, which records every name."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.raising = False

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if self.raising:
            raise ProbeError(f"probe: {name} looked up")
        self.seen.append(name)
        return getattr(np, name)


@pytest.fixture()
def probe():
    ns = ProbeNamespace()
    device = nd.BackendDevice("probe", ns)
    ns.seen.clear()
    return ns, device


RNG = np.random.default_rng(0)


def _data(*shape, positive=False):
    x = RNG.standard_normal(shape)
    return np.abs(x) + 0.5 if positive else x


def _sum_all(out):
    if isinstance(out, ndl.TensorTuple):
        parts = [out[i].sum() for i in range(len(out))]
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        return total
    return out.sum()


# name -> (function of tensors, input arrays); every one computes (no pure view ops).
CASES = {
    "add": (lambda a, b: a + b, [_data(2, 3), _data(3)]),
    "subtract": (lambda a, b: ndl.subtract(a, b), [_data(2, 3), _data(3)]),
    "multiply": (lambda a, b: a * b, [_data(2, 3), _data(2, 1)]),
    "divide": (lambda a, b: a / b, [_data(2, 3), _data(2, 3, positive=True)]),
    "power": (lambda a, b: ndl.power(a, b), [_data(2, 3, positive=True), _data(2, 3)]),
    "add_scalar": (lambda a: a + 1.5, [_data(4)]),
    "mul_scalar": (lambda a: a * 3.0, [_data(4)]),
    "div_scalar": (lambda a: a / 3.0, [_data(4)]),
    "power_scalar": (lambda a: a ** 3, [_data(4)]),
    "negate": (lambda a: -a, [_data(4)]),
    "log": (lambda a: ndl.log(a), [_data(4, positive=True)]),
    "exp": (lambda a: ndl.exp(a), [_data(4)]),
    "sqrt": (lambda a: ndl.sqrt(a), [_data(4, positive=True)]),
    "relu": (lambda a: ndl.relu(a), [_data(5)]),
    "tanh": (lambda a: ndl.tanh(a), [_data(5)]),
    "sigmoid": (lambda a: ndl.sigmoid(a), [_data(5)]),
    "abs": (lambda a: ndl.abs(a), [_data(5)]),
    "sin": (lambda a: ndl.sin(a), [_data(5)]),
    "cos": (lambda a: ndl.cos(a), [_data(5)]),
    "maximum": (lambda a, b: ndl.maximum(a, b), [_data(2, 3), _data(2, 3)]),
    "minimum": (lambda a, b: ndl.minimum(a, b), [_data(2, 3), _data(2, 3)]),
    "greater": (lambda a, b: (a > b) * a, [_data(2, 3), _data(2, 3)]),
    "clamp": (lambda a: ndl.clamp(a, -0.5, 0.5), [_data(6)]),
    "where": (lambda a, b: ndl.where(a > 0, a, b), [_data(2, 3), _data(2, 3)]),
    "summation": (lambda a: ndl.summation(a, axes=(1,)), [_data(3, 4)]),
    "mean": (lambda a: ndl.mean(a, axes=0), [_data(3, 4)]),
    "max": (lambda a: ndl.max(a, axes=1), [_data(3, 4)]),
    "min": (lambda a: ndl.min(a, axes=1), [_data(3, 4)]),
    "var": (lambda a: ndl.var(a, axes=1), [_data(3, 4)]),
    "std": (lambda a: ndl.std(a, axes=1), [_data(3, 4)]),
    "matmul": (lambda a, b: a @ b, [_data(3, 4), _data(4, 2)]),
    "batched_matmul": (lambda a, b: a @ b, [_data(2, 3, 4), _data(4, 2)]),
    "ordered_matmul": (lambda a, b: ndl.ordered_matmul(a, b), [_data(3, 4), _data(4, 2)]),
    "logsumexp": (lambda a: ndl.logsumexp(a, axes=(1,)), [_data(3, 4)]),
    "softmax": (lambda a: ndl.softmax(a) * a, [_data(3, 4)]),
    "logsoftmax": (lambda a: ndl.logsoftmax(a) * a, [_data(3, 4)]),
    "conv": (lambda a, b: ndl.conv(a, b, stride=2, padding=1),
             [_data(2, 5, 5, 3), _data(3, 3, 3, 4)]),
    "stack": (lambda a, b: ndl.stack([a, b], 1), [_data(2, 3), _data(2, 3)]),
    "split": (lambda a: ndl.split(a * a, 1), [_data(2, 3)]),
    "concatenate": (lambda a, b: ndl.concatenate([a, b], 0) * 2.0, [_data(2, 3), _data(1, 3)]),
    "flip": (lambda a: ndl.flip(a, (0,)) * a, [_data(3, 2)]),
    "dilate": (lambda a: ndl.dilate(a, (0, 1), 1), [_data(2, 3)]),
    "undilate": (lambda a: ndl.undilate(a * a, (0,), 1), [_data(4, 3)]),
    "pad": (lambda a: ops.pad(a, ((1, 0), (0, 2))), [_data(2, 3)]),
    "gather": (lambda a: ndl.gather(a, 1, ndl.Tensor(np.array([[0, 2], [1, 1]]),
                                                     device=a.device, requires_grad=False)),
               [_data(2, 3)]),
    "scatter_add": (lambda a, b: ndl.scatter_add(a, 1, ndl.Tensor(
        np.array([[0, 2], [1, 1]]), device=a.device, requires_grad=False), b),
                    [_data(2, 3), _data(2, 2)]),
    "matmul_softmax": (lambda a, b: ndl.matmul_softmax(a, b) * 2.0, [_data(3, 4), _data(4, 5)]),
    "matmul_layernorm": (lambda a, b: ndl.matmul_layernorm(a, b, 5) * 2.0,
                         [_data(3, 4), _data(4, 5)]),
    "fused_add_scalars": (lambda a: ndl.fused_add_scalars(a * a, 1.0, 2.0), [_data(3)]),
    "layernorm": (lambda a: ops.ops_graph.layernorm(a, 4) * 2.0, [_data(3, 4)]),
    "batchnorm_train": (lambda a, w, b: ops.batchnorm_train(a, w, b) * 2.0,
                        [_data(5, 3), _data(3), _data(3)]),
    "running_stat": (lambda r, a: ops.running_stat(r, a, 0.1, "var") * 2.0,
                     [_data(3), _data(5, 3)]),
    "softmax_loss": (lambda a: ndl.nn.SoftmaxLoss()(a, ndl.Tensor(
        np.array([1, 0, 3]), device=a.device, requires_grad=False)), [_data(3, 4)]),
}


def _run(fn, arrays, device):
    xs = [ndl.Tensor(a, device=device, dtype="float64") for a in arrays]
    out = fn(*xs)
    return xs, out


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_op_computes_through_the_probe_forward_and_backward(name, probe):
    ns, device = probe
    fn, arrays = CASES[name]
    ref_xs, ref_out = _run(fn, arrays, ndl.cpu())
    _sum_all(ref_out).backward()

    xs, out = _run(fn, arrays, device)
    assert ns.seen, f"{name}: the forward looked nothing up in the device namespace"
    assert out.device == device
    for got, want in zip(_values(out), _values(ref_out)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)

    loss = _sum_all(out)
    ns.seen.clear()
    loss.backward()
    assert ns.seen, f"{name}: the backward looked nothing up in the device namespace"
    for x, ref in zip(xs, ref_xs):
        assert x.grad.device == device
        np.testing.assert_allclose(x.grad.numpy(), ref.grad.numpy(), rtol=1e-9, atol=1e-12)


def _values(out):
    if isinstance(out, ndl.TensorTuple):
        return [out[i].numpy() for i in range(len(out))]
    return [out.numpy()]


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_op_succeeds_when_the_probe_refuses(name, probe):
    ns, device = probe
    fn, arrays = CASES[name]
    xs = [ndl.Tensor(a, device=device, dtype="float64") for a in arrays]
    ns.raising = True
    with pytest.raises(ProbeError):
        fn(*xs)
    ns.raising = False
    loss = _sum_all(fn(*xs))
    ns.raising = True
    with pytest.raises(ProbeError):
        loss.backward()


def test_argmax_and_the_seed_go_through_the_probe(probe):
    ns, device = probe
    x = ndl.Tensor(np.array([[1.0, 3.0, 2.0]]), device=device)
    idx = ndl.argmax(x, 1)
    assert "argmax" in ns.seen and idx.numpy().tolist() == [1]
    ns.raising = True
    with pytest.raises(ProbeError):
        ndl.argmax(x, 1)


def test_graph_mode_and_lazy_mode_compute_through_the_device(probe):
    ns, device = probe
    from needle import graph as ad

    x = ad.Variable("x")
    y = ndl.exp(x) * 2.0
    (value,) = ad.Evaluator([y], device=device).run({x: np.array([0.0, 1.0])})
    np.testing.assert_allclose(value, 2.0 * np.exp([0.0, 1.0]))
    assert "exp" in ns.seen
    a = ndl.Tensor([1.0, 2.0], device=device)
    ns.seen.clear()
    ndl.autograd.LAZY_MODE = True
    try:
        lazy = ndl.tanh(a)
        assert lazy.cached_data is None and not ns.seen
    finally:
        ndl.autograd.LAZY_MODE = False
    np.testing.assert_allclose(lazy.numpy(), np.tanh([1.0, 2.0]))
    assert "tanh" in ns.seen and lazy.device == device


def test_boundary_view_of_a_probe_tensor_is_an_ndarray_on_the_probe(probe):
    _, device = probe
    t = ndl.Tensor([1.0, 2.0, 3.0], device=device)
    view = nd.NDArray._wrap(t._data, device)
    assert view.device == device and np.shares_memory(view._np, t._data)
    doubled = view + view  # NDArray arithmetic uses the device namespace too
    assert doubled.device == device
    np.testing.assert_array_equal(doubled.numpy(), [2.0, 4.0, 6.0])


def test_devices_do_not_mix(probe):
    _, device = probe
    a = ndl.Tensor([1.0], device=device)
    b = ndl.Tensor([1.0], device=ndl.cpu())
    with pytest.raises(DeviceError, match="different devices"):
        a + b


def test_cuda_is_present_but_disabled_without_cupy():
    cuda = ndl.cuda()
    assert repr(cuda) == "cuda()"
    try:
        import cupy  # noqa: F401

        has_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001
        has_gpu = False
    if has_gpu:
        pytest.skip("a GPU is present: cuda() is enabled here")
    assert not cuda.enabled() and cuda.xp is None
    with pytest.raises(DeviceError, match="not enabled"):
        ndl.Tensor([1.0], device=cuda)
    with pytest.raises(DeviceError, match="not enabled"):
        cuda.asarray(np.ones(2))
