"""Checkpoints: ndl.save / ndl.load and Module.load_state_dict, including every failure mode."""

import os
import zipfile

import numpy as np
import pytest

import needle as ndl
import needle.nn as nn
from needle.serialization import CheckpointError


def make_model(seed=0):
    np.random.seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(8, 3))


def trained_model():
    model = make_model(0)
    opt = ndl.optim.Adam(model.parameters(), lr=0.05)
    X = ndl.Tensor(np.random.default_rng(1).standard_normal((16, 4)), dtype="float32",
                   requires_grad=False)
    y = ndl.Tensor(np.arange(16) % 3, requires_grad=False)
    for _ in range(5):
        opt.reset_grad()
        nn.SoftmaxLoss()(model(X), y).backward()
        opt.step()
    return model, X


def snapshot(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def assert_same_state(model, state):
    now = model.state_dict()
    assert list(now) == list(state)
    for k in state:
        np.testing.assert_array_equal(now[k], state[k], err_msg=k)


def test_save_load_round_trip_arrays(tmp_path):
    sd = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.float64(2.5),
          "c": ndl.Tensor([1.0, 2.0])}
    path = tmp_path / "x.npz"
    ndl.save(sd, path)
    loaded = ndl.load(path)
    assert list(loaded) == ["b", "a", "c"]
    np.testing.assert_array_equal(loaded["b"], sd["b"])
    assert loaded["b"].dtype == np.float32 and loaded["a"].dtype == np.float64
    np.testing.assert_array_equal(loaded["c"], [1.0, 2.0])


def test_state_dict_round_trip_gives_identical_predictions(tmp_path):
    model, X = trained_model()
    model.eval()
    before = model(X).numpy()
    path = str(tmp_path / "model.npz")
    ndl.save(model.state_dict(), path)
    fresh = make_model(seed=123)
    fresh.eval()
    assert not np.array_equal(fresh(X).numpy(), before)
    fresh.load_state_dict(ndl.load(path))
    np.testing.assert_array_equal(fresh(X).numpy(), before)
    # BatchNorm running statistics travelled too
    np.testing.assert_array_equal(fresh.modules[1].running_mean.numpy(),
                                  model.modules[1].running_mean.numpy())


def test_save_accepts_a_module(tmp_path):
    model, _ = trained_model()
    ndl.save(model, tmp_path / "m.npz")
    assert list(ndl.load(tmp_path / "m.npz")) == list(model.state_dict())


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    ndl.save({"w": np.ones(3)}, path)
    ndl.save({"w": np.zeros(3)}, path)  # overwrite
    np.testing.assert_array_equal(ndl.load(path)["w"], np.zeros(3))
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]

    def crash(*args, **kwargs):
        raise OSError("disk full")

    # Fails halfway through writing the archive's first array.
    monkeypatch.setattr(np.lib.format, "write_array", crash)
    with pytest.raises(OSError, match="disk full"):
        ndl.save({"w": np.full(3, 7.0)}, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(ndl.load(path)["w"], np.zeros(3))  # old checkpoint intact
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


def test_keys_named_like_savez_arguments_round_trip(tmp_path):
    # np.savez(f, **arrays) would take these keys as its own arguments.
    state = {"file": np.arange(3.0), "allow_pickle": np.ones((2, 2), np.float32)}
    ndl.save(state, tmp_path / "x.npz")
    loaded = ndl.load(tmp_path / "x.npz")
    assert list(loaded) == ["file", "allow_pickle"]
    for key, value in state.items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)


def test_save_rejects_non_numeric_and_bad_keys(tmp_path):
    with pytest.raises(CheckpointError, match="'name'.*numeric"):
        ndl.save({"name": np.array(["a"])}, tmp_path / "x.npz")
    with pytest.raises(CheckpointError, match="keys"):
        ndl.save({1: np.ones(1)}, tmp_path / "x.npz")
    with pytest.raises(CheckpointError, match="dict"):
        ndl.save([np.ones(1)], tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ndl.load(tmp_path / "none.npz")


def test_load_truncated_file(tmp_path):
    model, _ = trained_model()
    path = tmp_path / "m.npz"
    ndl.save(model.state_dict(), path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="not a valid .npz checkpoint"):
            ndl.load(path)


def test_load_corrupted_member(tmp_path):
    path = tmp_path / "m.npz"
    ndl.save({"w": np.arange(1000, dtype=np.float32)}, path)
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF  # inside the stored array: the zip CRC check fails
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="m.npz"):
        ndl.load(path)


def test_load_not_an_npz(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello, I am not a checkpoint")
    with pytest.raises(CheckpointError, match="not a valid .npz"):
        ndl.load(text)
    npy = tmp_path / "single.npy"
    np.save(npy, np.ones(3))
    with pytest.raises(CheckpointError, match="single .npy array"):
        ndl.load(npy)


def test_load_refuses_pickled_data(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError):
        ndl.load(path)
    assert zipfile.is_zipfile(path)


def test_missing_key_names_it_and_leaves_model_untouched(tmp_path):
    model, _ = trained_model()
    state = snapshot(model)
    sd = make_model(5).state_dict()
    del sd["modules.4.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys \['modules.4.bias'\]"):
        model.load_state_dict(sd)
    assert_same_state(model, state)


def test_unexpected_key_strict_and_non_strict():
    model = make_model(0)
    sd = make_model(1).state_dict()
    sd["extra.weight"] = np.ones(2, np.float32)
    state = snapshot(model)
    with pytest.raises(CheckpointError, match=r"unexpected keys \['extra.weight'\]"):
        model.load_state_dict(sd)
    assert_same_state(model, state)
    del sd["modules.0.bias"]
    result = model.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["modules.0.bias"]
    assert result.unexpected_keys == ["extra.weight"]
    np.testing.assert_array_equal(model.modules[0].weight.numpy(), sd["modules.0.weight"])
    np.testing.assert_array_equal(model.modules[0].bias.numpy(), state["modules.0.bias"])


def test_wrong_shape_names_key_and_both_shapes_and_leaves_model_untouched(tmp_path):
    model, _ = trained_model()
    state = snapshot(model)
    np.random.seed(3)
    other = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2),
                          nn.Linear(8, 5))
    path = tmp_path / "other.npz"
    ndl.save(other.state_dict(), path)
    # The first keys fit; the mismatch comes late, and still nothing is written.
    with pytest.raises(ValueError, match=r"'modules.4.weight'.*\(8, 5\).*\(8, 3\)"):
        model.load_state_dict(ndl.load(path))
    assert_same_state(model, state)


def test_wrong_dtype_is_rejected():
    model = make_model(0)
    state = snapshot(model)
    sd = make_model(1).state_dict()
    sd["modules.0.bias"] = sd["modules.0.bias"].astype(np.float64)
    with pytest.raises(TypeError, match=r"'modules.0.bias'.*float64.*float32"):
        model.load_state_dict(sd)
    assert_same_state(model, state)


def test_loaded_parameters_still_train():
    model, X = trained_model()
    fresh = make_model(9)
    fresh.load_state_dict(model.state_dict())
    opt = ndl.optim.SGD(fresh.parameters(), lr=0.1)
    before = fresh.modules[0].weight.numpy().copy()
    nn.SoftmaxLoss()(fresh(X), ndl.Tensor(np.zeros(16), requires_grad=False)).backward()
    opt.step()
    assert not np.array_equal(before, fresh.modules[0].weight.numpy())


def test_old_checkpoint_with_1d_linear_bias_loads_into_the_1_by_out_bias(tmp_path):
    # needle saved Linear biases as (out,) before they became the course's (1, out).
    src = make_model(4)
    sd = src.state_dict()
    sd["modules.0.bias"] = sd["modules.0.bias"].reshape(8)
    sd["modules.4.bias"] = sd["modules.4.bias"].reshape(3)
    path = tmp_path / "old.npz"
    ndl.save(sd, path)
    model = make_model(0)
    model.load_state_dict(ndl.load(path))
    assert model.modules[0].bias.shape == (1, 8) and model.modules[4].bias.shape == (1, 3)
    np.testing.assert_array_equal(model.modules[4].bias.numpy(), sd["modules.4.bias"][None])
    model.eval()
    src.eval()
    x = ndl.Tensor(np.ones((2, 4), np.float32))
    np.testing.assert_array_equal(model(x).numpy(), src(x).numpy())


def test_bias_of_another_size_is_still_a_shape_error():
    model = make_model(0)
    state = snapshot(model)
    sd = make_model(1).state_dict()
    sd["modules.4.bias"] = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"'modules.4.bias'.*\(4,\).*\(1, 3\)"):
        model.load_state_dict(sd)
    assert_same_state(model, state)
