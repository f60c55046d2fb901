"""Optimizers: SGD (with momentum) and Adam, plus gradient-norm clipping.

Updates are computed on the arrays behind ``p.data`` and ``p.grad`` and assigned
through ``p.data``: no graph is recorded, ``p.grad`` is never modified in place, and
parameters keep their dtype (float32 by default).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .tensor import Tensor, raw_tensor, realize

__all__ = ["Optimizer", "SGD", "Adam", "clip_grad_norm"]


def _array(t: Tensor) -> Any:
    """The tensor's own array (of its device's namespace; no copy)."""
    return realize(t)


def _like(value: Any, like: Tensor) -> Tensor:
    """``value`` as a constant tensor in ``like``'s dtype, on ``like``'s device."""
    xp = like._device.xp
    return raw_tensor(xp.asarray(value, dtype=realize(like).dtype), like._device)


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

    def _grads(self) -> Iterable[tuple[Tensor, np.ndarray]]:
        for p in self.params:
            if p.grad is not None:
                yield p, _array(p.grad)


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
        beta = self.momentum
        for p, grad in self._grads():
            w = _array(p)
            g = grad + self.weight_decay * w if self.weight_decay else grad
            if beta:
                prev = self.u.get(p)
                u = (1 - beta) * g if prev is None else beta * _array(prev) + (1 - beta) * g
                self.u[p] = _like(u, p)
            else:
                u = g
            # One fresh array for the new value (allocating large arrays is what costs here).
            xp = p._device.xp
            new = xp.multiply(u, -self.lr, dtype=w.dtype)
            xp.add(new, w, out=new)
            p.data = _like(new, p)


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

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for p, grad in self._grads():
            w = _array(p)
            g = grad + self.weight_decay * w if self.weight_decay else grad
            m_prev, v_prev = self.m.get(p), self.v.get(p)
            m = (1 - b1) * g if m_prev is None else b1 * _array(m_prev) + (1 - b1) * g
            v = (1 - b2) * g * g if v_prev is None else b2 * _array(v_prev) + (1 - b2) * g * g
            self.m[p], self.v[p] = _like(m, p), _like(v, p)
            xp = p._device.xp
            p.data = _like(w - self.lr * (m / c1) / (xp.sqrt(v / c2) + self.eps), p)


def clip_grad_norm(params: Iterable[Tensor], max_norm: float = 0.25) -> float:
    """Scale gradients in place of ``p.grad`` (new tensors) to a global L2 norm <= ``max_norm``.

    Parameters
    ----------
    params : iterable of Tensor
    max_norm : float

    Returns
    -------
    float
        The global norm before clipping.
    """
    with_grad = [p for p in params if p.grad is not None]
    total = math.sqrt(sum(float(p._device.xp.sum(p._device.xp.square(
        _array(p.grad), dtype=np.float64))) for p in with_grad))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in with_grad:
            p.grad = _like(_array(p.grad) * scale, p.grad)
    return total

