"""needle.data: DataLoader, transforms, NDArrayDataset and MNISTDataset on generated idx files."""

import numpy as np
import pytest
from conftest import write_idx

import needle as ndl
from needle.data import DataFormatError


@pytest.fixture
def tiny_mnist(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 4, 5), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9, 2], dtype=np.uint8)
    img = write_idx(tmp_path / "img.gz", images)
    lab = write_idx(tmp_path / "lab.gz", labels)
    return img, lab, images, labels


# ----------------------------------------------------------------------------------------------
# DataLoader


def test_dataloader_without_shuffle_keeps_order_and_last_batch_is_smaller():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    loader = ndl.data.DataLoader(ndl.data.NDArrayDataset(X, y), batch_size=4)
    batches = list(loader)
    assert len(batches) == len(loader) == 3
    assert [b[0].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), X)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)
    assert all(isinstance(t, ndl.Tensor) and not t.requires_grad for b in batches for t in b)
    assert [len(o) for o in loader.ordering] == [4, 4, 2]


def test_dataloader_batches_are_float32_tensors_on_nd():
    loader = ndl.data.DataLoader(ndl.data.NDArrayDataset(np.ones((3, 2)), np.arange(3)), 2)
    X, y = next(iter(loader))
    if ndl.BACKEND == "nd":
        assert isinstance(X.cached_data, ndl.NDArray)
        assert np.dtype(X.dtype) == np.float32 and np.dtype(y.dtype) == np.float32


def test_dataloader_shuffle_golden_seed_0():
    dataset = ndl.data.NDArrayDataset(np.arange(100))
    np.random.seed(0)
    (first,) = next(iter(ndl.data.DataLoader(dataset, batch_size=10, shuffle=True)))
    np.testing.assert_array_equal(first.numpy()[:4], [26, 86, 2, 55])


def test_dataloader_shuffles_anew_each_epoch():
    dataset = ndl.data.NDArrayDataset(np.arange(50))
    loader = ndl.data.DataLoader(dataset, batch_size=50, shuffle=True)
    np.random.seed(1)
    e1 = next(iter(loader))[0].numpy()
    e2 = next(iter(loader))[0].numpy()
    np.random.seed(1)
    np.testing.assert_array_equal(e1, np.random.permutation(50))
    np.testing.assert_array_equal(e2, np.random.permutation(50))
    assert sorted(e1) == list(range(50))


def test_dataloader_stops():
    it = iter(ndl.data.DataLoader(ndl.data.NDArrayDataset(np.arange(3)), batch_size=3))
    next(it)
    with pytest.raises(StopIteration):
        next(it)


def test_dataloader_rejects_bad_batch_size_and_empty_dataset():
    with pytest.raises(ValueError, match="batch_size"):
        ndl.data.DataLoader(ndl.data.NDArrayDataset(np.arange(3)), batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        ndl.data.DataLoader(ndl.data.NDArrayDataset(np.zeros((0, 2))), batch_size=2)


def test_ndarray_dataset():
    a, b = np.arange(12).reshape(4, 3), np.arange(4) * 10
    ds = ndl.data.NDArrayDataset(a, b)
    assert len(ds) == 4
    x, y = ds[2]
    np.testing.assert_array_equal(x, [6, 7, 8])
    assert y == 20
    with pytest.raises(ValueError, match="different lengths"):
        ndl.data.NDArrayDataset(a, np.arange(3))


# ----------------------------------------------------------------------------------------------
# Transforms


def test_random_flip_horizontal_draws_once():
    img = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    flip = ndl.data.RandomFlipHorizontal(p=0.5)
    for seed in range(6):
        np.random.seed(seed)
        out = flip(img)
        np.random.seed(seed)
        expected = img[:, ::-1, :] if np.random.rand() < 0.5 else img
        np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(ndl.data.RandomFlipHorizontal(p=1.0)(img)[0, 0], img[0, -1])


def test_random_crop_shifts_with_zero_padding():
    img = np.arange(1, 31, dtype=np.float32).reshape(5, 6, 1)
    crop = ndl.data.RandomCrop(padding=2)
    for seed in range(8):
        np.random.seed(seed)
        out = crop(img)
        np.random.seed(seed)
        sx, sy = np.random.randint(-2, 3, size=2)
        expected = np.zeros_like(img)
        # out[i, j] = img[i + sx, j + sy] where that exists, else 0
        for i in range(5):
            for j in range(6):
                if 0 <= i + sx < 5 and 0 <= j + sy < 6:
                    expected[i, j] = img[i + sx, j + sy]
        assert out.shape == img.shape
        np.testing.assert_array_equal(out, expected)


# ----------------------------------------------------------------------------------------------
# MNISTDataset


def test_mnist_dataset_reads_generated_idx(tiny_mnist):
    img, lab, images, labels = tiny_mnist
    ds = ndl.data.MNISTDataset(img, lab)
    assert len(ds) == 7
    x, y = ds[2]
    assert x.shape == (4, 5, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x, images[2][:, :, None] / 255.0, rtol=1e-6)
    assert y == 4
    xb, yb = ds[np.array([0, 5])]
    assert xb.shape == (2, 4, 5, 1)
    np.testing.assert_array_equal(yb, [3, 9])
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0


def test_mnist_dataset_reads_uncompressed_files(tmp_path):
    img = write_idx(tmp_path / "img", np.full((2, 3, 3), 255), gz=False)
    lab = write_idx(tmp_path / "lab", [0, 7], gz=False)
    x, y = ndl.data.MNISTDataset(img, lab)[1]
    np.testing.assert_array_equal(x, np.ones((3, 3, 1), np.float32))
    assert y == 7


def test_mnist_dataset_transforms_see_hwc_images(tiny_mnist):
    img, lab, images, _ = tiny_mnist
    seen = []

    def record(image):
        seen.append(image.shape)
        return image[::-1]  # flip vertically

    ds = ndl.data.MNISTDataset(img, lab, transforms=[record])
    x, _ = ds[1]
    xb, _ = ds[np.array([1, 2])]
    assert seen == [(4, 5, 1)] * 3
    np.testing.assert_allclose(x, images[1][::-1][:, :, None] / 255.0, rtol=1e-6)
    assert xb.shape == (2, 4, 5, 1)


def test_mnist_dataset_through_dataloader(tiny_mnist):
    img, lab, images, labels = tiny_mnist
    loader = ndl.data.DataLoader(ndl.data.MNISTDataset(img, lab), batch_size=3)
    X, y = next(iter(loader))
    assert X.shape == (3, 4, 5, 1)
    np.testing.assert_allclose(X.numpy(), images[:3][..., None] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y.numpy(), labels[:3])


@pytest.mark.parametrize("which", ["images", "labels"])
def test_mnist_wrong_magic_number(tmp_path, tiny_mnist, which):
    img, lab, images, labels = tiny_mnist
    if which == "images":
        img = write_idx(tmp_path / "bad.gz", images, magic=2049)
        expected = "2051"
    else:
        lab = write_idx(tmp_path / "bad.gz", labels, magic=2051)
        expected = "2049"
    with pytest.raises(DataFormatError, match=f"bad.gz: wrong idx magic.*expected {expected}"):
        ndl.data.MNISTDataset(img, lab)


def test_mnist_swapped_files_are_rejected(tiny_mnist):
    img, lab, _, _ = tiny_mnist
    with pytest.raises(DataFormatError, match="magic"):
        ndl.data.MNISTDataset(lab, img)


def test_mnist_truncated_data(tmp_path, tiny_mnist):
    _, lab, images, _ = tiny_mnist
    img = write_idx(tmp_path / "short.gz", images, cut=5)
    with pytest.raises(DataFormatError, match=r"short.gz: file truncated.*\(7, 4, 5\).*135 bytes"):
        ndl.data.MNISTDataset(img, lab)


def test_mnist_truncated_gzip_stream(tmp_path, tiny_mnist):
    img, lab, _, _ = tiny_mnist
    raw = open(img, "rb").read()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFormatError, match="cut.gz: corrupted or truncated gzip"):
        ndl.data.MNISTDataset(str(cut), lab)


def test_mnist_header_too_short(tmp_path, tiny_mnist):
    _, lab, _, _ = tiny_mnist
    stub = tmp_path / "stub"
    stub.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataFormatError, match="too short"):
        ndl.data.MNISTDataset(str(stub), lab)


def test_mnist_trailing_data_and_count_mismatch(tmp_path, tiny_mnist):
    img, _, images, labels = tiny_mnist
    path = tmp_path / "long"
    write_idx(path, labels, gz=False)
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataFormatError, match="trailing data"):
        ndl.data.MNISTDataset(img, str(path))
    fewer = write_idx(tmp_path / "fewer.gz", labels[:5])
    with pytest.raises(DataFormatError, match="7 images but .* 5 labels"):
        ndl.data.MNISTDataset(img, fewer)


def test_mnist_label_out_of_range(tmp_path, tiny_mnist):
    img, _, _, _ = tiny_mnist
    lab = write_idx(tmp_path / "lab.gz", [0, 1, 2, 3, 4, 5, 10])
    with pytest.raises(DataFormatError, match="label 10"):
        ndl.data.MNISTDataset(img, lab)


def test_mnist_missing_file(tmp_path, tiny_mnist):
    _, lab, _, _ = tiny_mnist
    with pytest.raises(FileNotFoundError):
        ndl.data.MNISTDataset(str(tmp_path / "nope.gz"), lab)
