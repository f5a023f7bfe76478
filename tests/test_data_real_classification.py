"""Tests of the MNIST, Fashion-MNIST and CIFAR-10 loaders on tiny files written in each dataset's own format."""

import os
import pickle
import shutil
import socket
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.datasets.cifar
import torchvision.datasets.mnist
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST

from cvcourse.data import DatasetNotFoundError, Glyphs
from cvcourse.data.real_classification import (
    CIFAR10_CLASSES,
    cifar10,
    fashion_mnist,
    mnist,
)

SPLIT_SIZES = {True: 5, False: 3}  # tiny train and test splits
CIFAR_BATCH = 2  # images in each of data_batch_1..5; test_batch holds SPLIT_SIZES[False]
MNIST_NAMES = tuple(str(digit) for digit in range(10))  # as Glyphs names them
FASHION_MNIST_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                       "Ankle boot")  # Xiao, Rasul & Vollgraf 2017, table 1
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IDX_LOADERS = {"MNIST": (mnist, MNIST_NAMES), "FashionMNIST": (fashion_mnist, FASHION_MNIST_NAMES)}


def plain(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.as_subclass(torch.Tensor)


def write_idx(path, array):
    """The idx format of LeCun's MNIST page: 0, 0, type 0x08 (ubyte), ndim; the sizes as big-endian int32; data."""
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
                     + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_idx_dataset(root, folder):
    """``root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``, uncompressed, as torchvision leaves them."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(len(folder))
    splits = {}
    for train, prefix in ((True, "train"), (False, "t10k")):
        images = rng.integers(0, 256, (SPLIT_SIZES[train], 28, 28), dtype=np.uint8)
        images[0] = 255  # a white image and a black one pin both ends of [0, 1]
        images[1] = 0
        labels = rng.integers(0, 10, SPLIT_SIZES[train], dtype=np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        splits[train] = images[:, None], labels
    return splits


class Python2Pickler(pickle._Pickler):
    """Pickles ``str`` and ``bytes`` as Python 2 strings, as the CIFAR-10 batches were written (by Python 2's
    cPickle, numpy's pixel buffer included): read with ``encoding="bytes"`` the keys are ``b"data"``,
    ``b"labels"``; with torchvision's ``encoding="latin1"`` they are str."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_python2_string(self, value):
        data = value.encode("latin1") if isinstance(value, str) else value
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(value)

    dispatch[str] = dispatch[bytes] = save_python2_string


def write_python2_pickle(path, value):
    with open(path, "wb") as file:
        Python2Pickler(file, protocol=2).dump(value)


def write_cifar10(root):
    """``root/cifar-10-batches-py/``: data_batch_1..5, test_batch and batches.meta in the dict layout of the
    CIFAR-10 page: ``data`` uint8 (N, 3072), each row 1024 red, then 1024 green, then 1024 blue values of a
    32x32 image in row-major order; ``labels`` a list of N ints in 0..9."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(10)
    batches = [(f"data_batch_{n}", f"training batch {n} of 5", CIFAR_BATCH) for n in range(1, 6)]
    splits = {True: ([], []), False: ([], [])}
    for name, batch_label, size in batches + [("test_batch", "testing batch 1 of 1", SPLIT_SIZES[False])]:
        data = rng.integers(0, 256, (size, 3072), dtype=np.uint8)
        labels = [int(label) for label in rng.integers(0, 10, size)]
        write_python2_pickle(folder / name, {"batch_label": batch_label, "labels": labels, "data": data,
                                             "filenames": [f"image_{name}_{i}.png" for i in range(size)]})
        images, targets = splits[name.startswith("data")]
        images.append(data.reshape(size, 3, 32, 32))
        targets.extend(labels)
    write_python2_pickle(folder / "batches.meta",
                         {"num_cases_per_batch": 10000, "label_names": list(CIFAR10_NAMES), "num_vis": 3072})
    return {train: (np.concatenate(images), labels) for train, (images, labels) in splits.items()}


def check_items(dataset, images, labels):
    """Every item is a float Image equal to its bytes / 255, with its int label."""
    assert len(dataset) == len(images) == len(labels)
    for (image, label), pixels, expected in zip(dataset, images, labels):
        assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32 and image.shape == pixels.shape
        assert 0 <= image.min() and image.max() <= 1
        torch.testing.assert_close(plain(image), torch.from_numpy(pixels).float() / 255, rtol=0, atol=1e-7)
        assert type(label) is int and label == expected


@pytest.mark.parametrize("folder", IDX_LOADERS)
def test_idx_items_are_the_bytes_written(tmp_path, folder):
    splits = write_idx_dataset(tmp_path, folder)
    for train in (True, False):
        loader, class_names = IDX_LOADERS[folder]
        dataset = loader(train, root=tmp_path)
        check_items(dataset, *splits[train])
        assert dataset.class_names == class_names and dataset.num_classes == 10
        assert dataset[0][0].min() == 1 and dataset[1][0].max() == 0


def test_class_names_follow_torchvision():
    assert [name.split(" - ")[0] for name in MNIST.classes] == list(MNIST_NAMES)  # torchvision: "0 - zero", ...
    assert list(FASHION_MNIST_NAMES) == FashionMNIST.classes
    assert Glyphs.class_names == MNIST_NAMES, "the same training code runs on Glyphs and MNIST"


def test_cifar10_items_are_the_bytes_written(tmp_path):
    splits = write_cifar10(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "rb") as file:
        batch = pickle.load(file, encoding="bytes")  # as the CIFAR-10 page reads a batch
    assert {b"data", b"labels"} <= set(batch) and batch[b"data"].dtype == np.uint8
    assert batch[b"data"].shape == (CIFAR_BATCH, 3072)
    train, test = cifar10(root=tmp_path), cifar10(False, root=tmp_path)
    assert len(train) == 5 * CIFAR_BATCH and len(test) == SPLIT_SIZES[False]
    check_items(train, *splits[True])  # data_batch_1..5, in that order
    check_items(test, *splits[False])
    red, green, blue = (torch.from_numpy(batch[b"data"][0, k * 1024:(k + 1) * 1024].reshape(32, 32)) for k in range(3))
    assert torch.equal((plain(train[2 * CIFAR_BATCH][0]) * 255).round().byte(), torch.stack([red, green, blue]))
    assert train.class_names == CIFAR10_CLASSES == CIFAR10_NAMES and train.num_classes == 10
    assert train.classes == list(CIFAR10_NAMES), "torchvision read batches.meta"


LOADERS = [("MNIST", mnist, 1), ("FashionMNIST", fashion_mnist, 1), ("cifar-10-batches-py", cifar10, 3)]


def write(root, folder):
    return write_cifar10(root) if folder == "cifar-10-batches-py" else write_idx_dataset(root, folder)


@pytest.mark.parametrize(("folder", "loader", "channels"), LOADERS)
def test_resize_antialiased_in_unit_range_and_batches_like_glyphs(tmp_path, folder, loader, channels):
    images, labels = write(tmp_path, folder)[True]
    for image_size in (12, 40):
        dataset = loader(root=tmp_path, image_size=image_size)
        assert dataset.num_classes == 10 and len(dataset.class_names) == 10
        pixels = torch.from_numpy(images).float()
        reference = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", antialias=True) / 255
        resized = torch.stack([plain(dataset[i][0]) for i in range(len(dataset))])
        assert resized.shape == (len(images), channels, image_size, image_size) and resized.dtype == torch.float32
        assert 0 <= resized.min() and resized.max() <= 1
        torch.testing.assert_close(resized, reference, rtol=0, atol=1 / 255 + 1e-6)  # rounded to 8 bits
    clone = pickle.loads(pickle.dumps(dataset))  # as DataLoader workers receive it
    assert torch.equal(clone[0][0], dataset[0][0]) and clone.class_names == dataset.class_names
    (batch, targets), (glyphs, glyph_targets) = (next(iter(DataLoader(data, batch_size=3)))
                                                 for data in (dataset, Glyphs(3, image_size=40)))
    assert batch.shape == (3, channels, 40, 40) and glyphs.shape == (3, 1, 40, 40)
    assert targets.tolist() == list(labels[:3]) and targets.dtype == glyph_targets.dtype == torch.int64


@pytest.mark.parametrize(
    ("folder", "loader", "name", "expected"),
    [
        ("MNIST/raw", mnist, "MNIST",
         "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"),
        ("FashionMNIST/raw", fashion_mnist, "Fashion-MNIST",
         "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"),
        ("cifar-10-batches-py", cifar10, "CIFAR-10",
         "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch, batches.meta"),
    ],
)
def test_missing_dataset_says_download_or_where(tmp_path, monkeypatch, folder, loader, name, expected):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=rf"Dataset '{name}' not found: the folder .* does not exist\. "
                       rf"How to get it: call {loader.__name__}\(download=True\) \(needs internet") as error:
        loader()
    assert f"Where to put it: {tmp_path.joinpath(*folder.split('/'))} so that it contains {expected}." in str(
        error.value)


@pytest.mark.parametrize(("folder", "loader", "file"), [("MNIST", mnist, "MNIST/raw/t10k-labels-idx1-ubyte"),
                                                        ("cifar-10-batches-py", cifar10,
                                                         "cifar-10-batches-py/batches.meta")])
def test_a_missing_file_is_named(tmp_path, folder, loader, file):
    write(tmp_path, folder)
    (tmp_path / file).unlink()
    with pytest.raises(DatasetNotFoundError, match=rf"exists but lacks {file.rsplit('/', 1)[1]}\. How to get it: .*"
                       r"(ossci-datasets\.s3\.amazonaws\.com/mnist/ and gunzip|cifar\.html and untar)"):
        loader(root=tmp_path)


@pytest.fixture
def offline(monkeypatch):
    """No socket can connect and torchvision's download helper raises: any network use fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("download=False must not touch the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", refuse)
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", refuse)


@pytest.mark.parametrize(("folder", "loader", "channels"), LOADERS)
def test_download_false_never_touches_the_network(tmp_path, offline, folder, loader, channels):
    with pytest.raises(DatasetNotFoundError):
        loader(root=tmp_path)
    write(tmp_path, folder)
    assert loader(root=tmp_path)[0][0].shape[0] == channels
    with pytest.raises(AssertionError, match="must not touch the network"):
        socket.create_connection(("localhost", 9))  # the guard itself works


def test_download_true_fetches_through_torchvision_and_only_once(tmp_path, monkeypatch):
    """torchvision's own download runs, with the published md5 sums: the idx archives for MNIST, the archive
    of the python batches for CIFAR-10. The fake download unpacks tiny files where the real one would."""
    source = tmp_path / "source"
    write_idx_dataset(source, "MNIST")
    write_cifar10(source)
    fetched = []

    def fake_mnist_download(url, download_root, filename, md5):
        fetched.append((url, md5))
        shutil.copy(source / "MNIST" / "raw" / filename.removesuffix(".gz"), download_root)

    def fake_cifar_download(url, download_root, filename, md5):
        fetched.append((url, md5))
        shutil.copytree(source / "cifar-10-batches-py", os.path.join(download_root, "cifar-10-batches-py"))

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", fake_mnist_download)
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", fake_cifar_download)
    root = tmp_path / "data"
    assert len(mnist(root=root, download=True)) == SPLIT_SIZES[True]
    assert fetched == [(MNIST.mirrors[0] + name, md5) for name, md5 in MNIST.resources]
    fetched.clear()
    assert len(cifar10(False, root=root, download=True)) == SPLIT_SIZES[False]
    assert fetched == [(CIFAR10.url, CIFAR10.tgz_md5)]
    fetched.clear()
    mnist(False, root=root, download=True)
    cifar10(root=root, download=True)
    assert fetched == [], "files already there are not fetched again"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"train": "test"}, TypeError, r"train must be True \(the training split\) or False \(the test split\), "
                                       r"got 'test'"),
        ({"image_size": 4}, ValueError, r"image_size must be None \(the dataset's own size\) or an integer >= 8"),
        ({"image_size": (32, 32)}, ValueError, r"integer >= 8 \(the side of the square output\), got \(32, 32\)"),
        ({"image_size": True}, ValueError, r"got True"),
    ],
)
@pytest.mark.parametrize("loader", [mnist, fashion_mnist, cifar10])
def test_bad_arguments(tmp_path, loader, kwargs, error, message):
    with pytest.raises(error, match=message):
        loader(root=tmp_path, **kwargs)
