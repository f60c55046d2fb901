"""Ops for convolutional networks: flip, dilate, undilate, pad and conv (NHWC)."""

from __future__ import annotations

from typing import Any

import numpy
from numpy.lib.stride_tricks import as_strided

from .._array import as_numpy, contiguous, wrap
from .._dtype import operand_pair
from ..autograd import Tensor, TensorOp
from ..errors import ShapeError
from .ops_mathematic import _normalize_axes, get_item


def _axes_tuple(axes: Any) -> tuple:
    return (axes,) if isinstance(axes, (int, numpy.integer)) else tuple(axes)


class Flip(TensorOp):
    """Reverse the order of elements along ``axes``."""

    def __init__(self, axes: Any):
        self.axes = _axes_tuple(axes)

    def compute(self, a: Any) -> Any:
        av = as_numpy(a)
        axes = _normalize_axes(self.axes, av.ndim, "flip", av.shape)
        return wrap(contiguous(numpy.flip(av, axes)), a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return flip(out_grad, self.axes)


def flip(a: Tensor, axes: Any) -> Tensor:
    """``a`` reversed along ``axes`` (an int or a tuple of ints)."""
    return Flip(axes)(a)


def _every(step: int, axes: tuple, ndim: int) -> tuple:
    """The index that keeps every ``step``-th element along ``axes`` (all of the others)."""
    return tuple(slice(None, None, step) if i in axes else slice(None) for i in range(ndim))


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
        out[_every(step, axes, av.ndim)] = av
        return wrap(out, a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return undilate(out_grad, self.axes, self.dilation)


def dilate(a: Tensor, axes: Any, dilation: int) -> Tensor:
    """``a`` with ``dilation`` zeros inserted after every element along ``axes``."""
    return Dilate(axes, dilation)(a)


class UnDilate(TensorOp):
    """Keep every ``(1 + dilation)``-th element along ``axes``: the inverse of Dilate."""

    def __init__(self, axes: Any, dilation: int):
        self.axes = _axes_tuple(axes)
        self.dilation = _check_dilation("undilate", dilation)

    def compute(self, a: Any) -> Any:
        av = as_numpy(a)
        axes = _normalize_axes(self.axes, av.ndim, "undilate", av.shape)
        return wrap(contiguous(av[_every(self.dilation + 1, axes, av.ndim)]), a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return DilateLike(self.axes, self.dilation)(out_grad, node.inputs[0])


def undilate(a: Tensor, axes: Any, dilation: int) -> Tensor:
    """Every ``(1 + dilation)``-th element of ``a`` along ``axes`` (the inverse of dilate)."""
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
        out[_every(self.dilation + 1, axes, gv.ndim)] = gv
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
    """``a`` zero-padded by ``axes`` = ((before, after), ...), one pair per axis."""
    return Pad(axes)(a)


def _conv_param(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (tuple, list)):
        value = value[0]
    if not isinstance(value, (int, numpy.integer)) or value < minimum:
        raise ShapeError(f"conv: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _conv_shapes(op: str, x_shape: tuple, w_shape: tuple, s: int, p: int) -> tuple:
    """Check NHWC input against a (kh, kw, Cin, Cout) kernel; return (Ho, Wo)."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ShapeError(f"{op}: expects NHWC input and (k, k, Cin, Cout) weight, got "
                         f"shapes {tuple(x_shape)} and {tuple(w_shape)}")
    if x_shape[3] != w_shape[2]:
        raise ShapeError(f"{op}: input has {x_shape[3]} channels but the weight expects "
                         f"{w_shape[2]} (shapes {tuple(x_shape)} and {tuple(w_shape)})")
    h, wd = x_shape[1] + 2 * p, x_shape[2] + 2 * p
    ho, wo = (h - w_shape[0]) // s + 1, (wd - w_shape[1]) // s + 1
    if ho < 1 or wo < 1:
        raise ShapeError(f"{op}: kernel {w_shape[0]}x{w_shape[1]} is larger than the padded "
                         f"input {h}x{wd} (input shape {tuple(x_shape)}, padding {p})")
    return ho, wo


def _im2col(x: numpy.ndarray, kh: int, kw: int, s: int, p: int) -> numpy.ndarray:
    """(N*Ho*Wo, kh*kw*C) matrix of every receptive field of the zero-padded input."""
    n, h, wd, c = x.shape
    if p:
        padded = numpy.zeros((n, h + 2 * p, wd + 2 * p, c), dtype=x.dtype)
        padded[:, p:p + h, p:p + wd, :] = x
        x = padded
    else:
        x = contiguous(x)
    ho, wo = (x.shape[1] - kh) // s + 1, (x.shape[2] - kw) // s + 1
    sn, sh, sw, sc = x.strides
    windows = as_strided(x, (n, ho, wo, kh, kw, c), (sn, sh * s, sw * s, sh, sw, sc),
                         writeable=False)
    return windows.reshape(n * ho * wo, kh * kw * c)


def _col2im(cols: numpy.ndarray, x_shape: tuple, kh: int, kw: int, s: int,
            p: int) -> numpy.ndarray:
    """Adjoint of ``_im2col``: add every receptive-field entry back onto its input pixel.

    One strided add per kernel offset (kh*kw of them), never a loop over pixels.
    """
    n, h, wd, c = x_shape
    ho, wo = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
    cols = cols.reshape(n, ho, wo, kh, kw, c)
    out = numpy.zeros((n, h + 2 * p, wd + 2 * p, c), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s, :] += cols[:, :, :, i, j, :]
    return out[:, p:p + h, p:p + wd, :] if p else out


class _ConvOp(TensorOp):
    """Holds the checked ``stride`` and ``padding`` shared by conv and its gradient ops."""

    def __init__(self, stride: int = 1, padding: int = 0):
        self.stride = _conv_param(stride, "stride", 1)
        self.padding = _conv_param(padding, "padding", 0)


class Conv(_ConvOp):
    """2-D convolution (cross-correlation) of NHWC input with a (kh, kw, Cin, Cout) kernel.

    Computed as one matrix product over an im2col view of the padded input; the
    gradients are the dedicated ops ConvGradInput and ConvGradWeight (one matmul each).
    """

    def compute(self, A: Any, B: Any) -> Any:
        x, w = operand_pair(A, B)
        s, p = self.stride, self.padding
        ho, wo = _conv_shapes("conv", x.shape, w.shape, s, p)
        kh, kw, _, c_out = w.shape
        cols = _im2col(x, kh, kw, s, p)
        out = cols @ w.reshape(-1, c_out)
        return wrap(out.reshape(x.shape[0], ho, wo, c_out), A)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        X, W = node.inputs
        s, p = self.stride, self.padding
        # Skip the product for an input that takes no gradient (e.g. the image batch).
        grad_x = ConvGradInput(s, p)(out_grad, W, X) if X.requires_grad else None
        grad_w = ConvGradWeight(s, p)(X, out_grad, W) if W.requires_grad else None
        return grad_x, grad_w


def conv(a: Tensor, b: Tensor, stride: int = 1, padding: int = 1) -> Tensor:
    """2-D convolution of NHWC ``a`` with a (k, k, Cin, Cout) kernel ``b``.

    Parameters
    ----------
    a : Tensor
        Input batch (N, H, W, Cin).
    b : Tensor
        Kernel (kh, kw, Cin, Cout).
    stride : int
        Step between windows.
    padding : int
        Zeros added on each side of H and W (the course's default is 1).

    Returns
    -------
    Tensor
        (N, (H + 2p - kh) // s + 1, (W + 2p - kw) // s + 1, Cout).
    """
    return Conv(stride, padding)(a, b)


class ConvGradInput(_ConvOp):
    """Input gradient of ``conv``: ``(dY, W, X) -> dX``; X is only read for its shape.

    Linear in dY and W, so its own gradients are a conv and a ConvGradWeight.
    """

    def compute(self, G: Any, B: Any, ref: Any) -> Any:
        g, w = operand_pair(G, B)
        s, p = self.stride, self.padding
        ho, wo = _conv_shapes("conv_grad_input", tuple(ref.shape), w.shape, s, p)
        kh, kw, _, c_out = w.shape
        if tuple(g.shape) != (ref.shape[0], ho, wo, c_out):
            raise ShapeError(f"conv_grad_input: output gradient has shape {tuple(g.shape)}, "
                             f"expected {(ref.shape[0], ho, wo, c_out)}")
        cols = g.reshape(-1, c_out) @ w.reshape(-1, c_out).T
        return wrap(_col2im(cols, tuple(ref.shape), kh, kw, s, p), G)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        G, W, X = node.inputs
        s, p = self.stride, self.padding
        grad_g = conv(out_grad, W, s, p) if G.requires_grad else None
        grad_w = ConvGradWeight(s, p)(out_grad, G, W) if W.requires_grad else None
        return grad_g, grad_w, None


class ConvGradWeight(_ConvOp):
    """Kernel gradient of ``conv``: ``(X, dY, W) -> dW``; W is only read for its shape.

    Linear in X and dY, so its own gradients are a ConvGradInput and a conv.
    """

    def compute(self, A: Any, G: Any, ref: Any) -> Any:
        x, g = operand_pair(A, G)
        s, p = self.stride, self.padding
        ho, wo = _conv_shapes("conv_grad_weight", x.shape, tuple(ref.shape), s, p)
        kh, kw, c_in, c_out = ref.shape
        if tuple(g.shape) != (x.shape[0], ho, wo, c_out):
            raise ShapeError(f"conv_grad_weight: output gradient has shape {tuple(g.shape)}, "
                             f"expected {(x.shape[0], ho, wo, c_out)}")
        cols = _im2col(x, kh, kw, s, p)
        out = cols.T @ g.reshape(-1, c_out)
        return wrap(out.reshape(kh, kw, c_in, c_out), A)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        X, G, W = node.inputs
        s, p = self.stride, self.padding
        grad_x = ConvGradInput(s, p)(G, out_grad, X) if X.requires_grad else None
        grad_g = conv(X, out_grad, s, p) if G.requires_grad else None
        return grad_x, grad_g, None
