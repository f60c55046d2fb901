"""The benchmark's instrument: numpy by hand and needle do the same work, at tiny sizes.

No timing here: only that the hand-derived numpy forward/backward of the workloads agrees
with needle's autodiff, and that the check really fails on a wrong result.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import fw_needle, fw_numpy  # noqa: E402
from bench import workloads as wl  # noqa: E402

TINY = {
    "W1": {"n_ops": 13, "n": 8},
    "W4": {"n_ops": 41, "n": 1},
    "W3": {"n": 16},
    "W2": {"batch": 6, "dims": (12, 9, 7, 5)},
    "W2c": {"batch": 6, "dims": (12, 9, 7, 5)},
}


def run(module, name: str, steps: int = 1) -> dict:
    case = module.build(name, wl.make_data(name, **TINY[name]))
    for _ in range(steps):
        case.step()
    return case.result()


@pytest.mark.parametrize("name", sorted(TINY))
def test_needle_matches_numpy_by_hand(name):
    # Two steps: for W2 the second step starts from the SGD-updated weights.
    ref, got = run(fw_numpy, name, steps=2), run(fw_needle, name, steps=2)
    assert wl.compare(ref, got, tol=1e-5, label=name) <= 1e-5
    for key, value in got.items():
        assert np.asarray(value).dtype == np.float32, key


def test_chain_gradient_matches_finite_differences():
    # The baseline's hand-written backward against central differences in float64.
    data = wl.make_data("W1", **TINY["W1"])
    data64 = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v)
              for k, v in data.items()}
    case = fw_numpy.chain(data64)
    case.step()
    gx = case.result()["gx"]
    eps = 1e-6
    for i in range(data64["x"].size):
        for sign in (1, -1):
            data64["x"][i] += sign * eps
            case.step()
            if sign == 1:
                plus = case.result()["loss"]
            else:
                minus = case.result()["loss"]
            data64["x"][i] -= sign * eps
        np.testing.assert_allclose(gx[i], (plus - minus) / (2 * eps), rtol=1e-5, atol=1e-8)


def test_compare_rejects_a_wrong_gradient():
    ref = run(fw_numpy, "W3")
    bad = dict(ref, gW1=ref["gW1"] * 1.01)
    with pytest.raises(wl.Mismatch, match="gW1"):
        wl.compare(ref, bad, tol=1e-4, label="W3")
    with pytest.raises(wl.Mismatch, match="keys"):
        wl.compare(ref, {k: v for k, v in ref.items() if k != "gW2"}, tol=1e-4)
    with pytest.raises(wl.Mismatch, match="shape"):
        wl.compare(ref, dict(ref, loss=np.zeros(2)), tol=1e-4)
