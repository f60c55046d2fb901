"""Optimizers: SGD (with momentum) and Adam, plus gradient-norm clipping.

Updates are small ops applied under ``no_grad`` to ``p``, ``p.grad`` and the optimizer's
state, and assigned through ``p.data``: no graph is recorded, ``p.grad`` is never modified
in place, and parameters keep their dtype (float32 by default). Being ops, the updates are
recorded by ``ndl.jit`` like the rest of a training step. The Python scalars that change
from step to step (the learning rate, Adam's bias corrections) reach the ops as a small
tensor made by :func:`_host_scalars`, which a jit replay recomputes at every call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from . import autograd
from ._array import as_numpy, from_numpy, wrap
from .autograd import Tensor, TensorOp, no_grad
from .errors import GraphError

__all__ = ["Optimizer", "SGD", "Adam", "clip_grad_norm"]


def _array(t: Tensor) -> np.ndarray:
    """The numpy view of a tensor's data (no copy)."""
    return as_numpy(t.realize_cached_data())


def _like(value: np.ndarray, like: Tensor) -> Tensor:
    """``value`` as a constant tensor in ``like``'s dtype, on ``like``'s device."""
    data = like.realize_cached_data()
    return Tensor.make_const(wrap(np.asarray(value, dtype=data.dtype), data))


def _tracing() -> bool:
    tracer = autograd._TRACER
    return tracer is not None and tracer.tracing()


def _host_scalars(owner: Any, values: Callable[[], tuple], like: Tensor,
                  managed: tuple[str, ...]) -> Tensor:
    """``values()`` (the step's Python scalars) as a float64 tensor on ``like``'s device.

    [jit hook] While ``ndl.jit`` traces, the tensor is recorded as host-computed: every
    replay calls ``values()`` again (so ``owner``'s attributes named in ``managed``, such
    as ``lr`` and Adam's step count ``t``, are read and advanced exactly as eagerly).
    """
    device = like.device

    def make() -> Tensor:
        return Tensor.make_const(from_numpy(np.array(values(), dtype=np.float64), device,
                                            "float64"))

    out = make()
    if autograd._TRACER is not None:
        autograd._TRACER.host(out, make, owner, managed)
    return out


class _UpdateOp(TensorOp):
    """An optimizer's arithmetic on arrays; applied under ``no_grad``, never differentiated.

    ``_raw`` is the arithmetic on numpy arrays; ``compute`` wraps it. ``ndl.jit`` calls
    ``_raw`` directly, with ``out=`` when ``_raw_out`` (a buffer it may reuse).
    """

    _raw_out = True

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        raise GraphError(f"{self.name}: optimizer updates are not differentiable")


class WeightDecay(_UpdateOp):
    """``grad + weight_decay * w`` (L2 weight decay folded into the gradient)."""

    def __init__(self, weight_decay: float):
        self.weight_decay = weight_decay

    def _raw(self, grad: np.ndarray, w: np.ndarray, out: Any = None) -> np.ndarray:
        if grad.dtype != w.dtype or (out is not None and out.dtype != w.dtype):
            return grad + self.weight_decay * w
        # grad + weight_decay * w, with the product in out (the same bits: * and + commute)
        t = np.multiply(w, self.weight_decay, out=out)
        return np.add(grad, t, out=t)

    def compute(self, grad: Any, w: Any) -> Any:
        return wrap(self._raw(as_numpy(grad), as_numpy(w)), grad)


class MovingAverage(_UpdateOp):
    """``beta * prev + (1 - beta) * g`` (``g * g`` when ``square``), in ``dtype``; without
    ``prev`` (the first step) just ``(1 - beta) * g``."""

    def __init__(self, beta: float, dtype: Any, square: bool = False):
        self.beta = beta
        self.dtype = np.dtype(dtype).name
        self.square = square

    def _raw(self, g: np.ndarray, prev: np.ndarray | None = None,
             out: Any = None) -> np.ndarray:
        if g.dtype != self.dtype or (prev is not None and prev.dtype != self.dtype) or (
                out is not None and out.dtype != self.dtype):
            new = (1 - self.beta) * g * g if self.square else (1 - self.beta) * g
            if prev is not None:
                new = self.beta * prev + new
            return np.asarray(new, dtype=self.dtype)
        # The same products and sum as above, computed in out (* and + commute bit for bit).
        new = np.multiply(g, 1 - self.beta, out=out)
        if self.square:
            np.multiply(new, g, out=new)
        if prev is not None:
            scaled = np.multiply(prev, self.beta)
            np.add(scaled, new, out=new)
        return new

    def compute(self, g: Any, prev: Any = None) -> Any:
        return wrap(self._raw(as_numpy(g), None if prev is None else as_numpy(prev)), g)


class SGDApply(_UpdateOp):
    """``w - lr * u`` with ``lr = hyper[0]``, in ``w``'s dtype."""

    def _raw(self, w: np.ndarray, u: np.ndarray, hyper: np.ndarray,
             out: Any = None) -> np.ndarray:
        # One array for the new value (allocating large arrays is what costs here).
        new = np.multiply(u, -float(hyper[0]), dtype=w.dtype, out=out)
        new += w
        return new

    def compute(self, w: Any, u: Any, hyper: Any) -> Any:
        return wrap(self._raw(as_numpy(w), as_numpy(u), as_numpy(hyper)), w)


class AdamApply(_UpdateOp):
    """``w - lr * (m / c1) / (sqrt(v / c2) + eps)`` with ``(lr, c1, c2) = hyper``."""

    def __init__(self, eps: float):
        self.eps = eps

    def _raw(self, w: np.ndarray, m: np.ndarray, v: np.ndarray, hyper: np.ndarray,
             out: Any = None) -> np.ndarray:
        lr, c1, c2 = hyper.tolist()
        if m.dtype != w.dtype or v.dtype != w.dtype or (out is not None and out.dtype != w.dtype):
            return np.asarray(w - lr * (m / c1) / (np.sqrt(v / c2) + self.eps), dtype=w.dtype)
        # w - lr * (m / c1) / (sqrt(v / c2) + eps), each step as above, in two arrays.
        step = np.true_divide(m, c1, out=out)
        np.multiply(step, lr, out=step)
        denom = np.true_divide(v, c2)
        np.sqrt(denom, out=denom)
        np.add(denom, self.eps, out=denom)
        np.true_divide(step, denom, out=step)
        return np.subtract(w, step, out=step)

    def compute(self, w: Any, m: Any, v: Any, hyper: Any) -> Any:
        return wrap(self._raw(as_numpy(w), as_numpy(m), as_numpy(v), as_numpy(hyper)), w)


class Optimizer:
    """Base class: holds ``params`` and knows how to clear their gradients.

    Parameters
    ----------
    params : iterable of Tensor
        The parameters to update, e.g. ``model.parameters()``.
    """

    def __init__(self, params: Iterable[Tensor]) -> None:
        self.params = list(params)

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        raise NotImplementedError()

    def reset_grad(self) -> None:
        """Set every parameter's ``grad`` to None."""
        for p in self.params:
            p.grad = None

    zero_grad = reset_grad

    def clip_grad_norm(self, max_norm: float = 0.25) -> float:
        """Scale the gradients so that their global L2 norm is at most ``max_norm``.

        Returns the norm before clipping.
        """
        return clip_grad_norm(self.params, max_norm)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (moving-average form) and L2 weight decay.

    ``g = grad + weight_decay * p``; ``u = momentum * u + (1 - momentum) * g``;
    ``p = p - lr * u``. (Note: not PyTorch's ``u = momentum * u + g``.)
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params)
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.u: dict[Tensor, Tensor] = {}

    def step(self) -> None:
        if not self.params:
            return
        beta, decay = self.momentum, self.weight_decay
        hyper = _host_scalars(self, lambda: (self.lr,), self.params[0], ("lr",))
        with no_grad():
            for p in self.params:
                grad = p.grad
                if grad is None:
                    continue
                g = WeightDecay(decay)(grad, p) if decay else grad
                if beta:
                    prev = self.u.get(p)
                    average = MovingAverage(beta, p.dtype)
                    g = self.u[p] = average(g) if prev is None else average(g, prev)
                p.data = SGDApply()(p, g, hyper)


class Adam(Optimizer):
    """Adam with bias correction and L2 (not decoupled) weight decay.

    ``g = grad + weight_decay * p``; ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``p = p - lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``,
    ``v_hat = v / (1 - b2^t)``, ``t`` counting steps.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params)
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay
        self.t = 0
        self.m: dict[Tensor, Tensor] = {}
        self.v: dict[Tensor, Tensor] = {}

    def _advance(self) -> tuple[float, float, float]:
        """Count the step; the learning rate and both bias corrections of this step."""
        self.t += 1
        return self.lr, 1 - self.beta1 ** self.t, 1 - self.beta2 ** self.t

    def step(self) -> None:
        if not self.params:
            self.t += 1
            return
        hyper = _host_scalars(self, self._advance, self.params[0], ("lr", "t"))
        b1, b2, decay = self.beta1, self.beta2, self.weight_decay
        with no_grad():
            for p in self.params:
                grad = p.grad
                if grad is None:
                    continue
                g = WeightDecay(decay)(grad, p) if decay else grad
                m_prev, v_prev = self.m.get(p), self.v.get(p)
                first, second = MovingAverage(b1, p.dtype), MovingAverage(b2, p.dtype, True)
                m = self.m[p] = first(g) if m_prev is None else first(g, m_prev)
                v = self.v[p] = second(g) if v_prev is None else second(g, v_prev)
                p.data = AdamApply(self.eps)(p, m, v, hyper)


class GradNorm(_UpdateOp):
    """The global L2 norm of all inputs, as a 0-d float64 array (sums of squares in float64)."""

    _raw_out = False

    def _raw(self, *grads: np.ndarray) -> np.ndarray:
        total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
        return np.asarray(total, dtype=np.float64)

    def compute(self, *grads: Any) -> Any:
        return wrap(self._raw(*[as_numpy(g) for g in grads]), grads[0])


class ClipByNorm(_UpdateOp):
    """``g * (max_norm / (norm + 1e-6))`` where that factor is below 1, else ``g``."""

    _raw_out = False

    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def _raw(self, g: np.ndarray, norm: np.ndarray) -> np.ndarray:
        scale = self.max_norm / (float(norm) + 1e-6)
        return g * scale if scale < 1.0 else g

    def compute(self, g: Any, norm: Any) -> Any:
        out = self._raw(as_numpy(g), as_numpy(norm))
        return g if out is as_numpy(g) else wrap(out, g)


def clip_grad_norm(params: Iterable[Tensor], max_norm: float = 0.25) -> Any:
    """Scale gradients in place of ``p.grad`` (new tensors) to a global L2 norm <= ``max_norm``.

    Parameters
    ----------
    params : iterable of Tensor
    max_norm : float

    Returns
    -------
    float
        The global norm before clipping. Inside a function traced by ``ndl.jit`` it is a
        0-d float64 Tensor instead (a Python float would be read from this step's data),
        and every gradient is replaced, by itself when it needs no scaling.
    """
    with_grad = [p for p in params if p.grad is not None]
    if _tracing() and with_grad:
        # The same arithmetic as below, as ops, so that a replay redoes the data-dependent part.
        with no_grad():
            norm = GradNorm()(*[p.grad for p in with_grad])
            for p in with_grad:
                p.grad = ClipByNorm(max_norm)(p.grad, norm)
        return norm
    total = math.sqrt(sum(float(np.sum(np.square(_array(p.grad), dtype=np.float64)))
                          for p in with_grad))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in with_grad:
            p.grad = _like(_array(p.grad) * scale, p.grad)
    return total
