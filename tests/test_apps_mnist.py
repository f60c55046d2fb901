"""apps: simple_ml (hw1), mlp_resnet (hw2) and the train_mnist demo on scikit-learn's digits."""

import json
import os
import urllib.request

import numpy as np
import pytest
from conftest import write_idx

import needle as ndl
import needle.nn as nn
from apps import mlp_resnet, simple_ml, train_mnist

# ----------------------------------------------------------------------------------------------
# simple_ml (hw1)


def test_parse_mnist(tmp_path):
    images = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    X, y = simple_ml.parse_mnist(write_idx(tmp_path / "i.gz", images),
                                 write_idx(tmp_path / "l.gz", [5, 0]))
    assert X.shape == (2, 784) and X.dtype == np.float32
    np.testing.assert_allclose(X, images.reshape(2, 784) / 255.0, rtol=1e-6)
    assert y.dtype == np.uint8 and list(y) == [5, 0]


def test_softmax_loss_matches_numpy():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((5, 4)).astype(np.float32)
    y = np.array([0, 3, 1, 1, 2])
    loss = simple_ml.softmax_loss(ndl.Tensor(Z), ndl.Tensor(np.eye(4, dtype=np.float32)[y]))
    expected = np.mean(np.log(np.exp(Z).sum(1)) - Z[np.arange(5), y])
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)


def _numpy_nn_epoch(X, y, W1, W2, lr, batch):
    W1, W2 = W1.astype(np.float64), W2.astype(np.float64)
    for s in range(0, len(X), batch):
        Xb, yb = X[s:s + batch].astype(np.float64), y[s:s + batch]
        Z1 = Xb @ W1
        A = np.maximum(Z1, 0)
        Z = A @ W2
        S = np.exp(Z - Z.max(1, keepdims=True))
        S /= S.sum(1, keepdims=True)
        S[np.arange(len(yb)), yb] -= 1
        G2 = S / len(yb)
        gW2 = A.T @ G2
        gW1 = Xb.T @ ((Z1 > 0) * (G2 @ W2.T))
        W1, W2 = W1 - lr * gW1, W2 - lr * gW2
    return W1, W2


def test_nn_epoch_matches_numpy_sgd():
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 1, (50, 6)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    W1 = (rng.standard_normal((6, 8)) / 3).astype(np.float32)
    W2 = (rng.standard_normal((8, 3)) / 3).astype(np.float32)
    new1, new2 = simple_ml.nn_epoch(X, y, ndl.Tensor(W1), ndl.Tensor(W2), lr=0.2, batch=16)
    e1, e2 = _numpy_nn_epoch(X, y, W1, W2, 0.2, 16)
    np.testing.assert_allclose(new1.numpy(), e1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(new2.numpy(), e2, rtol=1e-4, atol=1e-5)


def test_loss_err():
    h = ndl.Tensor(np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]], dtype=np.float32))
    loss, err = simple_ml.loss_err(h, np.array([0, 0, 0]))
    assert err == pytest.approx(1 / 3)
    expected = np.mean([np.log(1 + np.exp(-1)), np.log(1 + np.exp(3)), np.log(1 + np.exp(-1))])
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# mlp_resnet (hw2)


def test_mlp_resnet_structure_and_parameter_count():
    model = mlp_resnet.MLPResNet(10, hidden_dim=8, num_blocks=2, num_classes=3)
    assert len(model.modules) == 2 + 2 + 1
    block = model.modules[2]
    assert isinstance(block.modules[0], nn.Residual) and isinstance(block.modules[1], nn.ReLU)
    inner = block.modules[0].fn.modules
    assert [type(m) for m in inner] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout,
                                        nn.Linear, nn.BatchNorm1d]
    per_block = (8 * 4 + 4) + 2 * 4 + (4 * 8 + 8) + 2 * 8
    assert model.num_parameters() == (10 * 8 + 8) + 2 * per_block + (8 * 3 + 3)
    assert model(ndl.Tensor(np.zeros((2, 10)))).shape == (2, 3)


def test_epoch_reports_error_rate_and_mean_batch_loss():
    model = nn.Sequential(nn.Linear(2, 2, bias=False))
    model.modules[0].weight.data = ndl.Tensor(np.eye(2, dtype=np.float32))
    X = np.array([[3.0, 0.0], [0.0, 3.0], [3.0, 0.0]], dtype=np.float32)
    y = np.array([0, 0, 0])
    loader = ndl.data.DataLoader(ndl.data.NDArrayDataset(X, y), batch_size=2)
    err, loss = mlp_resnet.epoch(loader, model)
    assert err == pytest.approx(1 / 3)
    # batches of 2 and 1 samples: the mean of the two batch means
    batch1 = (np.log(1 + np.exp(-3)) + np.log(1 + np.exp(3))) / 2
    expected = (batch1 + np.log(1 + np.exp(-3))) / 2
    assert loss == pytest.approx(expected, rel=1e-5)
    assert not model.training


def test_epoch_with_optimizer_trains():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    np.random.seed(0)
    model = mlp_resnet.MLPResNet(5, hidden_dim=16, num_blocks=1, num_classes=2)
    opt = ndl.optim.Adam(model.parameters(), lr=0.01)
    loader = ndl.data.DataLoader(ndl.data.NDArrayDataset(X, y), batch_size=16, shuffle=True)
    first = mlp_resnet.epoch(loader, model, opt)
    for _ in range(5):
        last = mlp_resnet.epoch(loader, model, opt)
    assert model.training and last[1] < first[1]


# ----------------------------------------------------------------------------------------------
# The demo: scikit-learn digits


@pytest.fixture(scope="module")
def digits():
    return train_mnist.load_sklearn_digits(seed=0)


def test_digits_split_is_seeded_and_disjoint(digits):
    again = train_mnist.load_sklearn_digits(seed=0)
    other = train_mnist.load_sklearn_digits(seed=1)
    assert (len(digits.train), len(digits.test)) == (1438, 359)
    np.testing.assert_array_equal(digits.test.arrays[0], again.test.arrays[0])
    assert not np.array_equal(digits.test.arrays[0], other.test.arrays[0])
    train_rows = {r.tobytes() for r in digits.train.arrays[0]}
    overlap = sum(r.tobytes() in train_rows for r in digits.test.arrays[0])
    assert overlap < 5  # the data set has a few duplicate images, no more
    assert digits.train.arrays[0].max() == 1.0 and digits.dim == 64


def test_short_training_run_reaches_95_percent(digits):
    # 8 epochs of 23 batches = 184 Adam steps.
    model, history = train_mnist.train(digits, epochs=8, batch_size=64, lr=0.002,
                                       hidden_dim=64, weight_decay=0.001, seed=0,
                                       progress=False)
    assert history[-1]["test_acc"] >= 0.95
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert [h["epoch"] for h in history] == list(range(1, 9))


def test_main_writes_table_plot_checkpoint_and_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    metrics = train_mnist.main(["--epochs", "2", "--hidden-dim", "32", "--out-dir", str(out),
                                "--data-dir", str(tmp_path / "empty"), "--no-download"])
    text = capsys.readouterr().out
    assert "data: no MNIST idx files" in text and "scikit-learn 8x8 digits" in text
    assert "train loss | train acc | test loss | test acc" in text
    assert "identical" in text
    assert metrics["source"] == "digits" and len(metrics["history"]) == 2
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test_acc"] == metrics["test_acc"]
    assert "modules.0.weight" in ndl.load(out / "mlp_resnet.npz")
    pytest.importorskip("matplotlib")
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_download_failure_falls_back_to_digits(tmp_path, monkeypatch, capsys):
    calls = []

    def offline(request, timeout):
        calls.append((request.full_url, timeout))
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(train_mnist, "CACHE_DIR", str(tmp_path / "cache"))
    data = train_mnist.find_data(str(tmp_path / "nothing"), seed=0)
    assert data.name == "digits"
    assert len(calls) == len(train_mnist.MIRRORS)  # gives up at the first file
    assert all(timeout <= 10 for _, timeout in calls)
    assert "download failed" in capsys.readouterr().out


class _Response:
    def __init__(self, payload):
        self.payload = payload

    def read(self, size=-1):
        data, self.payload = self.payload, b""
        return data

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_verifies_checksums(tmp_path, monkeypatch):
    import hashlib

    payloads = {name: name.encode() * 3 for name in train_mnist.MNIST_FILES}
    good = {name: hashlib.sha256(p).hexdigest() for name, p in payloads.items()}
    monkeypatch.setattr(train_mnist, "MNIST_FILES", good)
    served = []

    def fake(request, timeout):
        url = request.full_url
        name = url.rsplit("/", 1)[1]
        served.append(url)
        # the first mirror serves corrupted bytes, the second the real ones
        return _Response(b"junk" if url.startswith(train_mnist.MIRRORS[0]) else payloads[name])

    monkeypatch.setattr(urllib.request, "urlopen", fake)
    folder = train_mnist.download_mnist(str(tmp_path / "cache"))
    for name, payload in payloads.items():
        assert (tmp_path / "cache" / name).read_bytes() == payload
    assert len(served) == 8
    # cached files that verify are not downloaded again
    served.clear()
    train_mnist.download_mnist(folder)
    assert served == []
    assert not [f for f in os.listdir(folder) if f.endswith(".part")]


def test_all_mirrors_bad_checksum_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda request, timeout: _Response(b"x"))
    with pytest.raises(OSError, match="checksum mismatch"):
        train_mnist.download_mnist(str(tmp_path))


def test_local_mnist_files_are_used_first(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    data = train_mnist.find_data(str(tmp_path), seed=0, download=False)
    assert data.name == "mnist" and data.dim == 784
    assert (len(data.train), len(data.test)) == (30, 10)
