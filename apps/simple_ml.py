"""Small ML helpers on needle: MNIST parsing, softmax loss, a two-layer network epoch."""

from __future__ import annotations

import numpy as np

import needle as ndl
from needle.data.datasets.mnist_dataset import load_mnist


def parse_mnist(image_filename: str, label_filename: str) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST images and labels from idx files (gzip-compressed or not).

    Parameters
    ----------
    image_filename, label_filename : str
        Paths of the idx files.

    Returns
    -------
    X : numpy.ndarray of float32, shape (n, 784)
        Pixel values scaled to [0, 1].
    y : numpy.ndarray of uint8, shape (n,)
        Digit labels 0-9.
    """
    return load_mnist(image_filename, label_filename)


def softmax_loss(Z: ndl.Tensor, y_one_hot: ndl.Tensor) -> ndl.Tensor:
    """Mean softmax (cross-entropy) loss of logits ``Z`` against one-hot labels.

    Parameters
    ----------
    Z : Tensor, shape (batch, classes)
        Logits.
    y_one_hot : Tensor, shape (batch, classes)
        One-hot encoding of the true classes.

    Returns
    -------
    Tensor
        The average loss over the batch (0-d).
    """
    batch = Z.shape[0]
    true_logit = (Z * y_one_hot).sum(axes=(1,))
    return (ndl.logsumexp(Z, axes=(1,)) - true_logit).sum() / batch


def _one_hot(y: np.ndarray, classes: int) -> np.ndarray:
    out = np.zeros((y.shape[0], classes), dtype=np.float32)
    out[np.arange(y.shape[0]), y] = 1.0
    return out


def nn_epoch(
    X: np.ndarray,
    y: np.ndarray,
    W1: ndl.Tensor,
    W2: ndl.Tensor,
    lr: float = 0.1,
    batch: int = 100,
) -> tuple[ndl.Tensor, ndl.Tensor]:
    """One epoch of SGD on the network ``logits = ReLU(X W1) W2``, batches in order.

    Parameters
    ----------
    X : numpy.ndarray, shape (n, input_dim)
    y : numpy.ndarray of int, shape (n,)
    W1 : Tensor, shape (input_dim, hidden_dim)
    W2 : Tensor, shape (hidden_dim, num_classes)
    lr : float
        Step size.
    batch : int
        Mini-batch size.

    Returns
    -------
    (W1, W2) : tuple of Tensor
        The updated weights (new Tensors).
    """
    classes = W2.shape[1]
    for start in range(0, X.shape[0], batch):
        Xb = ndl.Tensor(X[start:start + batch], dtype=W1.dtype, requires_grad=False)
        yb = ndl.Tensor(_one_hot(y[start:start + batch], classes), dtype=W1.dtype,
                        requires_grad=False)
        loss = softmax_loss(ndl.relu(Xb @ W1) @ W2, yb)
        loss.backward()
        W1 = ndl.Tensor(W1.numpy() - lr * W1.grad.numpy(), dtype=W1.dtype)
        W2 = ndl.Tensor(W2.numpy() - lr * W2.grad.numpy(), dtype=W2.dtype)
    return W1, W2


def loss_err(h: ndl.Tensor, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Softmax loss and error rate of logits ``h`` (Tensor) against integer labels ``y``."""
    y = np.asarray(y)
    y_one_hot = ndl.Tensor(_one_hot(y, h.shape[-1]), dtype=h.dtype, requires_grad=False)
    return softmax_loss(h, y_one_hot).numpy(), float(np.mean(h.numpy().argmax(axis=1) != y))


# ----------------------------------------------------------------------------------------------
# hw4: training loops for CIFAR-10 (ResNet9) and Penn Treebank (LanguageModel)

import needle.nn as nn  # noqa: E402

try:  # the course's hw4 simple_ml star-imports the models
    from apps.models import *  # noqa: E402,F403
except ImportError:  # run with apps/ itself on sys.path (the course tests do that)
    from models import *  # noqa: E402,F403


def _model_device(model: nn.Module, device: object = None) -> object:
    if device is not None:
        return device
    params = model.parameters()
    return params[0].device if params else None


def _on(t: ndl.Tensor, device: object, dtype: object = None) -> ndl.Tensor:
    """``t`` as a constant on ``device`` (batches come from the loader's default device)."""
    if device is None or (t.device == device and (dtype is None or t.dtype == dtype)):
        return t
    return ndl.Tensor(t.numpy(), device=device, dtype=dtype, requires_grad=False)


def _loss_instance(loss_fn: object) -> object:
    return loss_fn() if isinstance(loss_fn, type) else loss_fn


def _correct(logits: ndl.Tensor, y: ndl.Tensor) -> int:
    return int(np.sum(logits.numpy().argmax(axis=1) == y.numpy().astype(np.int64)))


def epoch_general_cifar10(dataloader: ndl.data.DataLoader, model: nn.Module,
                          loss_fn: object = nn.SoftmaxLoss(),
                          opt: ndl.optim.Optimizer | None = None) -> tuple[float, float]:
    """One pass over ``dataloader``: trains when ``opt`` is given, else evaluates.

    Returns
    -------
    (avg_acc, avg_loss) : tuple of float
        Accuracy and loss averaged over samples.
    """
    np.random.seed(4)
    loss_fn = _loss_instance(loss_fn)
    model.train() if opt is not None else model.eval()
    device = _model_device(model)
    correct, total_loss, seen = 0, 0.0, 0
    for X, y in dataloader:
        X, y = _on(X, device), _on(y, device)
        logits = model(X)
        loss = loss_fn(logits, y)
        if opt is not None:
            opt.reset_grad()
            loss.backward()
            opt.step()
        n = y.shape[0]
        correct += _correct(logits, y)
        total_loss += float(loss.numpy()) * n
        seen += n
    return correct / seen, total_loss / seen


def train_cifar10(model: nn.Module, dataloader: ndl.data.DataLoader, n_epochs: int = 1,
                  optimizer: type = ndl.optim.Adam, lr: float = 0.001,
                  weight_decay: float = 0.001,
                  loss_fn: object = nn.SoftmaxLoss) -> tuple[float, float]:
    """Train for ``n_epochs``; return (avg_acc, avg_loss) of the last epoch."""
    np.random.seed(4)
    opt = optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss = _loss_instance(loss_fn)
    avg_acc, avg_loss = 0.0, 0.0
    for _ in range(n_epochs):
        avg_acc, avg_loss = epoch_general_cifar10(dataloader, model, loss, opt)
    return avg_acc, avg_loss


def evaluate_cifar10(model: nn.Module, dataloader: ndl.data.DataLoader,
                     loss_fn: object = nn.SoftmaxLoss) -> tuple[float, float]:
    """(avg_acc, avg_loss) of ``model`` in eval mode over ``dataloader``."""
    np.random.seed(4)
    return epoch_general_cifar10(dataloader, model, _loss_instance(loss_fn), None)


def _detach_state(h: object) -> object:
    if h is None:
        return None
    if isinstance(h, tuple):
        return tuple(_detach_state(t) for t in h)
    return h.detach()


def epoch_general_ptb(data: np.ndarray, model: nn.Module, seq_len: int = 40,
                      loss_fn: object = nn.SoftmaxLoss(),
                      opt: ndl.optim.Optimizer | None = None, clip: float | None = None,
                      device: object = None, dtype: str = "float32") -> tuple[float, float]:
    """One pass over batchified token ids ``data`` (nbatch, batch) in windows of ``seq_len``.

    The hidden state is carried from window to window (detached: truncated BPTT).
    Trains when ``opt`` is given (clipping the gradient norm to ``clip`` if set).

    Returns
    -------
    (avg_acc, avg_loss) : tuple of float
        Next-token accuracy and loss averaged over predicted tokens.
    """
    np.random.seed(4)
    loss_fn = _loss_instance(loss_fn)
    model.train() if opt is not None else model.eval()
    device = _model_device(model, device)
    correct, total_loss, seen = 0, 0.0, 0
    h = None
    for i in range(0, data.shape[0] - 1, seq_len):
        X, y = ndl.data.get_batch(data, i, seq_len, device=device, dtype=dtype)
        logits, h = model(X, h)
        h = _detach_state(h)
        loss = loss_fn(logits, y)
        if opt is not None:
            opt.reset_grad()
            loss.backward()
            if clip is not None:
                opt.clip_grad_norm(clip)
            opt.step()
        n = y.shape[0]
        correct += _correct(logits, y)
        total_loss += float(loss.numpy()) * n
        seen += n
    return correct / seen, total_loss / seen


def train_ptb(model: nn.Module, data: np.ndarray, seq_len: int = 40, n_epochs: int = 1,
              optimizer: type = ndl.optim.SGD, lr: float = 4.0, weight_decay: float = 0.0,
              loss_fn: object = nn.SoftmaxLoss, clip: float | None = None, device: object = None,
              dtype: str = "float32") -> tuple[float, float]:
    """Train for ``n_epochs``; return (avg_acc, avg_loss) of the last epoch."""
    np.random.seed(4)
    opt = optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss = _loss_instance(loss_fn)
    avg_acc, avg_loss = 0.0, 0.0
    for _ in range(n_epochs):
        avg_acc, avg_loss = epoch_general_ptb(data, model, seq_len, loss, opt, clip, device,
                                              dtype)
    return avg_acc, avg_loss


def evaluate_ptb(model: nn.Module, data: np.ndarray, seq_len: int = 40,
                 loss_fn: object = nn.SoftmaxLoss, device: object = None,
                 dtype: str = "float32") -> tuple[float, float]:
    """(avg_acc, avg_loss) of ``model`` in eval mode over ``data``."""
    np.random.seed(4)
    return epoch_general_ptb(data, model, seq_len, _loss_instance(loss_fn), None, None, device,
                             dtype)
