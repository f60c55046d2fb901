"""needle's ops: one small class per op plus its lowercase function."""

from .ops_logarithmic import LogSoftmax, LogSumExp, Softmax, logsoftmax, logsumexp, softmax
from .ops_mathematic import *  # noqa: F403
from .ops_mathematic import __all__ as _math_all
from .ops_nn import (
    Conv, Dilate, DilateLike, Flip, Pad, UnDilate, conv, dilate, flip, pad, undilate,
)
from .ops_tuple import (
    FusedAddScalars, MakeTensorTuple, Split, Stack, TupleGetItem, fused_add_scalars,
    make_tuple, split, stack, tuple_get_item,
)

__all__ = list(_math_all) + [
    "LogSoftmax", "LogSumExp", "Softmax", "logsoftmax", "logsumexp", "softmax",
    "Conv", "Dilate", "DilateLike", "Flip", "Pad", "UnDilate", "conv", "dilate", "flip", "pad",
    "undilate", "FusedAddScalars", "MakeTensorTuple", "Split", "Stack", "TupleGetItem",
    "fused_add_scalars", "make_tuple", "split", "stack", "tuple_get_item",
]
