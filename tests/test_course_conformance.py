"""Regressions for shapes the course's public hw2 tests pin down (found by running them)."""

import math

import numpy as np
from conftest import write_idx

import needle as ndl
from needle import nn


def test_linear_bias_is_1d_with_the_course_rng_stream():
    # The course draws the bias as kaiming_uniform(out, 1): (out, 1) uniforms, fan_in = out.
    np.random.seed(1337)
    lin = nn.Linear(7, 4)
    np.random.seed(1337)
    np.random.rand(7, 4)
    bound = math.sqrt(2) * math.sqrt(3 / 4)
    expected = (np.random.rand(4, 1) * 2 * bound - bound).reshape(4)
    assert lin.bias.shape == (4,)
    np.testing.assert_allclose(lin.bias.numpy(), expected, rtol=1e-6, atol=1e-6)
    x = np.ones((2, 7), dtype=np.float32)
    np.testing.assert_allclose(lin(ndl.Tensor(x)).numpy(),
                               x @ lin.weight.numpy() + expected, rtol=1e-5, atol=1e-5)


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
