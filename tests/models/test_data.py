"""Data loaders: the shared data, the QNNFLOW_DATA override, downloads, and the missing-data error."""

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from qnnflow import models
from qnnflow.base.errors import QnnflowError
from qnnflow.models import data
from qnnflow.models.data import data_dirs, load_cifar10, load_dataset, load_mnist, preprocess

SHARED = data._shared_data_dir()


def _write_idx(path, array, magic):
    path.parent.mkdir(parents=True, exist_ok=True)
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _write_mnist(root, split, n, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    prefix = "t10k" if split == "test" else "train"
    _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
    _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
    return images, labels


def _cifar_pickle(images, labels):
    """A batch as the CIFAR-10 python tarball stores it: rows of R, G, B planes."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    return pickle.dumps({b"batch_label": b"x", b"labels": [int(v) for v in labels], b"data": rows})


def _write_cifar_tarball(path, per_batch=2, seed=0, test_payload=None):
    rng = np.random.default_rng(seed)
    sets = {}
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            images = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
            labels = rng.integers(0, 10, per_batch)
            sets[name] = (images, labels)
            payload = _cifar_pickle(images, labels)
            if name == "test_batch" and test_payload is not None:
                payload = test_payload
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return sets


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No shared dir, an empty QNNFLOW_DATA, a private cache; downloads allowed."""
    monkeypatch.setattr(data, "_shared_data_dir", lambda: None)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("QNNFLOW_DATA", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("QNNFLOW_OFFLINE", "QNNFLOW_MNIST_URL", "QNNFLOW_CIFAR10_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


# ---------------------------------------------------------------- where to look


def test_data_dirs_order(tmp_path, monkeypatch):
    monkeypatch.setenv("QNNFLOW_DATA", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dirs() == [tmp_path / "mine", SHARED, tmp_path / "xdg" / "qnnflow" / "data"]
    repo = Path(models.__file__).resolve().parent.parent  # the dir holding models/
    assert SHARED == repo.parent / "shared" / "data"
    monkeypatch.delenv("QNNFLOW_DATA")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert data_dirs() == [SHARED, tmp_path / "h" / ".cache" / "qnnflow" / "data"]


# ---------------------------------------------------------------- shared data


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="no shared MNIST data")
def test_mnist_from_shared_dir(monkeypatch):
    monkeypatch.delenv("QNNFLOW_DATA", raising=False)
    images, labels = load_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert images.max() == 255 and images.min() == 0


@pytest.mark.skipif(not (SHARED / "cifar10" / "cifar10_test.npz").is_file(), reason="no shared CIFAR-10")
def test_cifar10_from_shared_dir(monkeypatch):
    monkeypatch.delenv("QNNFLOW_DATA", raising=False)
    images, labels = load_dataset("cifar10", "test")
    assert images.shape == (10000, 32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10


# ---------------------------------------------------------------- override and parsing


def test_qnnflow_data_override_wins(tmp_path, monkeypatch):
    images, labels = _write_mnist(tmp_path / "mnist", "test", 7)
    monkeypatch.setenv("QNNFLOW_DATA", str(tmp_path))
    got_images, got_labels = load_dataset("mnist", "test")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_labels.dtype == np.int64

    X = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    (tmp_path / "cifar10").mkdir()
    np.savez(tmp_path / "cifar10" / "cifar10_train_10k.npz", X=X, y=np.array([1, 2, 3]))
    got_X, got_y = load_cifar10("train")  # falls back to the 10k file
    np.testing.assert_array_equal(got_X, X)
    assert got_y.tolist() == [1, 2, 3]


def test_corrupt_idx_names_the_file(tmp_path, monkeypatch):
    _write_mnist(tmp_path / "mnist", "test", 4)
    monkeypatch.setenv("QNNFLOW_DATA", str(tmp_path))
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    _write_idx(labels, np.zeros(4, np.uint8), 2051)  # an images magic number on a labels file
    with pytest.raises(QnnflowError, match="bad magic number") as info:
        load_mnist("test")
    assert str(labels) in str(info.value)

    with gzip.open(labels, "wb") as f:  # right header, data cut short
        f.write((2049).to_bytes(4, "big") + (4).to_bytes(4, "big") + b"\0\0")
    with pytest.raises(QnnflowError, match="truncated") as info:
        load_mnist("test")
    assert str(labels) in str(info.value)

    labels.write_bytes(b"plain bytes")
    with pytest.raises(QnnflowError, match="gzip") as info:
        load_mnist("test")
    assert str(labels) in str(info.value)


def test_bad_names_and_splits():
    with pytest.raises(QnnflowError, match="unknown data set 'imagenet'"):
        load_dataset("imagenet", "test")
    with pytest.raises(QnnflowError, match="split 'val'"):
        load_mnist("val")


# ---------------------------------------------------------------- downloads


def test_mnist_download_end_to_end(isolated, monkeypatch):
    server = isolated / "server"
    images, labels = _write_mnist(server, "test", 5)
    monkeypatch.setenv("QNNFLOW_MNIST_URL", server.as_uri() + "/")
    got_images, got_labels = load_mnist("test")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    cached = isolated / "cache" / "qnnflow" / "data" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]

    monkeypatch.setenv("QNNFLOW_MNIST_URL", (isolated / "gone").as_uri())  # now served from the cache
    np.testing.assert_array_equal(load_mnist("test")[0], images)


def test_cifar10_download_end_to_end(isolated, monkeypatch):
    tarball = isolated / "server" / "cifar-10-python.tar.gz"
    tarball.parent.mkdir()
    sets = _write_cifar_tarball(tarball, per_batch=2)
    monkeypatch.setenv("QNNFLOW_CIFAR10_URL", tarball.as_uri())
    X, y = load_cifar10("test")
    np.testing.assert_array_equal(X, sets["test_batch"][0])  # planar rows back to NHWC
    np.testing.assert_array_equal(y, sets["test_batch"][1])
    X, y = load_cifar10("train")
    np.testing.assert_array_equal(X, np.concatenate([sets[f"data_batch_{i}"][0] for i in range(1, 6)]))
    assert X.shape == (10, 32, 32, 3) and y.dtype == np.int64
    cached = isolated / "cache" / "qnnflow" / "data" / "cifar10"
    assert sorted(p.name for p in cached.iterdir()) == ["cifar10_test.npz", "cifar10_train.npz"]


def test_cifar10_download_refuses_code_in_pickles(isolated, monkeypatch):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    tarball = isolated / "evil.tar.gz"
    _write_cifar_tarball(tarball, test_payload=pickle.dumps({b"data": Evil()}))
    monkeypatch.setenv("QNNFLOW_CIFAR10_URL", tarball.as_uri())
    with pytest.raises(QnnflowError, match="refusing to unpickle builtins.print"):
        load_cifar10("test")
    assert not list((isolated / "cache" / "qnnflow" / "data" / "cifar10").iterdir())


def test_failed_download_is_one_error_and_leaves_nothing(isolated, monkeypatch):
    monkeypatch.setenv("QNNFLOW_MNIST_URL", (isolated / "no-such-server").as_uri())
    with pytest.raises(QnnflowError, match="download from .* failed") as info:
        load_mnist("train")
    msg = str(info.value)
    assert "\n" not in msg and "QNNFLOW_DATA" in msg
    cached = isolated / "cache" / "qnnflow" / "data" / "mnist"
    assert not cached.exists() or not list(cached.iterdir())


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_missing_data_offline_lists_where_it_looked(isolated, monkeypatch, dataset):
    monkeypatch.setenv("QNNFLOW_OFFLINE", "1")
    dirs = data_dirs()
    assert len(dirs) == 2  # QNNFLOW_DATA and the cache; the shared dir is switched off
    with pytest.raises(QnnflowError) as info:
        load_dataset(dataset, "test")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{dataset} test data not found")
    assert all(str(d / dataset) in msg for d in dirs)
    assert "QNNFLOW_DATA" in msg and "QNNFLOW_OFFLINE" in msg
    assert not (isolated / "cache" / "qnnflow").exists()  # offline: nothing attempted


# ---------------------------------------------------------------- preprocess


def test_preprocess_layout_and_range():
    rng = np.random.default_rng(0)
    cifar = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    x = preprocess(cifar, "cifar10")
    assert x.shape == (4, 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_array_equal(x[2, 1, 5, 7], np.float32(cifar[2, 5, 7, 1]) / np.float32(255))
    assert x.min() >= 0 and x.max() <= 1

    mnist = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    x = preprocess(mnist, "mnist")  # a single image gets a batch axis
    assert x.shape == (1, 1, 28, 28)
    np.testing.assert_allclose(x[0, 0], mnist / 255.0, rtol=1e-6)

    with pytest.raises(QnnflowError, match="float32"):
        preprocess(x, "mnist")
    with pytest.raises(QnnflowError, match="expected"):
        preprocess(cifar, "mnist")
