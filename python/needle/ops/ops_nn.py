"""Ops for convolutional networks: flip, dilate, undilate, pad and conv (NHWC)."""

from __future__ import annotations

from typing import Any

import numpy
from numpy.lib.stride_tricks import as_strided

from .._array import as_numpy, wrap
from ..autograd import Tensor, TensorOp
from ..errors import ShapeError
from .ops_mathematic import _normalize_axes, get_item, permute, transpose


def _axes_tuple(axes: Any) -> tuple:
    return (axes,) if isinstance(axes, (int, numpy.integer)) else tuple(axes)


class Flip(TensorOp):
    """Reverse the order of elements along ``axes``."""

    def __init__(self, axes: Any):
        self.axes = _axes_tuple(axes)

    def compute(self, a: Any) -> Any:
        av = as_numpy(a)
        axes = _normalize_axes(self.axes, av.ndim, "flip", av.shape)
        return wrap(numpy.ascontiguousarray(numpy.flip(av, axes)), a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return flip(out_grad, self.axes)


def flip(a: Tensor, axes: Any) -> Tensor:
    return Flip(axes)(a)


def _check_dilation(op: str, dilation: Any) -> int:
    if not isinstance(dilation, (int, numpy.integer)) or dilation < 0:
        raise ShapeError(f"{op}: dilation must be an integer >= 0, got {dilation!r}")
    return int(dilation)


class Dilate(TensorOp):
    """Insert ``dilation`` zeros after every element along ``axes`` (n -> n * (1 + d))."""

    def __init__(self, axes: Any, dilation: int):
        self.axes = _axes_tuple(axes)
        self.dilation = _check_dilation("dilate", dilation)

    def compute(self, a: Any) -> Any:
        av = as_numpy(a)
        axes = _normalize_axes(self.axes, av.ndim, "dilate", av.shape)
        step = self.dilation + 1
        shape = [d * step if i in axes else d for i, d in enumerate(av.shape)]
        out = numpy.zeros(shape, dtype=av.dtype)
        out[tuple(slice(None, None, step) if i in axes else slice(None)
                  for i in range(av.ndim))] = av
        return wrap(out, a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return undilate(out_grad, self.axes, self.dilation)


def dilate(a: Tensor, axes: Any, dilation: int) -> Tensor:
    return Dilate(axes, dilation)(a)


class UnDilate(TensorOp):
    """Keep every ``(1 + dilation)``-th element along ``axes``: the inverse of Dilate."""

    def __init__(self, axes: Any, dilation: int):
        self.axes = _axes_tuple(axes)
        self.dilation = _check_dilation("undilate", dilation)

    def compute(self, a: Any) -> Any:
        av = as_numpy(a)
        axes = _normalize_axes(self.axes, av.ndim, "undilate", av.shape)
        step = self.dilation + 1
        index = tuple(slice(None, None, step) if i in axes else slice(None)
                      for i in range(av.ndim))
        return wrap(numpy.ascontiguousarray(av[index]), a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return DilateLike(self.axes, self.dilation)(out_grad, node.inputs[0])


def undilate(a: Tensor, axes: Any, dilation: int) -> Tensor:
    return UnDilate(axes, dilation)(a)


class DilateLike(TensorOp):
    """Dilate ``g`` into an array of ``ref``'s shape (the adjoint of UnDilate, whose input
    length need not be a multiple of ``1 + dilation``)."""

    def __init__(self, axes: Any, dilation: int):
        self.axes = _axes_tuple(axes)
        self.dilation = dilation

    def compute(self, g: Any, ref: Any) -> Any:
        gv = as_numpy(g)
        axes = _normalize_axes(self.axes, gv.ndim, "dilate", gv.shape)
        out = numpy.zeros(ref.shape, dtype=gv.dtype)
        out[tuple(slice(None, None, self.dilation + 1) if i in axes else slice(None)
                  for i in range(gv.ndim))] = gv
        return wrap(out, g)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        return undilate(out_grad, self.axes, self.dilation), None


class Pad(TensorOp):
    """Zero padding, ``axes`` = ((before, after), ...) for every axis (like ``numpy.pad``)."""

    def __init__(self, axes: Any):
        self.axes = tuple((int(lo), int(hi)) for lo, hi in axes)
        if any(lo < 0 or hi < 0 for lo, hi in self.axes):
            raise ShapeError(f"pad: padding must be >= 0, got {self.axes}")

    def compute(self, a: Any) -> Any:
        av = as_numpy(a)
        if len(self.axes) != av.ndim:
            raise ShapeError(f"pad: {len(self.axes)} (before, after) pairs given for a "
                             f"tensor of shape {tuple(av.shape)}")
        return wrap(numpy.pad(av, self.axes), a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return get_item(out_grad, tuple(slice(lo, -hi if hi else None) for lo, hi in self.axes))


def pad(a: Tensor, axes: Any) -> Tensor:
    return Pad(axes)(a)


def _conv_param(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (tuple, list)):
        value = value[0]
    if not isinstance(value, (int, numpy.integer)) or value < minimum:
        raise ShapeError(f"conv: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Conv(TensorOp):
    """2-D convolution (cross-correlation) of NHWC input with a (kh, kw, Cin, Cout) kernel.

    Computed as one matrix product over an im2col view of the padded input.
    """

    def __init__(self, stride: int = 1, padding: int = 0):
        self.stride = _conv_param(stride, "stride", 1)
        self.padding = _conv_param(padding, "padding", 0)

    def compute(self, A: Any, B: Any) -> Any:
        x, w = as_numpy(A), as_numpy(B)
        if x.ndim != 4 or w.ndim != 4:
            raise ShapeError(f"conv: expects NHWC input and (k, k, Cin, Cout) weight, got "
                             f"shapes {tuple(x.shape)} and {tuple(w.shape)}")
        if x.shape[3] != w.shape[2]:
            raise ShapeError(f"conv: input has {x.shape[3]} channels but the weight expects "
                             f"{w.shape[2]} (shapes {tuple(x.shape)} and {tuple(w.shape)})")
        p, s = self.padding, self.stride
        if p:
            x = numpy.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        n, h, wd, c = x.shape
        kh, kw, _, c_out = w.shape
        ho, wo = (h - kh) // s + 1, (wd - kw) // s + 1
        if ho < 1 or wo < 1:
            raise ShapeError(f"conv: kernel {kh}x{kw} is larger than the padded input "
                             f"{h}x{wd} (input shape {tuple(A.shape)}, padding {p})")
        sn, sh, sw, sc = x.strides
        windows = as_strided(x, (n, ho, wo, kh, kw, c), (sn, sh * s, sw * s, sh, sw, sc),
                             writeable=False)
        out = windows.reshape(n * ho * wo, kh * kw * c) @ w.reshape(kh * kw * c, c_out)
        return wrap(out.reshape(n, ho, wo, c_out), A)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        X, W = node.inputs
        s, p = self.stride, self.padding
        _, h, wd, _ = X.shape
        kh, kw = W.shape[0], W.shape[1]
        grad_x = grad_w = None
        # The output grid, spread back onto the input grid's spacing.
        spread = dilate(out_grad, (1, 2), s - 1) if s > 1 else out_grad
        if X.requires_grad:
            # Full correlation of the spread gradient with the flipped kernel.
            w_flip = transpose(flip(W, (0, 1)), (2, 3))
            qh, qw = kh - 1 - p, kw - 1 - p
            g = _pad_or_crop(spread, (1, 2), (qh, qw))
            grad_x = conv(g, w_flip, stride=1, padding=0)
            grad_x = get_item(grad_x, (slice(None), slice(0, h), slice(0, wd), slice(None)))
        if W.requires_grad:
            ho, wo = out_grad.shape[1], out_grad.shape[2]
            g = permute(spread, (1, 2, 0, 3))[: (ho - 1) * s + 1, : (wo - 1) * s + 1]
            full = conv(permute(X, (3, 1, 2, 0)), g, stride=1, padding=p)
            grad_w = permute(full[:, :kh, :kw, :], (1, 2, 0, 3))
        return grad_x, grad_w


def _pad_or_crop(a: Tensor, axes: tuple, amounts: tuple) -> Tensor:
    """Pad both ends of each axis by its amount (>= 0) or crop them (< 0)."""
    pads = [(0, 0)] * 4
    crops: list = [slice(None)] * 4
    for axis, q in zip(axes, amounts):
        if q > 0:
            pads[axis] = (q, q)
        elif q < 0:
            crops[axis] = slice(-q, q)
    if any(lo for lo, _ in pads):
        a = pad(a, pads)
    if any(c != slice(None) for c in crops):
        a = get_item(a, tuple(crops))
    return a


def conv(a: Tensor, b: Tensor, stride: int = 1, padding: int = 1) -> Tensor:
    return Conv(stride, padding)(a, b)
