"""Checkpoints: ``save``/``load`` state dicts as numpy ``.npz`` files.

No pickle is involved (``allow_pickle=False``), so loading a file cannot run code.
Saving writes a temporary file in the target's folder, syncs it to disk and renames
it over the target: a crash leaves either the old checkpoint or the new one, never
half of one.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections import OrderedDict
from typing import Any

import numpy as np

from .errors import CheckpointError, CheckpointNotFoundError

__all__ = ["CheckpointError", "save", "load"]


def _as_array(key: str, value: Any) -> np.ndarray:
    if hasattr(value, "numpy") and callable(value.numpy):
        value = value.numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise CheckpointError(
            f"save: value for {key!r} has dtype {array.dtype}; only numeric arrays can be saved"
        )
    return array


def save(obj: Any, path: str | os.PathLike) -> None:
    """Save a state dict (str -> array or Tensor) to ``path`` as an ``.npz`` file, atomically.

    Parameters
    ----------
    obj : dict or Module
        A mapping from names to arrays/Tensors; a Module saves its ``state_dict()``.
    path : str or PathLike
        Target file (written exactly there; no extension is added).
    """
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise CheckpointError(f"save: expected a dict of arrays, got {type(obj).__name__}")
    arrays = OrderedDict()
    for key, value in obj.items():
        if not isinstance(key, str) or not key:
            raise CheckpointError(f"save: keys must be non-empty strings, got {key!r}")
        arrays[key] = _as_array(key, value)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def _write_npz(f: Any, arrays: dict) -> None:
    # What np.savez writes, by hand: np.savez(f, **arrays) would take a key named "file"
    # or "allow_pickle" as its own keyword argument (an error, or an array silently lost).
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            with archive.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _fsync_dir(folder: str) -> None:
    # Makes the rename itself durable; not possible on every platform, hence best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: str | os.PathLike) -> OrderedDict[str, np.ndarray]:
    """Load a state dict saved with :func:`save`.

    Returns
    -------
    OrderedDict of str to numpy.ndarray
        In the order the arrays were saved; pass it to ``Module.load_state_dict``.

    Raises
    ------
    CheckpointError
        No file at ``path`` (then a ``CheckpointNotFoundError``, which is also a
        ``FileNotFoundError``); or the file is not an ``.npz`` archive, is truncated or
        corrupted, or holds pickled data.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointNotFoundError(f"load: no checkpoint at {path!r} (no such file)")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise CheckpointError(f"load: {path!r} holds a single .npy array, not a checkpoint")
        with data:
            return OrderedDict((key, data[key]) for key in data.files)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"load: {path!r} is not a valid .npz checkpoint (truncated or corrupted?): {e}"
        ) from e
