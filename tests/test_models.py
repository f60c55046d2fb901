"""apps.models (ResNet9, LanguageModel), the hw4 training helpers of apps.simple_ml, and the
train_cifar10 / train_ptb apps on generated data: shapes, parameter counts, RNG order, and
short runs that must overfit."""

from __future__ import annotations

import numpy as np
import pytest

import needle as ndl
import needle.nn as nn
from apps import simple_ml, train_cifar10, train_ptb
from apps.models import LanguageModel, ResNet9

DEV = ndl.cpu()


def np_softmax_loss(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean())


# ----------------------------------------------------------------------------------------------
# ResNet9


def test_resnet9_has_431946_parameters_and_ten_logits():
    model = ResNet9(device=DEV)
    assert sum(int(np.prod(p.shape)) for p in model.parameters()) == 431_946
    out = model(ndl.Tensor(np.zeros((2, 3, 32, 32), dtype=np.float32), device=DEV))
    assert out.shape == (2, 10)


def test_resnet9_draws_its_parameters_in_layer_order():
    np.random.seed(0)
    model = ResNet9(device=DEV)
    np.random.seed(0)
    bound = np.sqrt(2) * np.sqrt(3 / (3 * 49))
    first = np.random.rand(7, 7, 3, 16) * 2 * bound - bound
    np.testing.assert_allclose(model.parameters()[0].numpy(), first, rtol=1e-6)
    shapes = [p.shape for p in model.parameters()]
    assert shapes[:4] == [(7, 7, 3, 16), (16,), (16,), (16,)]  # conv w, b, then BN w, b
    assert shapes[-4:] == [(128, 128), (1, 128), (128, 10), (1, 10)]  # Linear biases (1, out)


def test_resnet9_fits_64_synthetic_images():
    x, y, _, _ = train_cifar10.synthetic_cifar(64, 0, seed=1)
    y = np.random.default_rng(2).integers(0, 10, 64)  # random labels: pure memorisation
    np.random.seed(0)
    model = ResNet9(device=DEV)
    opt = ndl.optim.Adam(model.parameters(), lr=0.01)
    X, Y = ndl.Tensor(x, device=DEV), ndl.Tensor(y, device=DEV)
    losses = []
    for _ in range(10):
        logits = model(X)
        loss = nn.SoftmaxLoss()(logits, Y)
        opt.reset_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.numpy()))
    with ndl.no_grad():
        final = model(X).numpy()  # still in training mode: batch statistics
    assert losses[-1] < 0.5 * losses[0]
    assert (final.argmax(axis=1) == y).mean() >= 0.95


# ----------------------------------------------------------------------------------------------
# LanguageModel


@pytest.mark.parametrize("kind", ["rnn", "lstm", "transformer"])
@pytest.mark.parametrize("seq_len,with_h", [(1, False), (6, True)])
def test_language_model_shapes_and_gradients(kind, seq_len, with_h):
    batch, layers, hidden, vocab = 3, 2, 8, 11
    model = LanguageModel(4, vocab, hidden, layers, kind, seq_len=seq_len, device=DEV)
    x = ndl.Tensor(np.random.default_rng(0).integers(0, vocab, (seq_len, batch)), device=DEV)
    h = None
    if with_h and kind != "transformer":
        h0 = ndl.Tensor(np.zeros((layers, batch, hidden), dtype=np.float32), device=DEV)
        h = (h0, h0) if kind == "lstm" else h0
    logits, state = model(x, h)
    assert logits.shape == (seq_len * batch, vocab)
    if kind == "lstm":
        assert isinstance(state, tuple) and [s.shape for s in state] == [(layers, batch,
                                                                            hidden)] * 2
    elif kind == "rnn":
        assert state.shape == (layers, batch, hidden)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_language_model_rejects_unknown_kind():
    with pytest.raises(ValueError, match="seq_model"):
        LanguageModel(4, 5, 6, seq_model="gru")


@pytest.mark.parametrize("kind", ["rnn", "transformer"])
def test_language_model_memorises_a_50_token_sequence(kind):
    tokens = np.random.default_rng(3).integers(0, 20, 51)
    np.random.seed(0)
    model = LanguageModel(16, 20, 32, 1, kind, seq_len=50, device=DEV)
    opt = ndl.optim.Adam(model.parameters(), lr=0.01)
    x = ndl.Tensor(tokens[:50].reshape(50, 1), device=DEV)
    y = ndl.Tensor(tokens[1:], device=DEV)
    for _ in range(40):
        logits, _ = model(x)
        loss = nn.SoftmaxLoss()(logits, y)
        opt.reset_grad()
        loss.backward()
        opt.step()
        if (logits.numpy().argmax(axis=1) == tokens[1:]).all():
            break
    logits, _ = model(x)
    assert (logits.numpy().argmax(axis=1) == tokens[1:]).all()


# ----------------------------------------------------------------------------------------------
# Training helpers (apps.simple_ml, hw4 part)


def test_cifar_helpers_report_accuracy_and_loss_over_samples():
    x, y, _, _ = train_cifar10.synthetic_cifar(20, 0, seed=4)
    loader = ndl.data.DataLoader(ndl.data.NDArrayDataset(x, y), batch_size=8)
    np.random.seed(0)
    model = ResNet9(device=DEV)
    acc, loss = simple_ml.evaluate_cifar10(model, loader)
    logits = model(ndl.Tensor(x, device=DEV)).numpy()  # eval mode: batch-independent
    assert acc == pytest.approx((logits.argmax(axis=1) == y).mean())
    assert loss == pytest.approx(np_softmax_loss(logits, y), rel=1e-4)
    train_acc, train_loss = simple_ml.train_cifar10(model, loader, n_epochs=2, lr=0.003)
    assert 0 <= train_acc <= 1 and np.isfinite(train_loss)
    assert simple_ml.evaluate_cifar10(model, loader)[1] < loss


def test_ptb_helpers_train_and_reseed():
    ids, _, vocab = train_ptb.synthetic_text(600, 0, 12, seed=5)
    data = ndl.data.batchify(ids, 4, device=DEV, dtype="float32")
    np.random.seed(0)
    model = LanguageModel(8, vocab, 16, 1, "lstm", device=DEV)
    before_acc, before = simple_ml.evaluate_ptb(model, data, seq_len=10, device=DEV)
    # evaluate_ptb starts with np.random.seed(4) and this model draws nothing afterwards
    after_eval = np.random.rand()
    np.random.seed(4)
    assert after_eval == np.random.rand()
    acc, loss = simple_ml.train_ptb(model, data, seq_len=10, n_epochs=3, lr=4.0, clip=0.25,
                                    device=DEV)
    after_acc, after = simple_ml.evaluate_ptb(model, data, seq_len=10, device=DEV)
    assert 0 <= acc <= 1 and after < before and after_acc > before_acc


def test_epoch_general_ptb_averages_over_tokens():
    data = ndl.data.batchify(list(range(9)) * 3, 3, device=DEV, dtype="float32")  # (9, 3)
    np.random.seed(0)
    model = LanguageModel(4, 9, 5, 1, "rnn", device=DEV)
    acc, loss = simple_ml.epoch_general_ptb(data, model, seq_len=5, device=DEV)
    # windows of 5 and 3 rows; the state carries over, so run them the same way
    x1, y1 = ndl.data.get_batch(data, 0, 5, device=DEV)
    x2, y2 = ndl.data.get_batch(data, 5, 5, device=DEV)
    out1, h = model(x1)
    out2, _ = model(x2, h)
    logits = np.concatenate([out1.numpy(), out2.numpy()])
    targets = np.concatenate([y1.numpy(), y2.numpy()]).astype(np.int64)
    assert loss == pytest.approx(np_softmax_loss(logits, targets), rel=1e-4)
    assert acc == pytest.approx((logits.argmax(axis=1) == targets).mean())


# ----------------------------------------------------------------------------------------------
# The apps, offline


def test_train_cifar10_app_synthetic(tmp_path):
    table = train_cifar10.main(["--synthetic", "--epochs", "2", "--limit", "64",
                                "--batch-size", "32", "--no-progress", "--out-dir",
                                str(tmp_path)])
    assert table.column("epoch") == [1, 2]
    assert table.column("train loss")[1] < table.column("train loss")[0]
    state = ndl.load(tmp_path / "resnet9.npz")
    ResNet9(device=DEV).load_state_dict(state)  # strict: every key and shape matches
    pytest.importorskip("matplotlib")
    assert (tmp_path / "cifar10.png").stat().st_size > 0


def test_train_ptb_app_synthetic(tmp_path):
    table = train_ptb.main(["--synthetic", "--epochs", "2", "--max-lines", "100",
                            "--model", "rnn", "--no-progress", "--out-dir", str(tmp_path)])
    ppl = table.column("train ppl")
    assert ppl[1] < ppl[0] < 50
    model = LanguageModel(64, 50, 64, 1, "rnn", seq_len=20, device=DEV)
    model.load_state_dict(ndl.load(tmp_path / "ptb_rnn.npz"))
