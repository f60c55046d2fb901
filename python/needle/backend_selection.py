"""Choose the array backend from ``NEEDLE_BACKEND``: ``nd`` (default, NDArray) or ``np`` (numpy)."""

import os

BACKEND = os.environ.get("NEEDLE_BACKEND", "nd")

if BACKEND == "nd":
    from . import backend_ndarray as array_api
    from .backend_ndarray import (
        BackendDevice as Device,
    )
    from .backend_ndarray import (
        all_devices,
        cpu,
        cpu_numpy,
        cuda,
        default_device,
    )

    NDArray = array_api.NDArray
elif BACKEND == "np":
    import numpy as array_api

    from .backend_numpy import Device, all_devices, cpu, cpu_numpy, cuda, default_device

    NDArray = array_api.ndarray
else:
    raise RuntimeError(
        f"Unknown needle array backend {BACKEND!r}: set NEEDLE_BACKEND to 'nd' or 'np'"
    )

__all__ = [
    "BACKEND", "Device", "NDArray", "all_devices", "array_api", "cpu", "cpu_numpy", "cuda",
    "default_device",
]
