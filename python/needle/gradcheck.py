"""Numerical gradient checking (like ``torch.autograd.gradcheck``).

``gradcheck(fn, *inputs)`` compares the gradients needle computes with central
finite differences; ``gradgradcheck`` does the same for second derivatives. Use
float64 inputs: float32 finite differences are too coarse to check anything.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .autograd import Tensor, reverse_pass
from .errors import GraphError, NeedleError

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck", "numerical_grads", "analytic_grads"]


class GradcheckError(NeedleError, AssertionError):
    """Analytic and numerical gradients disagree."""


def _as_tensors(inputs: tuple) -> list[Tensor]:
    out = []
    for x in inputs:
        if not isinstance(x, Tensor):
            raise TypeError(f"gradcheck: inputs must be Tensors, got {type(x).__name__}")
        out.append(x)
    return out


def _projection(out: Tensor, seed: int) -> np.ndarray:
    """A fixed random vector that turns a non-scalar output into a scalar."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(out.shape).astype(out.numpy().dtype)


def analytic_grads(fn: Callable[..., Tensor], inputs: list[Tensor], seed: int = 0) -> list:
    """Gradients of ``sum(fn(*inputs) * v)`` w.r.t. each input, as Tensors (graphs)."""
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    v = Tensor(_projection(out, seed), device=out.device, dtype=out.dtype, requires_grad=False)
    if not out.requires_grad:
        return [None for _ in inputs]
    wanted = set(inputs)
    grads = reverse_pass(out, v, wanted)
    return [grads.get(x) for x in inputs]


def numerical_grads(fn: Callable[..., Tensor], inputs: list[Tensor], eps: float = 1e-6,
                    seed: int = 0) -> list[np.ndarray]:
    """Central finite differences of ``sum(fn(*inputs) * v)`` w.r.t. each input."""
    arrays = [x.numpy() for x in inputs]

    def value(arrs: list) -> float:
        # requires_grad=True so that fn may itself differentiate (gradgradcheck).
        ts = [Tensor(a, device=x.device, dtype=x.dtype, requires_grad=True)
              for a, x in zip(arrs, inputs)]
        out = fn(*ts)
        return float(np.sum(out.numpy() * _projection(out, seed)))

    grads = []
    for k, base in enumerate(arrays):
        g = np.zeros(base.shape, dtype=np.float64)
        flat = g.reshape(-1)
        for j in range(base.size):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[k].reshape(-1)[j] += eps
            minus[k].reshape(-1)[j] -= eps
            flat[j] = (value(plus) - value(minus)) / (2 * eps)
        grads.append(g)
    return grads


def _compare(analytic: list, numeric: list, inputs: list, atol: float, rtol: float,
             what: str, raise_exception: bool) -> bool:
    for i, (a, n, x) in enumerate(zip(analytic, numeric, inputs)):
        a_np = np.zeros(x.shape) if a is None else a.numpy().astype(np.float64)
        if a_np.shape != n.shape:
            msg = (f"{what}: gradient of input {i} has shape {a_np.shape}, "
                   f"expected {n.shape}")
            if raise_exception:
                raise GradcheckError(msg)
            return False
        err = np.abs(a_np - n)
        bad = err > atol + rtol * np.abs(n)
        if bad.any():
            j = np.unravel_index(int(np.argmax(err - atol - rtol * np.abs(n))), n.shape)
            msg = (f"{what}: input {i} (shape {x.shape}): analytic and numerical gradients "
                   f"differ at {tuple(int(t) for t in j)}: analytic {a_np[j]:.6g}, numerical "
                   f"{n[j]:.6g}; max abs error {err.max():.3g}, {int(bad.sum())} of "
                   f"{n.size} entries outside atol={atol}, rtol={rtol}")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def gradcheck(fn: Callable[..., Tensor], *inputs: Tensor, eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Check first derivatives of ``fn`` at ``inputs`` against central finite differences.

    Parameters
    ----------
    fn : callable
        Takes the input Tensors, returns a Tensor (any shape: it is projected on a
        fixed random vector).
    *inputs : Tensor
        Points to check at; float64 is strongly recommended.
    eps, atol, rtol : float
        Finite-difference step and tolerances.
    raise_exception : bool
        Raise :class:`GradcheckError` with a report on failure (else return False).

    Returns
    -------
    bool
        True when every gradient matches.
    """
    xs = _as_tensors(inputs)
    analytic = analytic_grads(fn, xs)
    numeric = numerical_grads(fn, xs, eps)
    return _compare(analytic, numeric, xs, atol, rtol, "gradcheck", raise_exception)


def gradgradcheck(fn: Callable[..., Tensor], *inputs: Tensor, eps: float = 1e-6,
                  atol: float = 1e-4, rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Check second derivatives: ``gradcheck`` of ``x -> sum_i <grad_i fn(x), u_i>``.

    The inner gradients are needle graphs, so this checks that every op's gradient is
    itself correctly differentiable.
    """
    xs = _as_tensors(inputs)
    rng = np.random.default_rng(1)
    us = [rng.standard_normal(x.shape) for x in xs]

    def grad_dot(*args: Tensor) -> Tensor:
        grads = analytic_grads(fn, list(args))
        total = None
        for g, u in zip(grads, us):
            if g is None:
                continue
            term = (g * Tensor(u, device=g.device, dtype=g.dtype, requires_grad=False)).sum()
            total = term if total is None else total + term
        if total is None:
            raise GraphError("gradgradcheck: fn does not depend on its inputs")
        return total

    return gradcheck(grad_dot, *xs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
