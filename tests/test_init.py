"""needle.init: every function against a numpy re-derivation of the same RNG draws."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import needle as ndl
from needle import init

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)


def _is_float32(t: ndl.Tensor) -> bool:
    return np.dtype(t.dtype) == np.float32


@given(shape=shapes, seed=st.integers(0, 2**16), low=st.floats(-3, 0), width=st.floats(0.5, 4))
def test_rand_is_one_uniform_draw_scaled(shape, seed, low, width):
    np.random.seed(seed)
    t = init.rand(*shape, low=low, high=low + width)
    np.random.seed(seed)
    expected = np.random.rand(*shape) * width + low
    assert t.shape == shape and _is_float32(t) and not t.requires_grad
    np.testing.assert_allclose(t.numpy(), expected.astype(np.float32), rtol=1e-6, atol=1e-6)


@given(shape=shapes, seed=st.integers(0, 2**16))
def test_randn_is_one_normal_draw_scaled(shape, seed):
    np.random.seed(seed)
    t = init.randn(*shape, mean=1.5, std=0.25)
    np.random.seed(seed)
    expected = np.random.randn(*shape) * 0.25 + 1.5
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_random_functions_consume_exactly_one_draw():
    np.random.seed(7)
    init.rand(3, 4)
    after_rand = np.random.rand()
    np.random.seed(7)
    np.random.rand(3, 4)
    assert after_rand == np.random.rand()
    np.random.seed(7)
    init.randb(5, p=0.3)
    init.randn(2, 2)
    after = np.random.rand()
    np.random.seed(7)
    np.random.rand(5)
    np.random.randn(2, 2)
    assert after == np.random.rand()


def test_constant_ones_zeros():
    c = init.constant(2, 3, c=2.5)
    np.testing.assert_array_equal(c.numpy(), np.full((2, 3), 2.5, np.float32))
    assert _is_float32(c)
    np.testing.assert_array_equal(init.ones(4).numpy(), np.ones(4))
    np.testing.assert_array_equal(init.zeros(1, 2).numpy(), np.zeros((1, 2)))
    assert init.ones(2, requires_grad=True).requires_grad


def test_float64_dtype_is_kept():
    np.random.seed(0)
    t = init.randn(3, dtype="float64")
    np.random.seed(0)
    np.testing.assert_array_equal(t.numpy(), np.random.randn(3))
    assert np.dtype(t.dtype) == np.float64


def test_randb_threshold_and_dtype():
    np.random.seed(3)
    mask = init.randb(50, 40, p=0.3)
    np.random.seed(3)
    expected = np.random.rand(50, 40) <= 0.3
    np.testing.assert_array_equal(mask.numpy().astype(bool), expected)
    if ndl.BACKEND == "nd":
        # NDArray has no bool dtype: a float32 tensor of 0.0 and 1.0.
        assert _is_float32(mask)
        assert set(np.unique(mask.numpy())) <= {0.0, 1.0}
    else:
        assert mask.numpy().dtype == np.bool_


def test_one_hot_rows_of_identity():
    y = ndl.Tensor([2, 0, 3], requires_grad=False)
    oh = init.one_hot(4, y)
    np.testing.assert_array_equal(oh.numpy(), np.eye(4)[[2, 0, 3]])
    assert _is_float32(oh)
    np.testing.assert_array_equal(init.one_hot(3, np.array([1])).numpy(), [[0, 1, 0]])


def test_one_hot_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match=r"one_hot.*\[0, 3\)"):
        init.one_hot(3, np.array([0, 3]))


def test_zeros_like_ones_like():
    x = ndl.Tensor(np.arange(6.0).reshape(2, 3), dtype="float64")
    z, o = init.zeros_like(x), init.ones_like(x)
    assert z.shape == o.shape == (2, 3)
    assert np.dtype(z.dtype) == np.float64 and not z.requires_grad
    np.testing.assert_array_equal(z.numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(o.numpy(), np.ones((2, 3)))
    assert z.device == x.device
    assert init.ones_like(x, requires_grad=True).requires_grad


def test_top_level_ones_zeros_are_init_versions():
    assert ndl.ones is init.ones and ndl.zeros is init.zeros
    assert ndl.ones_like is init.ones_like and ndl.zeros_like is init.zeros_like
    assert ndl.ones(2, 3).shape == (2, 3)


def test_device_is_threaded_through():
    t = init.rand(2, 2, device=ndl.cpu())
    assert t.device == ndl.cpu()
    assert init.zeros_like(t).device == ndl.cpu()


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_xavier_uniform(gain):
    np.random.seed(1)
    t = init.xavier_uniform(30, 20, gain=gain)
    a = gain * math.sqrt(6 / 50)
    np.random.seed(1)
    expected = np.random.rand(30, 20) * 2 * a - a
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert np.abs(t.numpy()).max() <= a


def test_xavier_normal():
    np.random.seed(2)
    t = init.xavier_normal(30, 20, gain=1.5)
    np.random.seed(2)
    expected = np.random.randn(30, 20) * 1.5 * math.sqrt(2 / 50)
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_kaiming_uniform_bound_and_shape():
    np.random.seed(4)
    t = init.kaiming_uniform(12, 5)
    b = math.sqrt(2) * math.sqrt(3 / 12)
    np.random.seed(4)
    np.testing.assert_allclose(t.numpy(), np.random.rand(12, 5) * 2 * b - b, rtol=1e-6, atol=1e-6)
    assert init.kaiming_uniform(3, 4, shape=(2, 2, 3, 4)).shape == (2, 2, 3, 4)


def test_kaiming_uniform_course_golden_sum():
    # Needle's conv test: kaiming_uniform(16*9, 8*9, shape=(3,3,16,8)) after seed 0.
    np.random.seed(0)
    t = init.kaiming_uniform(16 * 9, 8 * 9, shape=(3, 3, 16, 8))
    np.testing.assert_allclose(t.numpy().sum(), -2.5719218, rtol=1e-5)


def test_kaiming_normal():
    np.random.seed(5)
    t = init.kaiming_normal(8, 3)
    np.random.seed(5)
    np.testing.assert_allclose(t.numpy(), np.random.randn(8, 3) * math.sqrt(2) / math.sqrt(8),
                               rtol=1e-6, atol=1e-6)


def test_kaiming_rejects_other_nonlinearity():
    with pytest.raises(ValueError, match="relu"):
        init.kaiming_uniform(3, 3, nonlinearity="tanh")
