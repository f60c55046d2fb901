"""needle: an eager, tape-based autodiff tensor library over numpy (Needle-compatible).

``import needle as ndl``; this module only re-exports.
"""

from . import autograd, ops
from .autograd import (
    Tensor,
    TensorTuple,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .backend_selection import (
    BACKEND,
    Device,
    NDArray,
    all_devices,
    array_api,
    cpu,
    cpu_numpy,
    cuda,
    default_device,
)
from .errors import (
    CheckpointError,
    DataFormatError,
    DeviceError,
    DTypeError,
    GraphError,
    IndexOutOfRange,
    JitError,
    NeedleError,
    ShapeError,
)
from .ops import *  # noqa: F403
from . import inplace  # noqa: E402,I001  (in-place ops: Tensor.add_, x[i] = v, ...)

# The training stack; init's ones/zeros(_like) (shape arguments) replace the op versions.
from . import init, nn, optim, data  # noqa: E402,I001
from .init import ones, ones_like, zeros, zeros_like  # noqa: E402
from .serialization import load, save  # noqa: E402
from . import graph, functional  # noqa: E402,I001  (graph mode, function transforms)
from . import distributed  # noqa: E402,I001  (data parallelism over MPI; mpi4py loads lazily)
from . import viz  # noqa: E402,I001  (Graphviz pictures of the graph)
from . import jit  # noqa: E402,I001  (ndl.jit(fn): a callable module, see needle/jit)

from . import backend_ndarray  # noqa: E402,I001  (course tests: `from needle import backend_ndarray`)
