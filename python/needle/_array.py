"""Transitional glue: ops receive raw namespace arrays (numpy on the cpu devices)."""

from typing import Any

import numpy as np

FLOAT_KINDS = "f"
NUMERIC_KINDS = "biuf"


def contiguous(x: Any) -> np.ndarray:
    """A C-contiguous array with the same values; no copy when it already is."""
    x = np.asarray(x)
    return x if x.flags.c_contiguous else x.copy()


def as_numpy(x: Any) -> np.ndarray:
    return x


def wrap(r: Any, like: Any) -> Any:
    return r if r.__class__ is np.ndarray else np.asarray(r)
