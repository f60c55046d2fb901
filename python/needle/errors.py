"""needle's error hierarchy.

Every user-facing failure raises one of these. Each also subclasses the matching
built-in exception, so ``except ValueError`` keeps working for code written
against numpy or PyTorch.
"""


class NeedleError(Exception):
    """Base class of every error needle raises on purpose."""


class ShapeError(NeedleError, ValueError):
    """Operand shapes (or axes) that an op cannot accept."""


class DTypeError(NeedleError, TypeError):
    """A dtype an op or array cannot accept, or a value that is not numeric."""


class DeviceError(NeedleError, ValueError):
    """Operands that live on different devices, or an unavailable device."""


class IndexOutOfRange(NeedleError, IndexError):
    """An index that does not exist in a tensor (or a tuple of tensors)."""


class GraphError(NeedleError, RuntimeError):
    """Misuse of the autodiff graph: backward without a seed, NaN/Inf under anomaly mode..."""


class JitError(NeedleError, RuntimeError):
    """Code that ``ndl.jit`` cannot trace faithfully, e.g. reading a tensor's value into
    Python (``.item()``, ``bool(t)``) inside a jitted function."""


class CheckpointError(NeedleError, ValueError):
    """A checkpoint that cannot be read, or that does not fit the model."""


class DataFormatError(NeedleError, ValueError):
    """A data file that is truncated, corrupted, or not in the expected format."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint file at the given path (also a ``FileNotFoundError``)."""


class DeviceUnavailableError(DeviceError, AttributeError):
    """A device that is not enabled on this machine was asked to hold or make an array.

    Also an ``AttributeError``, so ``hasattr(ndl.cuda(), "Array")`` stays False instead of
    raising.
    """


def device_unavailable(device: object, where: str) -> DeviceUnavailableError:
    """The error for using a disabled ``device`` in ``where`` (e.g. ``"Tensor"``)."""
    return DeviceUnavailableError(
        f"{where}: device {device!r} is not enabled (no array module for it on this machine, "
        "so it cannot hold arrays); use ndl.cpu()"
    )


def fmt_shapes(*shapes: tuple) -> str:
    """Format shapes as ``(2, 3) and (4, 5)`` for error messages."""
    return " and ".join(str(tuple(s)) for s in shapes)
