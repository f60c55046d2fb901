"""Function transforms over eager Tensors, in the style of ``torch.func`` and JAX.

``grad(f)(x)``, ``value_and_grad``, ``vjp``, ``jvp``, ``hvp``, ``jacobian``, ``hessian``.
All of them call the engine's ``reverse_pass`` directly, so they never read or write any
tensor's ``.grad``. Their results are graphs, which is what makes them compose:
``hessian(f)`` is ``jacobian(grad(f))``, and ``jvp`` is forward mode obtained from two
reverse passes (the VJP is linear in its cotangent ``u``; differentiating
``<vjp(u), t>`` with respect to ``u`` gives ``J t``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy

from . import ops
from .core import reverse_pass
from .errors import ShapeError
from .grad_mode import enable_grad
from .tensor import Tensor, raw_tensor, realize

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "hvp", "jacobian", "hessian"]

Argnums = int | tuple[int, ...]


def _leaf(x: Any) -> Tensor:
    """``x`` as a Tensor that requires grad; one that already records a graph is kept
    as it is, so transforms nest (the outer transform differentiates through the inner)."""
    if isinstance(x, Tensor):
        if x.requires_grad:
            return x
        return raw_tensor(realize(x), x._device, requires_grad=True)
    arr = numpy.asarray(x)
    return Tensor(arr, dtype=arr.dtype if arr.dtype.kind == "f" else None, requires_grad=True)


def _like(value: Any, ref: Tensor, what: str) -> Tensor:
    """``value`` as a Tensor with ``ref``'s shape, dtype and device (Tensors pass through)."""
    if not isinstance(value, Tensor):
        value = Tensor(numpy.asarray(value), device=ref.device, dtype=ref.dtype,
                       requires_grad=False)
    if value.shape != ref.shape:
        raise ShapeError(f"{what}: expected shape {ref.shape}, got {value.shape}")
    return value


def _const(values: numpy.ndarray, ref: Tensor, requires_grad: bool = False) -> Tensor:
    """``values`` (of ``ref``'s shape) as a constant in ``ref``'s dtype, on its device."""
    data = realize(ref)
    return raw_tensor(ref._device.asarray(numpy.asarray(values), data.dtype), ref._device,
                      requires_grad=requires_grad)


def _ones(ref: Tensor) -> Tensor:
    return _const(numpy.ones(ref.shape), ref)


def _pullback(out: Tensor, seed: Tensor, xs: Sequence[Tensor]) -> list[Tensor]:
    """``seed``-weighted gradients of ``out`` w.r.t. each of ``xs`` (zeros where unreached)."""
    wanted = set(xs)
    found = reverse_pass(out, seed, wanted) if out.requires_grad else {}
    return [found[x] if x in found else ops.zeros_like(x) for x in xs]


def _argnums(argnums: Argnums, nargs: int, where: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if not -nargs <= i < nargs:
            raise ValueError(f"{where}: argnums {argnums} out of range for {nargs} arguments")
    return tuple(i % nargs for i in nums)


def _check_output(out: Any, where: str, scalar: bool) -> Tensor:
    if not isinstance(out, Tensor):
        raise TypeError(f"{where}: fn must return a Tensor, got {type(out).__name__}")
    if scalar and out.size != 1:
        raise ShapeError(f"{where}: fn must return a scalar (one element), got shape "
                         f"{out.shape}; use vjp or jacobian for non-scalar outputs")
    return out


def _pick(items: Sequence, argnums: Argnums) -> Any:
    return items[0] if isinstance(argnums, int) else tuple(items)


def value_and_grad(fn: Callable[..., Any], argnums: Argnums = 0,
                   has_aux: bool = False) -> Callable[..., tuple]:
    """Transform ``fn`` into a function returning ``(fn(*args), gradient)``.

    Parameters
    ----------
    fn : callable
        Returns a one-element Tensor (or ``(tensor, aux)`` when ``has_aux``).
    argnums : int or tuple of int
        Which positional arguments to differentiate; a tuple gives a tuple of gradients.
    has_aux : bool
        ``fn`` returns ``(output, aux)``; the result is then ``((output, aux), gradient)``.
    """

    def wrapper(*args: Any, **kwargs: Any) -> tuple:
        nums = _argnums(argnums, len(args), "value_and_grad")
        args = list(args)
        with enable_grad():
            for i in nums:
                args[i] = _leaf(args[i])
            result = fn(*args, **kwargs)
            out = _check_output(result[0] if has_aux else result, "grad", scalar=True)
            grads = _pullback(out, _ones(out), [args[i] for i in nums])
        return result, _pick(grads, argnums)

    return wrapper


def grad(fn: Callable[..., Any], argnums: Argnums = 0,
         has_aux: bool = False) -> Callable[..., Any]:
    """Transform a scalar function into its gradient function: ``grad(f)(x) = df/dx``.

    The gradient is a graph, so ``grad(grad(f))`` works. See :func:`value_and_grad`.
    """

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result, g = value_and_grad(fn, argnums, has_aux)(*args, **kwargs)
        return (g, result[1]) if has_aux else g

    return wrapper


def vjp(fn: Callable[..., Tensor], *primals: Any) -> tuple[Tensor, Callable]:
    """``(fn(*primals), vjp_fn)`` where ``vjp_fn(v)`` is the tuple of ``v^T J`` per primal.

    ``vjp_fn`` can be called many times, with cotangents of the output's shape.
    """
    xs = [_leaf(p) for p in primals]
    with enable_grad():
        out = _check_output(fn(*xs), "vjp", scalar=False)

    def vjp_fn(cotangent: Any) -> tuple:
        with enable_grad():
            return tuple(_pullback(out, _like(cotangent, out, "vjp_fn: cotangent"), xs))

    return out, vjp_fn


def _pairs(primals: Any, tangents: Any, where: str) -> tuple[list, list]:
    ps = list(primals) if isinstance(primals, (tuple, list)) else [primals]
    ts = list(tangents) if isinstance(tangents, (tuple, list)) else [tangents]
    if len(ps) != len(ts):
        raise ValueError(f"{where}: {len(ps)} primals but {len(ts)} tangents")
    xs = [_leaf(p) for p in ps]
    return xs, [_like(t, x, f"{where}: tangent {i}") for i, (t, x) in enumerate(zip(ts, xs))]


def _inner(gs: Sequence[Tensor], ts: Sequence[Tensor]) -> Tensor:
    total = None
    for g, t in zip(gs, ts):
        term = (g * t).sum()
        total = term if total is None else total + term
    return total


def jvp(fn: Callable[..., Tensor], primals: Any, tangents: Any) -> tuple[Tensor, Tensor]:
    """Forward mode: ``(fn(*primals), J @ tangents)``, by the double-VJP construction.

    Parameters
    ----------
    primals, tangents : Tensor or tuple of Tensors
        Points and directions, one tangent per primal with the primal's shape.
    """
    xs, ts = _pairs(primals, tangents, "jvp")
    with enable_grad():
        out = _check_output(fn(*xs), "jvp", scalar=False)
        u = _const(numpy.zeros(out.shape), out, requires_grad=True)
        projected = _inner(_pullback(out, u, xs), ts)
        (tangent_out,) = _pullback(projected, _ones(projected), [u])
    return out, tangent_out


def hvp(fn: Callable[..., Tensor], primals: Any, tangents: Any) -> tuple[Tensor, Any]:
    """``(fn(*primals), H @ tangents)`` for a scalar ``fn`` (reverse over reverse).

    The product has the structure of ``primals``: one Tensor, or a tuple.
    """
    xs, ts = _pairs(primals, tangents, "hvp")
    with enable_grad():
        out = _check_output(fn(*xs), "hvp", scalar=True)
        projected = _inner(_pullback(out, _ones(out), xs), ts)
        products = _pullback(projected, _ones(projected), xs)
    return out, tuple(products) if isinstance(primals, (tuple, list)) else products[0]


def jacobian(fn: Callable[..., Tensor], argnums: Argnums = 0) -> Callable[..., Any]:
    """Transform ``fn`` into its Jacobian, of shape ``out.shape + x.shape``.

    Built one output element at a time with reverse passes; the result is a graph, so
    ``jacobian(grad(f))`` is the Hessian.
    """

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums(argnums, len(args), "jacobian")
        args = list(args)
        with enable_grad():
            for i in nums:
                args[i] = _leaf(args[i])
            xs = [args[i] for i in nums]
            out = _check_output(fn(*args, **kwargs), "jacobian", scalar=False)
            if out.size == 0:
                raise ShapeError("jacobian: fn returned an empty tensor")
            rows = []
            for k in range(out.size):
                onehot = numpy.zeros(out.size)
                onehot[k] = 1
                rows.append(_pullback(out, _const(onehot.reshape(out.shape), out), xs))
            jacs = [ops.stack([ops.reshape(row[j], (x.size,)) for row in rows], 0)
                    .reshape(out.shape + x.shape) for j, x in enumerate(xs)]
        return _pick(jacs, argnums)

    return wrapper


def hessian(fn: Callable[..., Tensor], argnums: Argnums = 0) -> Callable[..., Any]:
    """Transform a scalar ``fn`` into its Hessian: ``jacobian(grad(fn))``.

    With a tuple ``argnums`` the result is nested: ``H[i][j] = d2f / dx_i dx_j``.
    """
    if isinstance(argnums, int):
        return jacobian(grad(fn, argnums), argnums)

    def wrapper(*args: Any, **kwargs: Any) -> tuple:
        def grad_i(i: int) -> Callable:
            return lambda *a, **kw: grad(fn, argnums)(*a, **kw)[i]

        return tuple(jacobian(grad_i(i), argnums)(*args, **kwargs)
                     for i in range(len(argnums)))

    return wrapper
