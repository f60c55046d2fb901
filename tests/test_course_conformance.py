"""Regressions for shapes the course's public hw2 tests pin down (found by running them)."""

import math

import numpy as np
from conftest import write_idx

import needle as ndl
from needle import nn


def test_linear_bias_is_1_by_out_with_the_course_rng_stream():
    # hw2's test_nn_linear_bias_init_1: seed 1337, Linear(7, 4), f.bias.cached_data against
    # a (1, 4) array. The course draws the weight (7, 4) first, then the bias as
    # kaiming_uniform(out, 1): (out, 1) uniforms with fan_in = out, reshaped to (1, out).
    np.random.seed(1337)
    lin = nn.Linear(7, 4)
    assert lin.bias.cached_data.shape == (1, 4) and lin.bias.shape == (1, 4)
    np.testing.assert_allclose(lin.bias.cached_data,
                               np.array([[0.077647, 0.814139, -0.770975, 1.120297]]),
                               rtol=1e-5, atol=1e-5)
    np.random.seed(1337)
    np.random.rand(7, 4)
    bound = math.sqrt(2) * math.sqrt(3 / 4)
    expected = (np.random.rand(4, 1) * 2 * bound - bound).reshape(1, 4)
    np.testing.assert_allclose(lin.bias.numpy(), expected, rtol=1e-6, atol=1e-6)
    x = np.ones((2, 7), dtype=np.float32)
    np.testing.assert_allclose(lin(ndl.Tensor(x)).numpy(),
                               x @ lin.weight.numpy() + expected, rtol=1e-5, atol=1e-5)


def test_linear_accepts_a_1d_bias_assigned_through_data_on_nd_input():
    # needle-api.md §4: N-D input (1, 3, 10) and f.bias.data = a (out,) tensor.
    lin = nn.Linear(10, 5)
    lin.bias.data = ndl.Tensor(np.arange(5, dtype=np.float32), requires_grad=False)
    assert lin.bias.shape == (5,)
    x = np.random.default_rng(0).standard_normal((1, 3, 10)).astype(np.float32)
    out = lin(ndl.Tensor(x))
    assert out.shape == (1, 3, 5)
    np.testing.assert_allclose(out.numpy(), x @ lin.weight.numpy() + np.arange(5),
                               rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert lin.bias.grad.shape == (5,)
    np.testing.assert_allclose(lin.bias.grad.numpy(), np.full(5, 3.0))


def test_mnist_items_are_hwc_images_and_slices_are_batches_of_them(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    img = write_idx(tmp_path / "img.gz", images)
    lab = write_idx(tmp_path / "lab.gz", [7, 0, 2])
    ds = ndl.data.MNISTDataset(img, lab)
    x, y = ds[1]
    assert x.shape == (28, 28, 1) and y == 0
    np.testing.assert_allclose(x[:, :, 0], images[1] / 255.0, rtol=1e-6)
    xb, yb = ds[:2]
    assert xb.shape == (2, 28, 28, 1)
    np.testing.assert_array_equal(yb, [7, 0])
    flipped = ndl.data.MNISTDataset(img, lab, transforms=[lambda a: a[:, ::-1, :]])
    np.testing.assert_allclose(flipped[:3][0], ds[:3][0][:, :, ::-1, :])
