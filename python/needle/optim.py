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

from . import core
from .errors import GraphError
from .grad_mode import no_grad
from .tensor import Tensor, TensorOp, raw_tensor, realize

__all__ = ["Optimizer", "SGD", "Adam", "clip_grad_norm"]


def _array(t: Tensor) -> Any:
    """The tensor's own array (of its device's namespace; no copy)."""
    return realize(t)


def _like(value: Any, like: Tensor) -> Tensor:
    """``value`` as a constant tensor in ``like``'s dtype, on ``like``'s device."""
    xp = like._device.xp
    return raw_tensor(xp.asarray(value, dtype=realize(like).dtype), like._device)


def _tracing() -> bool:
    tracer = core.TRACER
    return tracer is not None and tracer.tracing()


def _host_scalars(owner: Any, values: Callable[[], tuple], like: Tensor,
                  managed: tuple[str, ...]) -> Tensor:
    """``values()`` (the step's Python scalars) as a float64 tensor on ``like``'s device.

    [jit hook] While ``ndl.jit`` traces, the tensor is recorded as host-computed: every
    replay calls ``values()`` again (so ``owner``'s attributes named in ``managed``, such
    as ``lr`` and Adam's step count ``t``, are read and advanced exactly as eagerly).
    """
    device = like.device
    xp = device.xp

    def make() -> Tensor:
        return raw_tensor(xp.asarray(values(), dtype=np.float64), device)

    out = make()
    if core.TRACER is not None:
        core.TRACER.host(out, make, owner, managed)
    return out


class _UpdateOp(TensorOp):
    """An optimizer's arithmetic on arrays; applied under ``no_grad``, never differentiated.

    ``_raw`` is the arithmetic in the operands' namespace ``self.xp``, able to write its
    result into ``out``; ``compute`` is ``_raw`` without a buffer. ``ndl.jit`` calls
    ``_raw`` directly, with ``out=`` when ``_raw_out`` (a buffer it may reuse).
    """

    _raw_out = True

    def compute(self, *arrays: Any) -> Any:
        return self._raw(*arrays)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        raise GraphError(f"{self.name}: optimizer updates are not differentiable")


class WeightDecay(_UpdateOp):
    """``grad + weight_decay * w`` (L2 weight decay folded into the gradient)."""

    def __init__(self, weight_decay: float):
        self.weight_decay = weight_decay

    def _raw(self, grad: Any, w: Any, out: Any = None) -> Any:
        xp = self.xp
        if grad.dtype != w.dtype or (out is not None and out.dtype != w.dtype):
            return xp.add(grad, xp.multiply(w, self.weight_decay))
        # grad + weight_decay * w, with the product in out (the same bits: * and + commute)
        t = xp.multiply(w, self.weight_decay, out=out)
        return xp.add(grad, t, out=t)


class MovingAverage(_UpdateOp):
    """``beta * prev + (1 - beta) * g`` (``g * g`` when ``square``), in ``dtype``; without
    ``prev`` (the first step) just ``(1 - beta) * g``."""

    def __init__(self, beta: float, dtype: Any, square: bool = False):
        self.beta = beta
        self.dtype = np.dtype(dtype).name
        self.square = square

    def _raw(self, g: Any, prev: Any = None, out: Any = None) -> Any:
        xp = self.xp
        if g.dtype != self.dtype or (prev is not None and prev.dtype != self.dtype) or (
                out is not None and out.dtype != self.dtype):
            new = xp.multiply(g, 1 - self.beta)
            if self.square:
                new = xp.multiply(new, g)
            if prev is not None:
                new = xp.add(xp.multiply(prev, self.beta), new)
            return xp.asarray(new, dtype=self.dtype)
        # The same products and sum, computed in out (* and + commute bit for bit).
        new = xp.multiply(g, 1 - self.beta, out=out)
        if self.square:
            xp.multiply(new, g, out=new)
        if prev is not None:
            scaled = xp.multiply(prev, self.beta)
            xp.add(scaled, new, out=new)
        return new


class SGDApply(_UpdateOp):
    """``w - lr * u`` with ``lr = hyper[0]``, in ``w``'s dtype."""

    def _raw(self, w: Any, u: Any, hyper: Any, out: Any = None) -> Any:
        xp = self.xp
        # One array for the new value (allocating large arrays is what costs here).
        new = xp.multiply(u, -float(hyper[0]), dtype=w.dtype, out=out)
        xp.add(new, w, out=new)
        return new


class AdamApply(_UpdateOp):
    """``w - lr * (m / c1) / (sqrt(v / c2) + eps)`` with ``(lr, c1, c2) = hyper``."""

    def __init__(self, eps: float):
        self.eps = eps

    def _raw(self, w: Any, m: Any, v: Any, hyper: Any, out: Any = None) -> Any:
        xp = self.xp
        lr, c1, c2 = hyper.tolist()
        if m.dtype != w.dtype or v.dtype != w.dtype or (out is not None and out.dtype != w.dtype):
            step = xp.multiply(xp.divide(m, c1), lr)
            denom = xp.add(xp.sqrt(xp.divide(v, c2)), self.eps)
            return xp.asarray(xp.subtract(w, xp.divide(step, denom)), dtype=w.dtype)
        # w - lr * (m / c1) / (sqrt(v / c2) + eps), each step as above, in two arrays.
        step = xp.divide(m, c1, out=out)
        xp.multiply(step, lr, out=step)
        denom = xp.divide(v, c2)
        xp.sqrt(denom, out=denom)
        xp.add(denom, self.eps, out=denom)
        xp.divide(step, denom, out=step)
        return xp.subtract(w, step, out=step)


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

    def _raw(self, *grads: Any) -> Any:
        xp = self.xp
        total = math.sqrt(sum(float(xp.sum(xp.square(g, dtype=np.float64))) for g in grads))
        return xp.asarray(total, dtype=np.float64)


class ClipByNorm(_UpdateOp):
    """``g * (max_norm / (norm + 1e-6))`` where that factor is below 1, else ``g``."""

    _raw_out = False

    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def _raw(self, g: Any, norm: Any) -> Any:
        scale = self.max_norm / (float(norm) + 1e-6)
        return self.xp.multiply(g, scale) if scale < 1.0 else g


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
    total = math.sqrt(sum(float(p._device.xp.sum(p._device.xp.square(
        _array(p.grad), dtype=np.float64))) for p in with_grad))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in with_grad:
            p.grad = _like(_array(p.grad) * scale, p.grad)
    return total
