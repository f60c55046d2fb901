"""needle's ops: one small class per op plus its lowercase function."""

from .ops_dtype import CastLike, cast_like
from .ops_fused import MatMulLayerNorm, MatMulSoftmax, matmul_layernorm, matmul_softmax
from .ops_inplace import LandedGetItem, SetItem, SetItemScalar, set_item
from .ops_logarithmic import LogSoftmax, LogSumExp, Softmax, logsoftmax, logsumexp, softmax
from .ops_mathematic import *  # noqa: F403
from .ops_mathematic import __all__ as _math_all
from .ops_nn import (
    Conv, ConvGradInput, ConvGradWeight, Dilate, DilateLike, Flip, Pad, UnDilate, conv, dilate,
    flip, pad, undilate,
)
from .ops_reduce import *  # noqa: F403
from .ops_reduce import __all__ as _reduce_all
from .ops_select import *  # noqa: F403
from .ops_select import __all__ as _select_all
from .ops_shape import *  # noqa: F403
from .ops_shape import __all__ as _shape_all
from .ops_trig import *  # noqa: F403
from .ops_trig import __all__ as _trig_all
from .ops_ordered import OrderedMatMul, ordered_matmul
from .ops_tuple import (
    FusedAddScalars, MakeTensorTuple, Split, Stack, TupleAdjoint, TupleGetItem,
    fused_add_scalars, make_tuple, split, stack, tuple_get_item,
)

__all__ = list(_math_all) + [
    "LogSoftmax", "LogSumExp", "Softmax", "logsoftmax", "logsumexp", "softmax",
    "Conv", "ConvGradInput", "ConvGradWeight", "Dilate", "DilateLike", "Flip", "Pad", "UnDilate",
    "conv", "dilate", "flip", "pad", "undilate",
    "FusedAddScalars", "MakeTensorTuple", "Split", "Stack", "TupleAdjoint", "TupleGetItem",
    "fused_add_scalars", "make_tuple", "split", "stack", "tuple_get_item",
]
__all__ += ["MatMulLayerNorm", "MatMulSoftmax", "matmul_layernorm", "matmul_softmax"]
__all__ += list(_reduce_all) + list(_select_all) + list(_shape_all) + list(_trig_all)
__all__ += ["OrderedMatMul", "ordered_matmul"]
__all__ += ["LandedGetItem", "SetItem", "SetItemScalar", "set_item"]
__all__ += ["CastLike", "cast_like"]
