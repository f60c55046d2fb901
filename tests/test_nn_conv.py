"""ops.conv (NHWC) and nn.Conv (NCHW): values against a per-pixel numpy loop, gradients
against finite differences, second derivatives, and PyTorch where it is installed."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tensor
from hypothesis import given
from hypothesis import strategies as st

import needle as ndl
import needle.nn as nn
from needle.errors import ShapeError
from needle.gradcheck import gradcheck, gradgradcheck


def np_conv(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Cross-correlation of NHWC ``x`` with a (k, k, Cin, Cout) kernel, one output pixel
    at a time (slow and obviously right)."""
    k = w.shape[0]
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    ho = (xp.shape[1] - k) // stride + 1
    wo = (xp.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, w.shape[3]))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            out[:, i, j, :] = np.tensordot(patch, w, axes=3)
    return out


@st.composite
def conv_cases(draw):
    k = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, 2))
    h = draw(st.integers(max(1, k - 2 * padding), 7))
    w = draw(st.integers(max(1, k - 2 * padding), 7))
    n, c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, (n, h, w, c_in)), rng.uniform(-1, 1, (k, k, c_in, c_out)),
            stride, padding)


@given(conv_cases())
def test_conv_forward_matches_pixel_loop(case):
    x, w, stride, padding = case
    out = ndl.conv(tensor(x), tensor(w), stride=stride, padding=padding)
    np.testing.assert_allclose(out.numpy(), np_conv(x, w, stride, padding), rtol=1e-10,
                               atol=1e-12)


@given(conv_cases())
def test_conv_gradients_match_finite_differences(case):
    x, w, stride, padding = case
    assert gradcheck(lambda a, b: ndl.conv(a, b, stride=stride, padding=padding),
                     tensor(x), tensor(w))


@pytest.mark.parametrize("stride,padding,k", [(1, 1, 3), (2, 0, 3), (3, 2, 2)])
def test_conv_second_derivatives(stride, padding, k):
    rng = np.random.default_rng(stride + padding)
    x, w = rng.uniform(-1, 1, (2, 5, 6, 2)), rng.uniform(-1, 1, (k, k, 2, 3))
    assert gradgradcheck(lambda a, b: ndl.conv(a, b, stride=stride, padding=padding),
                         tensor(x), tensor(w))


def test_conv_gradient_of_sum_by_hand():
    # 1x1 kernel, stride 1: d(sum(out))/dx = sum_o w[o] for every pixel; dw = sum over x.
    x = np.arange(2 * 3 * 3 * 2, dtype=np.float64).reshape(2, 3, 3, 2)
    w = np.array([[[[1.0, -2.0], [0.5, 3.0]]]])
    X, W = tensor(x), tensor(w)
    ndl.conv(X, W, stride=1, padding=0).sum().backward()
    np.testing.assert_allclose(X.grad.numpy(), np.broadcast_to([-1.0, 3.5], x.shape))
    sums = x.sum(axis=(0, 1, 2))
    np.testing.assert_allclose(W.grad.numpy()[0, 0], np.stack([sums, sums], axis=1))


def test_conv_input_without_grad_gets_none_and_weight_grad_is_right():
    rng = np.random.default_rng(3)
    x, w = rng.uniform(-1, 1, (2, 6, 6, 3)), rng.uniform(-1, 1, (3, 3, 3, 4))
    X, W = tensor(x, requires_grad=False), tensor(w)
    out = ndl.conv(X, W, stride=2, padding=1)
    grads = out.op.gradient_as_tuple(ndl.Tensor(np.ones(out.shape), dtype="float64"), out)
    assert grads[0] is None
    # Reference: d(sum out)/dw[a, b, c, o] = sum of the input pixels each tap sees.
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.zeros(w.shape)
    for a in range(3):
        for b in range(3):
            want[a, b] = xp[:, a:a + 5:2, b:b + 5:2, :].sum(axis=(0, 1, 2))[:, None]
    np.testing.assert_allclose(grads[1].numpy(), want, rtol=1e-10)


@pytest.mark.parametrize("x_shape,w_shape", [
    ((1, 5, 5, 3), (3, 3, 2, 4)),      # channel mismatch
    ((5, 5, 3), (3, 3, 3, 4)),         # not NHWC
    ((1, 2, 2, 1), (5, 5, 1, 1)),      # kernel larger than the padded input
])
def test_conv_shape_errors(x_shape, w_shape):
    with pytest.raises(ShapeError, match="conv"):
        ndl.conv(ndl.Tensor(np.zeros(x_shape)), ndl.Tensor(np.zeros(w_shape)), padding=0)


def test_conv_rejects_bad_stride():
    with pytest.raises(ShapeError, match="stride"):
        ndl.conv(ndl.Tensor(np.zeros((1, 4, 4, 1))), ndl.Tensor(np.zeros((1, 1, 1, 1))),
                 stride=0)


# ----------------------------------------------------------------------------------------------
# nn.Conv


def test_nn_conv_parameters_follow_the_seeded_draws():
    np.random.seed(7)
    conv = nn.Conv(3, 5, 3, stride=2, device=ndl.cpu())
    np.random.seed(7)
    bound_w = np.sqrt(2) * np.sqrt(3 / (3 * 9))
    want_w = np.random.rand(3, 3, 3, 5) * 2 * bound_w - bound_w
    bound_b = 1 / np.sqrt(3 * 9)
    want_b = np.random.rand(5) * 2 * bound_b - bound_b
    assert conv.weight.shape == (3, 3, 3, 5) and conv.bias.shape == (5,)
    np.testing.assert_allclose(conv.weight.numpy(), want_w, rtol=1e-6)
    np.testing.assert_allclose(conv.bias.numpy(), want_b, rtol=1e-6)
    assert [p.shape for p in conv.parameters()] == [(3, 3, 3, 5), (5,)]


def test_nn_conv_without_bias_and_tuple_sizes():
    conv = nn.Conv(2, 4, (3, 3), stride=(2, 2), bias=False)
    assert conv.bias is None and conv.kernel_size == 3 and conv.stride == 2
    assert len(conv.parameters()) == 1


@pytest.mark.parametrize("c_in,c_out,k,stride,size", [
    (3, 4, 3, 1, 6), (2, 3, 5, 2, 7), (1, 2, 1, 1, 4), (4, 2, 4, 3, 9), (2, 2, 7, 4, 8),
])
def test_nn_conv_forward_is_same_padding_nchw(c_in, c_out, k, stride, size):
    rng = np.random.default_rng(k)
    conv = nn.Conv(c_in, c_out, k, stride=stride, dtype="float64")
    x = rng.uniform(-1, 1, (2, c_in, size, size))
    out = conv(tensor(x)).numpy()
    want = np_conv(x.transpose(0, 2, 3, 1), conv.weight.numpy(), stride, k // 2)
    want = want.transpose(0, 3, 1, 2) + conv.bias.numpy()[None, :, None, None]
    assert out.shape == (2, c_out, (size + 2 * (k // 2) - k) // stride + 1,
                         (size + 2 * (k // 2) - k) // stride + 1)
    np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12)
    if stride == 1 and k % 2 == 1:
        assert out.shape[2:] == (size, size)


@pytest.mark.parametrize("stride", [1, 2])
def test_nn_conv_gradients_match_finite_differences(stride):
    rng = np.random.default_rng(stride)
    conv = nn.Conv(2, 3, 3, stride=stride, dtype="float64")
    x = tensor(rng.uniform(-1, 1, (2, 2, 5, 5)))

    def f(x, w, b):
        conv.weight, conv.bias = w, b
        return conv(x)

    assert gradcheck(f, x, tensor(conv.weight.numpy()), tensor(conv.bias.numpy()))


def test_nn_conv_rejects_wrong_channels():
    with pytest.raises(ShapeError, match="Conv"):
        nn.Conv(3, 4, 3)(ndl.Tensor(np.zeros((1, 2, 5, 5), dtype=np.float32)))


@pytest.mark.parametrize("stride,k", [(1, 3), (2, 3), (4, 7), (2, 4)])
def test_nn_conv_matches_torch(stride, k):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(stride * 10 + k)
    conv = nn.Conv(3, 5, k, stride=stride, device=ndl.cpu())
    x = rng.standard_normal((2, 3, 11, 11)).astype(np.float32)
    ref = torch.nn.Conv2d(3, 5, k, stride=stride, padding=k // 2)
    ref.weight.data = torch.tensor(conv.weight.numpy().transpose(3, 2, 0, 1))
    ref.bias.data = torch.tensor(conv.bias.numpy())
    X = ndl.Tensor(x, device=ndl.cpu())
    xt = torch.tensor(x, requires_grad=True)
    out, want = conv(X), ref(xt)
    np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-4)
    out.sum().backward()
    want.sum().backward()
    np.testing.assert_allclose(X.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv.weight.grad.numpy(),
                               ref.weight.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-4,
                               atol=1e-3)
    np.testing.assert_allclose(conv.bias.grad.numpy(), ref.bias.grad.numpy(), rtol=1e-4,
                               atol=1e-3)
