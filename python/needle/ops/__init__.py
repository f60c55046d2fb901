"""needle's ops: one small class per op plus its lowercase function."""

from .ops_dtype import CastLike, cast_like
from .ops_fused import MatMulLayerNorm, MatMulSoftmax, matmul_layernorm, matmul_softmax
from .ops_logarithmic import LogSoftmax, LogSumExp, Softmax, logsoftmax, logsumexp, softmax
from .ops_mathematic import *  # noqa: F403
from .ops_mathematic import __all__ as _math_all
from .ops_nn import (
    Conv, ConvGradInput, ConvGradWeight, Dilate, DilateLike, Flip, Pad, UnDilate, conv, dilate,
    flip, pad, undilate,
)
from .ops_tuple import (
    FusedAddScalars, MakeTensorTuple, Split, Stack, TupleGetItem, fused_add_scalars,
    make_tuple, split, stack, tuple_get_item,
)

__all__ = list(_math_all) + [
    "LogSoftmax", "LogSumExp", "Softmax", "logsoftmax", "logsumexp", "softmax",
    "Conv", "ConvGradInput", "ConvGradWeight", "Dilate", "DilateLike", "Flip", "Pad", "UnDilate",
    "conv", "dilate", "flip", "pad", "undilate",
    "FusedAddScalars", "MakeTensorTuple", "Split", "Stack", "TupleGetItem",
    "fused_add_scalars", "make_tuple", "split", "stack", "tuple_get_item",
]
__all__ += ["MatMulLayerNorm", "MatMulSoftmax", "matmul_layernorm", "matmul_softmax"]
__all__ += ["CastLike", "cast_like"]
