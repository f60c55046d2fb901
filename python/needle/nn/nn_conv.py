"""Convolutional layers."""

from __future__ import annotations

from typing import Any

from .. import init, ops
from ..autograd import Tensor
from ..errors import ShapeError
from .nn_basic import Module, Parameter

__all__ = ["Conv"]


def _first(value: Any) -> int:
    """The course accepts tuple sizes but only uses their first element."""
    return int(value[0]) if isinstance(value, (tuple, list)) else int(value)


class Conv(Module):
    """2-D convolution over NCHW input with "same" padding (``kernel_size // 2``).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and the output.
    kernel_size : int or tuple
        Square kernel side (a tuple's first element is used).
    stride : int or tuple
        Step between receptive fields.
    bias : bool
        Add a learned per-channel bias.
    device, dtype
        Where and as what the parameters are created.

    Attributes
    ----------
    weight : Parameter
        (k, k, in_channels, out_channels), ``init.kaiming_uniform`` with
        fan_in = in_channels * k**2 and fan_out = out_channels * k**2 (drawn first).
    bias : Parameter or None
        (out_channels,), uniform in +-1 / sqrt(in_channels * k**2).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 bias: bool = True, device: Any = None, dtype: str = "float32") -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = k = _first(kernel_size)
        self.stride = _first(stride)
        self.padding = k // 2
        receptive = k * k
        self.weight = Parameter(init.kaiming_uniform(
            self.in_channels * receptive, self.out_channels * receptive,
            shape=(k, k, self.in_channels, self.out_channels), device=device, dtype=dtype,
            requires_grad=True))
        self.bias = None
        if bias:
            bound = 1.0 / (self.in_channels * receptive) ** 0.5
            self.bias = Parameter(init.rand(self.out_channels, low=-bound, high=bound,
                                            device=device, dtype=dtype, requires_grad=True))

    def forward(self, x: Tensor) -> Tensor:
        if len(x.shape) != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"Conv: expected NCHW input with {self.in_channels} channels, "
                             f"got shape {x.shape}")
        nhwc = ops.permute(x, (0, 2, 3, 1))
        out = ops.conv(nhwc, self.weight, stride=self.stride, padding=self.padding)
        if self.bias is not None:
            bias = ops.reshape(self.bias, (1, 1, 1, self.out_channels))
            out = out + ops.broadcast_to(bias, out.shape)
        return ops.permute(out, (0, 3, 1, 2))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, bias={self.bias is not None}")
