"""Neural-network modules (``import needle.nn as nn``)."""

from .nn_basic import *  # noqa: F403
from .nn_basic import Module, Parameter, _child_modules, _unpack_params  # noqa: F401
from .nn_conv import *  # noqa: F403
from .nn_sequence import *  # noqa: F403
from .nn_transformer import *  # noqa: F403
from . import parallel  # noqa: E402  (ndl.nn.parallel.DistributedDataParallel)
