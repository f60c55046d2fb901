"""The devices of the numpy backend (``NEEDLE_BACKEND=np``, the course's hw1/hw2 world).

There is one device class in needle, ``backend_ndarray.BackendDevice`` (a name plus an
array namespace); under this backend ``cpu()`` is the only device (``cpu_numpy()`` is the
same one) and tensors show their data as plain ``numpy.ndarray``.
"""

from .backend_ndarray.device import BackendDevice, cuda
from .backend_ndarray.device import cpu as _nd_cpu

__all__ = ["Device", "CPUDevice", "cpu", "cpu_numpy", "cuda", "default_device", "all_devices"]

Device = BackendDevice
CPUDevice = BackendDevice  # the course's name for the cpu device's class


def cpu() -> BackendDevice:
    """The cpu device (numpy)."""
    return _nd_cpu()


def cpu_numpy() -> BackendDevice:
    """The same device as :func:`cpu` under this backend."""
    return _nd_cpu()


def default_device() -> BackendDevice:
    """The device used when none is given: :func:`cpu`."""
    return _nd_cpu()


def all_devices() -> list[BackendDevice]:
    """The devices of this backend: ``[cpu()]``."""
    return [_nd_cpu()]
