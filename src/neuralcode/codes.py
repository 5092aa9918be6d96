"""Neural codes: the sign pattern of every ReLU, bit-packed, stored in zarr.

Store layout (zarr v3, one store per model and epoch)::

    e30.zarr/                   attrs: model_id, epoch, dataset, layers, splits
      train/labels              (n_train,) int64
      train/relu0               (n_train, ceil(n_bits_0 / 8)) uint8
      train/relu1 ...
      test/...

Bits are packed along the neuron axis in numpy's default (big) bit order, so
``np.unpackbits(a, axis=1, count=n_bits)`` undoes it. Writing a store needs torch
(:mod:`neuralcode.extraction`); reading one, here, does not, which keeps the
metric jobs' start-up short.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

STORE_FORMAT = "neuralcode-codes/1"


@dataclass
class CodeSet:
    """Codes of one split, layers concatenated."""

    packed: np.ndarray  # (n, ceil(n_bits / 8)) uint8, bit-packed
    n_bits: int
    labels: np.ndarray  # (n,) int64


def _refresh_hint(store_path) -> str:
    """How to extract a store again: its group's directory is the rule output."""
    group = Path(store_path).parent.parent
    return (
        f"extract the codes of its training group again with "
        f"`snakemake --forcerun {group}` (or delete {group} and rerun the workflow)"
    )


def open_store(store_path):
    """Open a code store read-only and check that it is complete."""
    store_path = Path(store_path)
    try:
        root = zarr.open_group(store_path, mode="r")
    except Exception as exc:
        raise ValueError(
            f"{store_path} is not a readable zarr code store ({exc}); "
            + _refresh_hint(store_path)
        ) from exc
    if root.attrs.get("format") != STORE_FORMAT:
        raise ValueError(
            f"{store_path} has no {STORE_FORMAT} attributes (an unfinished or "
            "foreign store); " + _refresh_hint(store_path)
        )
    return root


def _read_array(store_path, group, name: str, digest: str | None) -> np.ndarray:
    """Read one array whole and check it against its recorded sha256."""
    fix = _refresh_hint(store_path)
    try:
        data = group[name][:]
    except Exception as exc:  # zarr raises several types for damaged chunks
        raise ValueError(
            f"code store {store_path} is damaged: reading {group.path}/{name} "
            f"failed ({type(exc).__name__}: {exc}); {fix}"
        ) from exc
    if digest is not None:
        got = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()
        if got != digest:
            raise ValueError(
                f"code store {store_path} is damaged: {group.path}/{name} does not "
                f"match the sha256 recorded when it was written (a chunk was "
                f"changed or removed); {fix}"
            )
    return data


def read_codes(store_path, split: str, layers=None) -> CodeSet:
    """Read the codes of ``split``, concatenating the chosen layers.

    Every array is checked against the sha256 recorded at extraction.

    Parameters
    ----------
    store_path : path-like
        Store written by :func:`neuralcode.extraction.extract_codes`.
    split : str
        Group name, e.g. ``"train"``.
    layers : list of int, optional
        Layer indices (forward order) to keep; all by default.
    """
    root = open_store(store_path)
    meta = root.attrs["layers"]
    if split not in root:
        raise KeyError(f"{store_path} has no split {split!r}; it has {list(root)}")
    digests = root.attrs.get("sha256", {}).get(split, {})
    chosen = range(len(meta)) if layers is None else layers
    group = root[split]
    parts = [
        (
            _read_array(
                store_path, group, meta[i]["array"], digests.get(meta[i]["array"])
            ),
            meta[i]["n_bits"],
        )
        for i in chosen
    ]
    if all(b % 8 == 0 for _, b in parts):
        packed = np.concatenate([p for p, _ in parts], axis=1)
    else:
        # Layer widths that are not multiples of 8 leave padding bits in every
        # layer's last byte; repack so bits stay contiguous.
        bits = [np.unpackbits(p, axis=1, count=b) for p, b in parts]
        packed = np.packbits(np.concatenate(bits, axis=1), axis=1)
    n_bits = sum(b for _, b in parts)
    labels = _read_array(store_path, group, "labels", digests.get("labels"))
    return CodeSet(packed, n_bits, labels)


def verify_store(store_path) -> list[str]:
    """Problems of a code store: unreadable, unfinished, or an array that no
    longer matches the sha256 recorded when it was written. Empty if sound."""
    try:
        root = open_store(store_path)
    except ValueError as err:
        return [str(err)]
    problems = []
    for split, digests in root.attrs.get("sha256", {}).items():
        if split not in root:
            problems.append(
                f"code store {store_path} lost its split {split!r}; "
                + _refresh_hint(store_path)
            )
            continue
        for name, digest in digests.items():
            try:
                _read_array(store_path, root[split], name, digest)
            except ValueError as err:
                problems.append(str(err))
    return problems
