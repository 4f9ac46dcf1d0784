"""MNIST and CIFAR-10 loaders: local files first, then a download into the user cache.

Layout under each data directory (see `data_dirs`):
    mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz   standard IDX, gzip
    cifar10/cifar10_test.npz, cifar10/cifar10_train.npz      X uint8 (N,32,32,3) RGB, y int64
    cifar10/cifar10_train_10k.npz                            a 10k-image train subset (fallback)

Environment: QNNFLOW_DATA (a data dir searched first), QNNFLOW_OFFLINE=1 (never
download), QNNFLOW_MNIST_URL (base URL of the four MNIST files),
QNNFLOW_CIFAR10_URL (URL of cifar-10-python.tar.gz).
"""

import gzip
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from qnnflow.base.errors import QnnflowError

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
DOWNLOAD_TIMEOUT_S = 10

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CIFAR10_FILES = {"test": ("cifar10_test.npz",), "train": ("cifar10_train.npz", "cifar10_train_10k.npz")}
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049


# ---------------------------------------------------------------- where to look


def _shared_data_dir():
    """The project's shared data dir beside the repository: <repo>/../shared/data."""
    repo = Path(__file__).resolve().parent.parent
    return repo.parent / "shared" / "data"


def _cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qnnflow" / "data"


def data_dirs():
    """The directories searched, in order: $QNNFLOW_DATA, the shared data dir, the user cache."""
    dirs = []
    if os.environ.get("QNNFLOW_DATA"):
        dirs.append(Path(os.environ["QNNFLOW_DATA"]).expanduser())
    shared = _shared_data_dir()
    if shared is not None:
        dirs.append(shared)
    dirs.append(_cache_dir())
    return dirs


def _one_line(e):
    return " ".join(str(e).split()) or type(e).__name__


def _offline():
    return os.environ.get("QNNFLOW_OFFLINE", "").strip() == "1"


def _check_split(dataset, split):
    if split not in ("train", "test"):
        raise QnnflowError(f"unknown {dataset} split '{split}': use 'train' or 'test'")


def _not_found(dataset, split, wanted, why):
    """The one error for missing data: where we looked and how to provide it."""
    looked = ", ".join(str(d / p) for d in data_dirs() for p in wanted)
    need = " or ".join(wanted) if dataset == "cifar10" else " and ".join(wanted)
    return QnnflowError(
        f"{dataset} {split} data not found (looked in: {looked}); {why}; set QNNFLOW_DATA to a "
        f"directory containing {need}, or allow network access (unset QNNFLOW_OFFLINE)")


# ---------------------------------------------------------------- download


def _download(url, dest):
    """Fetch `url` to `dest` atomically (temp file + os.replace); short timeout."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _try_download(dataset, split, wanted, url, fetch):
    """Run `fetch()` unless offline; turn any failure into the one not-found error."""
    if _offline():
        raise _not_found(dataset, split, wanted, "downloading is off (QNNFLOW_OFFLINE=1)")
    try:
        fetch()
    except QnnflowError:
        raise
    except Exception as e:  # URLError, timeouts, HTTP errors, disk errors
        reason = _one_line(getattr(e, "reason", e))
        raise _not_found(dataset, split, wanted, f"the download from {url} failed ({reason})") from None


# ---------------------------------------------------------------- MNIST


def _read_idx(path, magic, ndim):
    """Parse one gzipped IDX file with numpy, checking its magic number and size."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise QnnflowError(f"{path} is not a readable gzip file ({_one_line(e)}): delete it and provide a fresh copy") from None
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise QnnflowError(f"{path} is not an IDX file (bad magic number, expected {magic}): delete it and provide a fresh copy")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) - header != int(np.prod(dims)):
        raise QnnflowError(
            f"{path} is truncated or corrupt ({len(raw) - header} data bytes for shape {tuple(dims)}): "
            "delete it and provide a fresh copy")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _load_mnist_from(directory, split):
    images_file, labels_file = (directory / "mnist" / f for f in MNIST_FILES[split])
    images = _read_idx(images_file, IDX_IMAGES_MAGIC, 3)
    labels = _read_idx(labels_file, IDX_LABELS_MAGIC, 1).astype(np.int64)
    if len(images) != len(labels):
        raise QnnflowError(
            f"{images_file} has {len(images)} images but {labels_file} has {len(labels)} labels: "
            "provide matching files")
    return images, labels


def load_mnist(split="test"):
    """MNIST `split` as (images uint8 (N,28,28), labels int64 (N,))."""
    _check_split("mnist", split)
    wanted = [f"mnist/{f}" for f in MNIST_FILES[split]]
    for d in data_dirs():
        if all((d / p).is_file() for p in wanted):
            return _load_mnist_from(d, split)
    cache = _cache_dir()
    base = os.environ.get("QNNFLOW_MNIST_URL") or MNIST_URL

    def fetch():
        for name in MNIST_FILES[split]:
            _download(base.rstrip("/") + "/" + name, cache / "mnist" / name)

    _try_download("mnist", split, wanted, base, fetch)
    return _load_mnist_from(cache, split)


# ---------------------------------------------------------------- CIFAR-10


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "X" not in npz or "y" not in npz:
                raise QnnflowError(f"{path} lacks arrays 'X' and 'y' (has {', '.join(npz.files)}): provide X uint8 (N,32,32,3) and y labels")
            images, labels = npz["X"], npz["y"]
    except QnnflowError:
        raise
    except Exception as e:
        raise QnnflowError(f"{path} is not a readable .npz file ({_one_line(e)}): delete it and provide a fresh copy") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(labels) != len(images):
        raise QnnflowError(
            f"{path} holds X {images.dtype} {images.shape} and y {labels.shape}: expected X uint8 (N,32,32,3) and y (N,)")
    return images, labels.astype(np.int64)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only dicts, lists, bytes and numpy arrays: the CIFAR-10 batches need no more."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _cifar10_batch(tar, member):
    f = tar.extractfile(member)
    if f is None:
        raise ValueError(f"{member.name} is not a file")
    batch = _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # rows are R, G, B planes: to NHWC
    return np.ascontiguousarray(images), np.asarray(batch[b"labels"], dtype=np.int64)


def _convert_cifar10_tarball(tarball, out_dir):
    """Unpack the python-pickle CIFAR-10 tarball into cifar10_{train,test}.npz (atomically)."""
    parts = {"train": [], "test": []}
    with tarfile.open(tarball, "r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        for split, batch_names in names.items():
            for n in batch_names:
                if n not in members:
                    raise ValueError(f"{tarball} has no {n}")
                parts[split].append(_cifar10_batch(tar, members[n]))
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, batches in parts.items():
        dest = out_dir / CIFAR10_FILES[split][0]
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=dest.name + ".", suffix=".part.npz")
        os.close(fd)
        try:
            np.savez(tmp, X=np.concatenate([b[0] for b in batches]), y=np.concatenate([b[1] for b in batches]))
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def load_cifar10(split="test"):
    """CIFAR-10 `split` as (images uint8 (N,32,32,3) RGB, labels int64 (N,)).

    For "train" the full cifar10_train.npz is preferred, else the 10k subset,
    in each data dir in turn.
    """
    _check_split("cifar10", split)
    wanted = [f"cifar10/{f}" for f in CIFAR10_FILES[split]]
    for d in data_dirs():
        for p in wanted:
            if (d / p).is_file():
                return _load_npz(d / p)
    cache = _cache_dir()
    url = os.environ.get("QNNFLOW_CIFAR10_URL") or CIFAR10_URL

    def fetch():
        tarball = cache / "cifar10" / "cifar-10-python.tar.gz"
        _download(url, tarball)
        try:
            _convert_cifar10_tarball(tarball, cache / "cifar10")
        finally:
            tarball.unlink(missing_ok=True)

    _try_download("cifar10", split, wanted, url, fetch)
    return _load_npz(cache / wanted[0])


# ---------------------------------------------------------------- common


def load_radioml2018(split="test"):
    """RadioML 2018.01A (vgg10_1d's data set) is not available: DeepSig distributes it only after
    registration, so qnnflow can neither ship nor download it, and has no loader for it yet."""
    _check_split("radioml2018", split)
    raise QnnflowError(f"radioml2018 {split} data is not available: qnnflow has no copy of DeepSig's RadioML "
                       f"2018.01A and no loader for it, so vgg10_1d models build with random weights but cannot "
                       f"be evaluated; use `qnnflow build` (cppsim checks it bit-exact) instead of eval")


LOADERS = {"mnist": load_mnist, "cifar10": load_cifar10, "radioml2018": load_radioml2018}


def load_dataset(name, split="test"):
    """(images uint8, labels int64) of data set `name` ("mnist" or "cifar10"; "radioml2018" fails, naming it)."""
    if name not in LOADERS:
        raise QnnflowError(f"unknown data set '{name}': use one of {', '.join(LOADERS)}")
    return LOADERS[name](split)


def spread_indices(total, limit=None):
    """Indices of `limit` images spread evenly over a set of `total` (all of them when None).

    Not the first `limit`: the CIFAR-10 copy is sorted by class, so its first 1,000 test
    images are all airplanes.
    """
    if limit is None or limit >= total:
        return np.arange(total)
    if limit <= 0:
        raise QnnflowError(f"limit {limit}: must be a positive number of images")
    return np.linspace(0, total - 1, limit).astype(np.int64)


def preprocess(images, dataset):
    """uint8 images as loaded -> float32 NCHW in [0, 1], the zoo models' input.

    mnist: (N,28,28) -> (N,1,28,28); cifar10: (N,32,32,3) -> (N,3,32,32).
    A single image (without the batch axis) is accepted too.
    """
    images = np.asarray(images)
    expected = {"mnist": (28, 28), "cifar10": (32, 32, 3)}
    if dataset not in expected:
        raise QnnflowError(f"unknown data set '{dataset}': use one of {', '.join(expected)}")
    shape = expected[dataset]
    if images.dtype != np.uint8:
        raise QnnflowError(f"{dataset} images are {images.dtype}: pass the uint8 images as loaded (preprocess divides by 255)")
    if images.shape == shape:
        images = images[None]
    if images.ndim != len(shape) + 1 or images.shape[1:] != shape:
        raise QnnflowError(
            f"{dataset} images have shape {images.shape}: expected (N, {', '.join(map(str, shape))}) uint8")
    x = images.astype(np.float32) / np.float32(255.0)
    x = x[:, None] if dataset == "mnist" else x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)
