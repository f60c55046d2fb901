"""The misuse catalogue: every user mistake gets a clear needle error, never a numpy traceback.

Each case names the expected error type and a fragment of the message. Cases are
callables so that one table holds them all; ``test_catalogue_size`` keeps the count honest.
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import graph as ad
from needle import nn
from needle.errors import (
    CheckpointError,
    DeviceError,
    DTypeError,
    GraphError,
    NeedleError,
    ShapeError,
)


def T(*shape, dtype="float32", requires_grad=True):
    return ndl.Tensor(np.ones(shape), dtype=dtype, requires_grad=requires_grad)


def _checkpoint_with(tmp_path, name, sd):
    path = os.fspath(tmp_path / name)
    ndl.save(sd, path)
    return path


def _load_into_linear(path):
    ndl.nn.Linear(3, 2).load_state_dict(ndl.load(path))


def _truncated_checkpoint(tmp_path):
    path = _checkpoint_with(tmp_path, "t.npz", ndl.nn.Linear(3, 2).state_dict())
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    ndl.load(path)


def _not_npz(tmp_path):
    path = tmp_path / "x.npz"
    path.write_text("this is not a checkpoint")
    ndl.load(os.fspath(path))


def _missing_key(tmp_path):
    sd = ndl.nn.Linear(3, 2).state_dict()
    sd.pop("bias")
    _load_into_linear(_checkpoint_with(tmp_path, "m.npz", sd))


def _extra_key(tmp_path):
    sd = ndl.nn.Linear(3, 2).state_dict()
    sd["surprise"] = np.zeros(2, dtype=np.float32)
    _load_into_linear(_checkpoint_with(tmp_path, "e.npz", sd))


def _wrong_shape(tmp_path):
    sd = ndl.nn.Linear(3, 2).state_dict()
    sd["weight"] = np.zeros((4, 2), dtype=np.float32)
    _load_into_linear(_checkpoint_with(tmp_path, "s.npz", sd))


class _Empty(ndl.data.Dataset):
    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise IndexError(i)


def _iadd_on_leaf():
    w = T(3)
    w += 1.0


def _setitem_on_leaf():
    w = T(2, 3)
    w[0] = 1.0


def _saved_tensor_modified():
    x, w = T(3), T(3)
    h = x * 1.0
    y = h * w  # saves h for the gradient w.r.t. w
    h.add_(1.0)
    y.sum().backward()


def _saved_output_modified():
    y = ndl.exp(T(3))
    y *= 2.0
    y.sum().backward()


def _stale_alias():
    x, w = T(2, 3), T(2, 3)
    h = x * 1.0
    h.detach().add_(w)  # a detached alias: h's graph does not see the change
    (h * 2.0).sum().backward()


def _setitem_out_of_range():
    h = T(2, 3) * 1.0
    h[5] = 0.0


def _setitem_value_shape():
    h = T(2, 3) * 1.0
    h[0] = T(4)


def _inplace_on_placeholder():
    ad.Variable("x").add_(1.0)


def _graph_missing_feed():
    x, y = ad.Variable("x"), ad.Variable("y")
    ad.Evaluator([x * y]).run({x: np.ones(2)})


def _graph_extra_feed():
    x, z = ad.Variable("x"), ad.Variable("z")
    ad.Evaluator([x * 2]).run({x: np.ones(2), z: np.ones(2)})


def _missing_checkpoint(tmp_path):
    ndl.load(os.fspath(tmp_path / "missing.npz"))


class _Head(nn.Module):
    """A user module without input checks: the op's error still names it."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(ndl.Tensor(np.ones((3, 2))))

    def forward(self, x):
        return x @ self.w


def _nested_model_error():
    model = nn.Sequential(nn.Linear(2, 3),
                          nn.Residual(nn.Sequential(nn.ReLU(), nn.Linear(4, 3))))
    model(T(5, 2))


def _disabled_device_evaluator():
    v = ad.Variable("v")
    ad.Evaluator([v * 2], device=CUDA).run({v: np.ones(2)})


def _no_grad_on_a_number():
    ndl.no_grad(3)


CUDA = ndl.cuda()  # called at import time, as course files do

CASES = {
    # shape mismatches in every binary op
    "add shapes": (lambda: T(2, 3) + T(4, 5), ShapeError, "(2, 3) and (4, 5)"),
    "sub shapes": (lambda: T(2, 3) - T(4), ShapeError, "(2, 3) and (4,)"),
    "mul shapes": (lambda: T(2, 3) * T(3, 2), ShapeError, "(2, 3) and (3, 2)"),
    "div shapes": (lambda: T(2, 3) / T(2), ShapeError, "(2, 3) and (2,)"),
    "power shapes": (lambda: ndl.power(T(2, 3), T(5)), ShapeError, "power"),
    "maximum shapes": (lambda: ndl.maximum(T(2), T(3)), ShapeError, "maximum"),
    "greater shapes": (lambda: ndl.greater(T(2), T(3)), ShapeError, "greater"),
    "matmul inner": (lambda: T(2, 3) @ T(4, 5), ShapeError, "(2, 3) and (4, 5)"),
    "matmul 0-d": (lambda: T() @ T(3, 2), ShapeError, ("at least 1 dim", "() and (3, 2)")),
    "matmul vector inner": (lambda: T(3) @ T(4, 2), ShapeError, ("(3,) and (4, 2)", "3 != 4")),
    "matmul batch": (lambda: T(2, 2, 3) @ T(3, 3, 4), ShapeError, "batch dims"),
    "reshape size": (lambda: T(2, 3).reshape((4,)), ShapeError, "6 elements"),
    "broadcast_to": (lambda: T(3).broadcast_to((2, 4)), ShapeError, "(3,) to (2, 4)"),
    "summation axis": (lambda: T(2, 3).sum(axes=3), ShapeError, "axis 3 is out of range"),
    "summation repeated": (lambda: T(2, 3).sum(axes=(1, 1)), ShapeError, "repeated axis"),
    "mean axis": (lambda: ndl.mean(T(2, 3), axes=-3), ShapeError, "mean: axis -3"),
    "max axis": (lambda: ndl.max(T(2, 3), axes=2), ShapeError, "max: axis 2"),
    "logsumexp axis": (lambda: ndl.logsumexp(T(2, 3), axes=(5,)), ShapeError, "logsumexp"),
    "transpose axes": (lambda: ndl.transpose(T(2, 3), (0, 4)), ShapeError, "transpose"),
    "permute not a permutation": (lambda: ndl.permute(T(2, 3, 4), (0, 0, 1)), ShapeError,
                                  "not a permutation"),
    "permute wrong length": (lambda: ndl.permute(T(2, 3), (1, 0, 2)), ShapeError, "permute"),
    "getitem out of range": (lambda: T(2, 3)[5], IndexError, "(2, 3)"),
    "getitem too many": (lambda: T(2, 3)[0, 0, 0], IndexError, "getitem"),
    "stack unequal": (lambda: ndl.stack([T(2), T(3)], 0), ShapeError, "same shape"),
    "stack axis": (lambda: ndl.stack([T(2), T(2)], 5), ShapeError, "axis 5"),
    "split axis": (lambda: ndl.split(T(2, 3), 5), ShapeError, "axis 5 does not exist"),
    "conv channels": (lambda: ndl.conv(T(1, 5, 5, 3), T(3, 3, 4, 2)), ShapeError,
                      "3 channels but the weight expects 4"),
    "conv stride 0": (lambda: ndl.conv(T(1, 5, 5, 3), T(3, 3, 3, 2), stride=0), ShapeError,
                      "stride must be an integer >= 1"),
    "conv negative padding": (lambda: ndl.conv(T(1, 5, 5, 3), T(3, 3, 3, 2), padding=-1),
                              ShapeError, "padding"),
    "conv kernel too big": (lambda: ndl.conv(T(1, 2, 2, 1), T(5, 5, 1, 1), padding=0),
                            ShapeError, "larger than the padded input"),
    "dilate negative": (lambda: ndl.dilate(T(2, 2), (0,), -1), ShapeError, "dilation"),
    "dilate axis": (lambda: ndl.dilate(T(2, 2), (3,), 1), ShapeError, "dilate: axis 3"),
    "pad negative": (lambda: ndl.pad(T(2, 2), ((0, -1), (0, 0))), ShapeError, ">= 0"),
    # backward misuse
    "backward no grad": (lambda: T(2, requires_grad=False).sum().backward(), GraphError,
                         "does not require grad"),
    "backward out_grad shape": (lambda: (T(2, 3) * 2).backward(T(3, requires_grad=False)),
                                ShapeError, "out_grad has shape (3,)"),
    "backward out_grad dtype": (lambda: (T(2) * 2).backward(T(2, dtype="float64")), DTypeError,
                                "float64"),
    # data assignment
    "data shape": (lambda: setattr(T(2, 3), "data", T(4)), ShapeError, "(4,)"),
    "data dtype": (lambda: setattr(T(2), "data", T(2, dtype="float64")), DTypeError, "dtype"),
    # bad construction
    "ragged list": (lambda: ndl.Tensor([[1, 2], [3]]), ShapeError, "ragged"),
    "strings": (lambda: ndl.Tensor(["a"]), DTypeError, "strings"),
    "none": (lambda: ndl.Tensor(None), DTypeError, "Python objects"),
    "object array": (lambda: ndl.Tensor(np.array([{}, 1], dtype=object)), DTypeError,
                     "Python objects"),
    "complex": (lambda: ndl.Tensor([1j]), DTypeError, "complex"),
    "unsupported dtype": (lambda: ndl.Tensor([1.0], dtype="complex64"), DTypeError,
                          "complex64"),
    # float-only ops on integer data (the numpy backend keeps ints)
    "log of ints": (lambda: ndl.log(ndl.Tensor(np.array([1, 2]), dtype="int64")),
                    DTypeError, "floating-point"),
    # devices
    "mixing devices": (lambda: ndl.Tensor([1.0], device=ndl.cpu())
                       + ndl.Tensor([1.0], device=ndl.cpu_numpy()), DeviceError,
                       "different devices"),
    "disabled device tensor": (lambda: ndl.Tensor([1.0], device=CUDA), DeviceError,
                               ("Tensor: device cuda()", "not enabled")),
    "disabled device tensor copy": (lambda: ndl.Tensor(T(2), device=CUDA), DeviceError,
                                    ("Tensor", "cuda()")),
    "disabled device init.rand": (lambda: ndl.init.rand(2, 3, device=CUDA), DeviceError,
                                  ("init.rand", "cuda()", "not enabled")),
    "disabled device init.randn": (lambda: ndl.init.randn(2, device=CUDA), DeviceError,
                                   ("init.randn", "cuda()")),
    "disabled device init.zeros": (lambda: ndl.init.zeros(2, device=CUDA), DeviceError,
                                   "cuda()"),
    "disabled device one_hot": (lambda: ndl.init.one_hot(3, T(2), device=CUDA), DeviceError,
                                ("init.one_hot", "cuda()")),
    "disabled device nd.array": (lambda: nd.array([1.0], device=CUDA), DeviceError,
                                 ("NDArray", "cuda()")),
    "disabled device NDArray.to": (lambda: nd.array([1.0]).to(CUDA), DeviceError,
                                   ("NDArray.to", "cuda()")),
    "disabled device module": (lambda: nn.Linear(2, 3, device=CUDA), DeviceError, "cuda()"),
    "disabled device evaluator": (lambda: _disabled_device_evaluator(), DeviceError,
                                  ("Evaluator", "cuda()")),
    "device not a device": (lambda: ndl.Tensor([1.0], device="cuda"), DeviceError,
                            ("needle device", "'cuda'")),
    # keyword typos are not swallowed
    "tensor keyword typo": (lambda: ndl.Tensor([1.0], requires_gard=False), TypeError,
                            ("requires_gard", "did you mean 'requires_grad'")),
    "tensor unknown keyword": (lambda: ndl.Tensor([1.0], shape=(1,)), TypeError, "'shape'"),
    "no_grad on a number": (_no_grad_on_a_number, TypeError, "no_grad"),
    # both spellings of a reduction argument
    "sum axes and dim": (lambda: T(2, 3).sum(axes=0, dim=1), TypeError, ("axes=0", "dim=1")),
    "mean keepdims and keepdim": (lambda: ndl.mean(T(2, 3), keepdims=True, keepdim=True),
                                  TypeError, ("keepdims", "keepdim")),
    "softmax axis and dim": (lambda: ndl.softmax(T(2, 3), axis=0, dim=1), TypeError,
                             "softmax"),
    "mT of a vector": (lambda: T(3).mT, ShapeError, "(3,)"),
    # nn modules name themselves and the shapes
    "SoftmaxLoss labels": (lambda: nn.SoftmaxLoss()(T(4, 10), T(5)), ShapeError,
                           ("SoftmaxLoss", "(4, 10)", "(5,)")),
    "SoftmaxLoss fractional labels": (lambda: nn.SoftmaxLoss()(T(2, 3), ndl.Tensor([0.5, 1.0])),
                                      ShapeError, ("SoftmaxLoss", "integers", "0.5")),
    "SoftmaxLoss label out of range": (lambda: nn.SoftmaxLoss()(T(2, 3), ndl.Tensor([0, 3])),
                                       ShapeError, ("SoftmaxLoss", "[0, 3)")),
    "Linear in_features": (lambda: nn.Linear(3, 4)(T(2, 5)), ShapeError,
                           ("Linear", "(2, 5)", "expected 3")),
    "BatchNorm1d dim": (lambda: nn.BatchNorm1d(3)(T(2, 5)), ShapeError,
                        ("BatchNorm1d", "(2, 5)")),
    "BatchNorm2d channels": (lambda: nn.BatchNorm2d(3)(T(2, 5, 4, 4)), ShapeError,
                             ("BatchNorm2d", "3 channels", "(2, 5, 4, 4)")),
    "LayerNorm1d dim": (lambda: nn.LayerNorm1d(3)(T(2, 5)), ShapeError,
                        ("LayerNorm1d", "(2, 5)")),
    "Flatten 0-d": (lambda: nn.Flatten()(T()), ShapeError, "Flatten"),
    "Conv channels": (lambda: nn.Conv(3, 4, 3)(T(2, 5, 8, 8)), ShapeError,
                      ("Conv", "3 channels", "(2, 5, 8, 8)")),
    "RNNCell input": (lambda: nn.RNNCell(3, 4)(T(2, 5)), ShapeError, ("RNNCell", "(2, 5)")),
    "RNNCell h": (lambda: nn.RNNCell(3, 4)(T(2, 3), T(2, 5)), ShapeError,
                  ("RNNCell", "h of shape (2, 4)", "(2, 5)")),
    "LSTMCell c0": (lambda: nn.LSTMCell(3, 4)(T(2, 3), (T(2, 4), T(3, 4))), ShapeError,
                    ("LSTMCell", "c0", "(3, 4)")),
    "RNN input": (lambda: nn.RNN(3, 4)(T(6, 2, 5)), ShapeError, ("RNN", "(6, 2, 5)")),
    "LSTM h0": (lambda: nn.LSTM(3, 4, num_layers=2)(T(6, 2, 3), (T(1, 2, 4), T(1, 2, 4))),
                ShapeError, ("LSTM", "(2, 2, 4)", "(1, 2, 4)")),
    "Embedding id out of range": (lambda: nn.Embedding(5, 4)(ndl.Tensor([[1.0, 7.0]])),
                                  ShapeError, ("Embedding", "[0, 5)")),
    "Embedding fractional id": (lambda: nn.Embedding(5, 4)(ndl.Tensor([[1.5]])), ShapeError,
                                ("Embedding", "integers", "1.5")),
    "MultiHeadAttention shapes": (lambda: nn.MultiHeadAttention()(T(2, 2, 3, 4), T(2, 2, 3, 5),
                                                                  T(2, 2, 3, 4)),
                                  ShapeError, ("MultiHeadAttention", "(2, 2, 3, 5)")),
    "AttentionLayer features": (lambda: nn.AttentionLayer(4, 2, 3)(T(2, 5, 6)), ShapeError,
                                ("AttentionLayer > LayerNorm1d", "(2, 5, 6)")),
    "Sequential class child": (lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU), TypeError,
                               ("Sequential: argument 1", "class ReLU", "ReLU(...)")),
    "Sequential list child": (lambda: nn.Sequential([nn.ReLU()]), TypeError,
                              ("Sequential", "Sequential(*modules)")),
    "Sequential path": (_nested_model_error, ShapeError,
                        ("Sequential[1] > Residual > Sequential[1] > Linear:", "(5, 3)")),
    "Residual shape": (lambda: nn.Residual(nn.Linear(2, 3))(T(4, 2)), ShapeError,
                       ("Residual", "(4, 3)", "(4, 2)")),
    "module without checks": (lambda: _Head()(T(2, 4)), ShapeError,
                              ("_Head: matmul", "(2, 4) and (3, 2)")),
    # scalars that are not scalars
    "array as scalar": (lambda: ndl.add_scalar(T(2), np.ones(3)), DTypeError, "scalar"),
    # in-place ops
    "inplace on leaf": (lambda: T(3).mul_(2.0), GraphError, "leaf tensor that requires grad"),
    "inplace += on leaf": (_iadd_on_leaf, GraphError, "add_: a leaf tensor"),
    "setitem on leaf": (_setitem_on_leaf, GraphError, "setitem: a leaf tensor"),
    "inplace view of leaf": (lambda: T(2, 3).reshape((6,)).add_(1.0), GraphError,
                             "shares its storage with a leaf"),
    "inplace shape": (lambda: (T(3) * 1.0).add_(T(2, 3)), ShapeError,
                      "cannot change a tensor's shape"),
    "inplace int from float": (lambda: ndl.Tensor(np.array([1, 2]), requires_grad=False)
                               .add_(0.5), DTypeError, "cannot be stored in place"),
    "saved tensor modified": (_saved_tensor_modified, GraphError,
                              "input 0 of EWiseMul was modified in place by add_"),
    "saved output modified": (_saved_output_modified, GraphError,
                              "the output of Exp was modified in place by mul_"),
    "stale alias": (_stale_alias, GraphError, "shares its storage with a tensor that add_"),
    "setitem out of range": (_setitem_out_of_range, IndexError, "(2, 3)"),
    "setitem value shape": (_setitem_value_shape, ShapeError, "value of shape (4,)"),
    "fill_ non-scalar": (lambda: (T(2) * 1.0).fill_(T(2)), ShapeError, "0-d tensor"),
    "inplace on placeholder": (_inplace_on_placeholder, GraphError,
                               "not supported on placeholders"),
    # graph mode
    "graph missing feed": (_graph_missing_feed, ValueError, "y"),
    "graph extra feed": (_graph_extra_feed, ValueError, "z"),
    # data loading
    "dataloader batch 0": (lambda: ndl.data.DataLoader(
        ndl.data.NDArrayDataset(np.ones((4, 2))), batch_size=0), ValueError, "batch_size"),
    "dataloader empty": (lambda: ndl.data.DataLoader(_Empty(), batch_size=2), ValueError,
                         "empty"),
}

CHECKPOINT_CASES = {
    "checkpoint truncated": (_truncated_checkpoint, NeedleError, "t.npz"),
    "checkpoint not npz": (_not_npz, NeedleError, "x.npz"),
    "checkpoint missing key": (_missing_key, NeedleError, "bias"),
    "checkpoint extra key": (_extra_key, NeedleError, "surprise"),
    "checkpoint wrong shape": (_wrong_shape, NeedleError, "(4, 2)"),
    "checkpoint missing file": (_missing_checkpoint, CheckpointError, ("missing.npz", "no such")),
}


def test_catalogue_size_is_the_one_readme_quotes():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    quoted = re.search(r"catalogue: (\d+)\s+misuses", readme)
    assert quoted, "README.md no longer quotes the size of the misuse catalogue"
    assert int(quoted.group(1)) == len(CASES) + len(CHECKPOINT_CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_misuse(name):
    fn, err, fragment = CASES[name]
    if name in ("log of ints", "inplace int from float") and ndl.BACKEND == "nd":
        pytest.skip("the nd backend has no integer dtype; covered under NEEDLE_BACKEND=np")
    if name == "mixing devices" and ndl.BACKEND != "nd":
        pytest.skip("the numpy backend has a single device")
    with pytest.raises(err) as info:
        fn()
    _check_message(name, info.value, fragment)


def _check_message(name, error, fragments):
    for fragment in (fragments,) if isinstance(fragments, str) else fragments:
        assert fragment in str(error), f"{name}: message {str(error)!r} lacks {fragment!r}"


@pytest.mark.parametrize("name", sorted(CHECKPOINT_CASES))
def test_checkpoint_misuse(name, tmp_path):
    fn, err, fragment = CHECKPOINT_CASES[name]
    with pytest.raises(err) as info:
        fn(tmp_path)
    _check_message(name, info.value, fragment)


def test_missing_checkpoint_is_also_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        _missing_checkpoint(tmp_path)
    assert ndl.CheckpointError is CheckpointError
    assert ndl.DataFormatError is ndl.errors.DataFormatError is ndl.data.DataFormatError


def test_disabled_device_is_still_a_device():
    cuda = ndl.cuda()
    assert not cuda.enabled() and repr(cuda) == "cuda()"
    assert not hasattr(cuda, "Array")  # a DeviceError that is also an AttributeError
    with pytest.raises(AttributeError):
        cuda.rand(2)
    assert cuda in ndl.all_devices() or ndl.BACKEND == "np"


def test_module_errors_keep_their_type_and_are_not_prefixed_twice():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(4, 1))
    with pytest.raises(ShapeError) as info:
        model(T(5, 2))
    assert str(info.value) == ("Sequential[1] > Linear: input of shape (5, 3) has 3 features, "
                               "expected 4")
    with pytest.raises(ShapeError) as again:  # a fresh error per call, not a growing prefix
        model(T(5, 2))
    assert str(again.value) == str(info.value)


def test_nd_backend_rejects_integer_dtype():
    if ndl.BACKEND != "nd":
        pytest.skip("nd-only")
    with pytest.raises(DTypeError, match="int64"):
        ndl.Tensor(np.array([1, 2]), dtype="int64")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_propagate_without_crashing(bad):
    x = ndl.Tensor([1.0, bad, 2.0])
    with np.errstate(all="ignore"):
        y = (ndl.exp(x) * x + ndl.relu(x)).sum()
        y.backward()
    assert not np.isfinite(y.numpy())
    assert x.grad.shape == (3,)
    assert np.isfinite(x.grad.numpy()[[0, 2]]).all()


def test_failed_load_leaves_model_untouched(tmp_path):
    model = ndl.nn.Linear(3, 2)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    sd = ndl.nn.Linear(3, 2).state_dict()
    sd["weight"] = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(NeedleError):
        model.load_state_dict(sd)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
