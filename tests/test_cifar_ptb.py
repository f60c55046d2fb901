"""CIFAR10Dataset, Dictionary, Corpus, batchify and get_batch on tiny files written in the
real formats, plus the checksum-verified download helper (through file:// URLs)."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest

import needle as ndl
from needle.data.datasets import _download, cifar10_dataset, ptb_dataset

# ----------------------------------------------------------------------------------------------
# CIFAR-10


def write_cifar(folder, per_batch=4, test_size=3, seed=0):
    """The cifar-10-batches-py layout: pickled dicts with uint8 rows of 3072 (R, G, B planes)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = test_size if name == "test_batch" else per_batch
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels,
                         b"filenames": [b"x.png"] * n}, f)
        written[name] = (data, labels)
    return written


def test_cifar_train_and_test_sets(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    train = ndl.data.CIFAR10Dataset(tmp_path / "cifar-10-batches-py", train=True)
    test = ndl.data.CIFAR10Dataset(str(tmp_path / "cifar-10-batches-py"), train=False)
    assert len(train) == 20 and len(test) == 3
    x, y = train[5]  # second image of data_batch_2
    data, labels = written["data_batch_2"]
    assert isinstance(x, np.ndarray) and x.shape == (3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x, data[1].reshape(3, 32, 32) / 255.0, rtol=1e-6)
    assert y == labels[1]
    # the red plane comes first in each row of 3072
    np.testing.assert_allclose(test[0][0][0].reshape(-1), written["test_batch"][0][0, :1024] / 255,
                               rtol=1e-6)


def test_cifar_batches_through_the_dataloader(tmp_path):
    write_cifar(tmp_path)
    dataset = ndl.data.CIFAR10Dataset(tmp_path, train=True)
    X, y = dataset[np.array([0, 3, 7])]
    assert X.shape == (3, 3, 32, 32) and y.shape == (3,)
    loader = ndl.data.DataLoader(dataset, batch_size=8)
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(8, 3, 32, 32), (8, 3, 32, 32), (4, 3, 32, 32)]
    X0, y0 = batches[0]
    assert isinstance(X0, ndl.Tensor) and isinstance(y0, ndl.Tensor)
    if ndl.BACKEND == "nd":
        assert X0.dtype == "float32" and isinstance(X0.cached_data, ndl.NDArray)
    np.testing.assert_allclose(X0.numpy(), dataset.X[:8])


def test_cifar_transforms_see_hwc_images(tmp_path):
    write_cifar(tmp_path)
    seen = []

    def flip_width(img):
        seen.append(img.shape)
        return img[:, ::-1, :]

    dataset = ndl.data.CIFAR10Dataset(tmp_path, train=False, transforms=[flip_width])
    x, _ = dataset[1]
    assert seen == [(32, 32, 3)]
    np.testing.assert_allclose(x, dataset.X[1][:, :, ::-1])
    X, _ = dataset[np.array([0, 2])]
    np.testing.assert_allclose(X, dataset.X[[0, 2]][:, :, :, ::-1])


def test_cifar_missing_files_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("NEEDLE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as err:
        ndl.data.CIFAR10Dataset(tmp_path / "nowhere", train=True, download=False)
    message = str(err.value)
    assert "data_batch_1" in message and str(tmp_path / "nowhere") in message
    assert "cifar-10-python.tar.gz" in message and cifar10_dataset.CIFAR10_SHA256 in message

    def offline(*args, **kwargs):
        raise OSError("could not download: no network")

    monkeypatch.setattr(cifar10_dataset, "fetch", offline)
    with pytest.raises(FileNotFoundError, match="no network"):
        ndl.data.CIFAR10Dataset(tmp_path / "nowhere", train=False)


def test_cifar_falls_back_to_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEEDLE_CACHE_DIR", str(tmp_path / "cache"))
    write_cifar(tmp_path / "cache" / "cifar10" / "cifar-10-batches-py")
    assert len(ndl.data.CIFAR10Dataset(None, train=False, download=False)) == 3


# ----------------------------------------------------------------------------------------------
# Download helper


def test_fetch_verifies_the_checksum(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"needle data")
    digest = hashlib.sha256(b"needle data").hexdigest()
    dest = _download.fetch(src.as_uri(), tmp_path / "out" / "file.bin", f"sha256:{digest}")
    assert dest.read_bytes() == b"needle data"
    with pytest.raises(OSError, match="checksum mismatch"):
        _download.fetch(src.as_uri(), tmp_path / "bad.bin", "sha256:" + "0" * 64)
    assert not (tmp_path / "bad.bin").exists() and not (tmp_path / "bad.bin.part").exists()
    md5 = hashlib.md5(b"needle data").hexdigest()
    assert _download.fetch("file:///does/not/exist", dest, f"sha256:{digest}") == dest
    with pytest.raises(OSError, match="could not download"):
        _download.fetch((tmp_path / "missing").as_uri(), tmp_path / "m.bin", f"md5:{md5}")


# ----------------------------------------------------------------------------------------------
# Penn Treebank


TRAIN_TEXT = " the cat sat \n the dog sat down \n a cat \n"
TEST_TEXT = " the bird \n"


def write_ptb(folder, prefix=""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}train.txt").write_text(TRAIN_TEXT)
    (folder / f"{prefix}test.txt").write_text(TEST_TEXT)


def test_dictionary_assigns_ids_in_order_of_first_use():
    d = ndl.data.Dictionary()
    assert [d.add_word(w) for w in ["a", "b", "a", "c"]] == [0, 1, 0, 2]
    assert len(d) == 3 and d.idx2word == ["a", "b", "c"] and d.word2idx["c"] == 2


@pytest.mark.parametrize("prefix", ["", "ptb."])
def test_corpus_tokenizes_lines_with_eos(tmp_path, prefix):
    write_ptb(tmp_path, prefix)
    corpus = ndl.data.Corpus(tmp_path, download=False)
    words = corpus.dictionary.idx2word
    assert [words[i] for i in corpus.train] == (
        "the cat sat <eos> the dog sat down <eos> a cat <eos>".split())
    assert [words[i] for i in corpus.test] == "the bird <eos>".split()
    assert len(corpus.dictionary) == 8  # shared: 'bird' is added by the test split


def test_corpus_max_lines(tmp_path):
    write_ptb(tmp_path)
    corpus = ndl.data.Corpus(tmp_path, max_lines=1, download=False)
    assert corpus.train == [0, 1, 2, 3] and len(corpus.test) == 3


def test_corpus_missing_files(tmp_path, monkeypatch):
    monkeypatch.setenv("NEEDLE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="train.txt") as err:
        ndl.data.Corpus(tmp_path / "empty", download=False)
    assert ptb_dataset.PTB_FILES["train"][1] in str(err.value)


def test_batchify_makes_contiguous_columns_and_drops_the_rest():
    data = list(range(11))
    out = ndl.data.batchify(data, batch_size=3, device=ndl.cpu(), dtype="float32")
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 3, 6], [1, 4, 7], [2, 5, 8]])


def test_get_batch_targets_are_the_next_tokens():
    batches = ndl.data.batchify(list(range(20)), batch_size=2, device=ndl.cpu(), dtype="float32")
    X, y = ndl.data.get_batch(batches, 1, 3, device=ndl.cpu(), dtype="float32")
    assert X.shape == (3, 2) and y.shape == (6,)
    np.testing.assert_array_equal(X.numpy(), [[1, 11], [2, 12], [3, 13]])
    np.testing.assert_array_equal(y.numpy(), [2, 12, 3, 13, 4, 14])
    assert X.device == ndl.cpu() and not X.requires_grad
    if ndl.BACKEND == "nd":
        assert X.dtype == "float32" and isinstance(X.cached_data, ndl.NDArray)
    X, y = ndl.data.get_batch(batches, 8, 3, device=ndl.cpu())  # only one row is left
    assert X.shape == (1, 2) and y.shape == (2,)
    np.testing.assert_array_equal(y.numpy(), [9, 19])
