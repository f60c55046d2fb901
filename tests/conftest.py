"""Shared test configuration: hypothesis profiles, strategies and small helpers.

Profiles: ``needle`` (default, 15 examples, derandomized so runs are reproducible) and
``thorough`` (200 random examples), chosen with the environment variable ``HYPOTHESIS_PROFILE``.

Test modules import the helpers directly (``from conftest import tensor, ...``): pytest
puts this directory on ``sys.path``.
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import needle as ndl

settings.register_profile(
    "needle",
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(  # random (not derandomized): each run searches new examples
    "thorough",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "needle"))


# ----------------------------------------------------------------------------------------------
# Tensors and comparisons


def tensor(arr, requires_grad: bool = True) -> ndl.Tensor:
    """A float64 Tensor holding ``arr`` (float64 on both backends)."""
    return ndl.Tensor(np.asarray(arr, dtype=np.float64), dtype="float64",
                      requires_grad=requires_grad)


def assert_close(actual, expected, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    """``actual`` (Tensor or array) equals ``expected`` in shape and (closely) in value."""
    got = actual.numpy() if isinstance(actual, ndl.Tensor) else np.asarray(actual)
    want = np.asarray(expected)
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------------------------
# Data files


def write_idx(path, array, magic=None, gz=True, cut=0):
    """Write ``array`` (uint8) as an idx file; ``cut`` drops that many bytes from the end."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 + array.ndim
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    raw += array.tobytes()
    if cut:
        raw = raw[:-cut]
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if gz else raw)
    return str(path)


# ----------------------------------------------------------------------------------------------
# Values: drawn from a seed so every kind of domain is easy to ask for


def make_values(shape: tuple, kind: str, seed: int) -> np.ndarray:
    """Deterministic float64 values of ``shape`` for a domain ``kind``.

    real      uniform in [-2, 2]
    pos       uniform in [0.5, 2]
    nonzero   magnitude in [0.3, 2], random sign (keeps relu/abs/sign away from 0)
    grid      multiples of 0.25 in [-2, 2)
    offgrid   multiples of 0.25 plus 0.125: never equal to (or within 0.1 of) a grid value
    distinct  all entries different (at least 0.25 apart): no ties for max
    int       integers in [-2, 2] (ties on purpose, for comparisons)
    """
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape, dtype=np.int64))
    if kind == "real":
        out = rng.uniform(-2, 2, size)
    elif kind == "pos":
        out = rng.uniform(0.5, 2, size)
    elif kind == "nonzero":
        out = rng.uniform(0.3, 2, size) * rng.choice([-1.0, 1.0], size)
    elif kind == "grid":
        out = rng.integers(-8, 8, size) * 0.25
    elif kind == "offgrid":
        out = rng.integers(-8, 8, size) * 0.25 + 0.125
    elif kind == "distinct":
        out = (rng.permutation(size) - size / 2) * 0.25 + rng.uniform(-0.05, 0.05)
    elif kind == "int":
        out = rng.integers(-2, 3, size).astype(np.float64)
    else:
        raise ValueError(f"unknown value kind {kind!r}")
    return out.reshape(shape).astype(np.float64)


seeds = st.integers(0, 2**32 - 1)


def arrays(shape: tuple, kind: str = "real") -> st.SearchStrategy:
    """Strategy of float64 arrays of ``shape`` in the domain ``kind`` (see make_values)."""
    return seeds.map(lambda s: make_values(tuple(shape), kind, s))


# ----------------------------------------------------------------------------------------------
# Shapes


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1,
           max_side: int = 4) -> st.SearchStrategy:
    """Shapes with size-1 axes and (when min_dims == 0) the 0-d shape ()."""
    return st.lists(st.integers(min_side, max_side), min_size=min_dims,
                    max_size=max_dims).map(tuple)


@st.composite
def broadcast_shapes(draw, max_dims: int = 3, max_side: int = 4) -> tuple:
    """A pair of shapes that broadcast together (numpy rules).

    Each side may drop leading axes (down to 0-d) and turn any axis into a size-1 axis.
    """
    full = draw(shapes(0, max_dims, 1, max_side))

    def side() -> tuple:
        ndim = draw(st.integers(0, len(full)))
        kept = full[len(full) - ndim:]
        ones = draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
        return tuple(1 if one else d for d, one in zip(kept, ones))

    return side(), side()


@st.composite
def axes_for(draw, ndim: int):
    """Reduction axes for an ``ndim``-D tensor: None, one int (maybe negative), or a tuple."""
    if ndim == 0:
        return None
    choice = draw(st.sampled_from(["none", "int", "tuple"]))
    if choice == "none":
        return None
    if choice == "int":
        return draw(st.integers(-ndim, ndim - 1))
    picked = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(ax - ndim if draw(st.booleans()) else ax for ax in picked)


def np_axes(axes):
    """needle's axes argument as numpy's ``axis`` argument."""
    return axes if axes is None or isinstance(axes, int) else tuple(axes)
