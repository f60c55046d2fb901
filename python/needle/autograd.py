"""The public face of the engine: the names the course imports from ``needle.autograd``.

The engine itself is split by concern:

- ``needle.grad_mode``: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``is_grad_enabled``;
- ``needle.anomaly``: ``detect_anomaly``;
- ``needle.core``: ``Op``, ``Value``, the traversal helper ``walk`` (and ``find_topo_sort``),
  the reverse pass, ``LAZY_MODE``;
- ``needle.tensor``: ``Tensor``, ``TensorTuple``, ``TensorOp``, ``TensorTupleOp``.

``TENSOR_COUNTER`` (the number of live Values) is counted when read, and ``LAZY_MODE``
reads and writes ``needle.core.LAZY_MODE``: both are properties of this module.
"""

from __future__ import annotations

import sys
import types

from . import core
from .anomaly import detect_anomaly
from .backend_selection import Device, NDArray, array_api, cpu, default_device
from .core import (
    Op,
    Value,
    compute_gradient_of_variables,
    find_topo_sort,
    queue_callback,
    reverse_pass,
    sum_node_list,
    topo_sort_dfs,
    walk,
)
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .tensor import Tensor, TensorOp, TensorTuple, TensorTupleOp, check_device

__all__ = [
    "LAZY_MODE", "TENSOR_COUNTER",  # noqa: F822  (properties of the module, below)
    "NDArray", "array_api", "Op", "TensorOp", "TensorTupleOp",
    "Value", "Tensor", "TensorTuple", "find_topo_sort", "topo_sort_dfs", "walk",
    "compute_gradient_of_variables", "reverse_pass", "sum_node_list", "no_grad", "enable_grad",
    "set_grad_enabled", "is_grad_enabled", "detect_anomaly", "cpu", "Device", "default_device",
    "queue_callback", "check_device",
]


class _AutogradModule(types.ModuleType):
    """``needle.autograd``, with the two module globals the course reads as properties."""

    @property
    def TENSOR_COUNTER(self) -> int:  # noqa: N802  (the course's name)
        """The number of live Values (tensors and tuples), counted now."""
        return core.live_values() + _COUNTER_OFFSET[0]

    @TENSOR_COUNTER.setter
    def TENSOR_COUNTER(self, value: int) -> None:  # noqa: N802
        # Assigning rebases the count: it then counts from ``value``.
        _COUNTER_OFFSET[0] = int(value) - core.live_values()

    @property
    def LAZY_MODE(self) -> bool:  # noqa: N802
        """When True, ops build nodes and compute only on ``realize_cached_data()``."""
        return core.LAZY_MODE

    @LAZY_MODE.setter
    def LAZY_MODE(self, value: bool) -> None:  # noqa: N802
        core.LAZY_MODE = bool(value)


_COUNTER_OFFSET = [0]
sys.modules[__name__].__class__ = _AutogradModule
