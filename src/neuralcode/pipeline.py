"""Glue between the workflow's rules and the package: paths and plain values in,
files out. The scripts under ``scripts/`` call one function each; a notebook can
call the same functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path

import pandas as pd

from .data import load_dataset

# Each rule's job is a fresh process: the functions import torch, scikit-learn
# and faiss only where they need them, so a metrics job does not pay for torch.

logger = logging.getLogger(__name__)

# Columns that identify a row of a metric table; the rest is `value`.
ID_COLUMNS = [
    "experiment",
    "model_id",
    "dataset",
    "seed",
    "width",
    "depth",
    "epoch",
    "n_bits",
    "split",
    "metric",
]


def write_csv(df: pd.DataFrame, path) -> None:
    """Write a table atomically so a killed job leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def run_download(name, raw_dir, mirrors, manifest) -> None:
    """Fetch (or verify files placed by hand) and record them in a manifest.

    Parameters
    ----------
    name : str
        ``mnist``, ``fashion_mnist`` or ``cifar10``.
    raw_dir : path-like
        Directory of the raw files (torchvision's layout under it).
    mirrors : list of str
        Base URLs tried in order; empty means torchvision's own.
    manifest : path-like
        JSON written last, listing the files and their md5s.
    """
    from .data import download_raw, expected_files

    where = download_raw(name, raw_dir, mirrors=list(mirrors) or None)
    record = {
        "dataset": name,
        "raw_dir": str(raw_dir),
        "files": [{"name": f, "md5": md5} for f, md5 in expected_files(name)],
        "location": str(where),
    }
    path = Path(manifest)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, path)


def run_training_group(dataset_path, group, out_dir, threads=1, require_gpu=False):
    """Train the models of one group into ``out_dir/<model_id>/``.

    Work happens in ``<experiment dir>/.work/<group>/``, outside the declared
    output: Snakemake deletes the outputs of a killed job before rerunning it,
    but the resume state there survives, so the rerun continues from the last
    completed epoch. A fingerprint of the group's settings and data guards
    against resuming a run of other settings.

    Parameters
    ----------
    dataset_path : path-like
        Prepared ``.npz`` dataset.
    group : dict
        ``{"models": [...], "training": {...}, "save_epochs": [...]}`` as built
        by the workflow from the config.
    out_dir : path-like
        Group directory; each model gets ``e<epoch>.pt`` files and
        ``history.csv``.
    threads : int, default=1
        Torch intra-op threads.
    require_gpu : bool, default=False
        Fail instead of training on the CPU when no GPU is visible.
    """
    import torch

    from .models import MLPConfig
    from .training import ModelJob, TrainConfig, pick_device, train_group

    torch.set_num_threads(threads)
    device = pick_device(require_gpu)
    dataset = load_dataset(dataset_path)
    input_dim = math.prod(dataset.input_shape)
    out_dir = Path(out_dir)
    work = out_dir.parent / ".work" / out_dir.name
    fingerprint = hashlib.sha256(
        json.dumps([group, dataset.attrs.get("sha256")], sort_keys=True).encode()
    ).hexdigest()
    stamp = work / "fingerprint"
    if work.exists() and (not stamp.is_file() or stamp.read_text() != fingerprint):
        logger.info("discarding %s: it belongs to other settings", work)
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint)

    jobs = []
    for m in group["models"]:
        model_dir = work / m["model_id"]
        jobs.append(
            ModelJob(
                model_id=m["model_id"],
                config=MLPConfig(
                    input_dim=input_dim, n_classes=dataset.n_classes, **m["model"]
                ),
                seed=m["seed"],
                checkpoints={e: model_dir / f"e{e}.pt" for e in group["save_epochs"]},
                history=model_dir / "history.csv",
            )
        )
    cfg = TrainConfig(**group["training"], save_epochs=tuple(group["save_epochs"]))
    extra = {"dataset": dataset.name, "dataset_attrs": dataset.attrs}
    train_group(dataset, jobs, cfg, device=device, extra=extra, state_dir=work)

    # Copy, not move: a kill during the copy leaves the work dir whole.
    out_dir.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        shutil.copytree(work / job.model_id, out_dir / job.model_id, dirs_exist_ok=True)
    shutil.rmtree(work)


def run_extraction(
    checkpoint,
    dataset_path,
    store_path,
    batch_size=1000,
    threads=1,
    model_id=None,
    epoch=None,
):
    """Codes of a checkpoint on its dataset's train and test splits.

    ``model_id`` and ``epoch``, when given, must match the checkpoint's own,
    so a swapped or hand-copied file cannot pass for another model.
    """
    import torch

    from .extraction import extract_codes

    torch.set_num_threads(threads)
    dataset = load_dataset(dataset_path)
    splits = {
        "train": (dataset.x_train, dataset.y_train),
        "test": (dataset.x_test, dataset.y_test),
    }
    extract_codes(
        checkpoint,
        splits,
        store_path,
        batch_size=batch_size,
        attrs={"dataset": dataset.name},
        expect={
            k: v for k, v in (("model_id", model_id), ("epoch", epoch)) if v is not None
        },
    )


def run_metrics(store_path, settings, experiment, out_csv):
    """Encoding metrics of one code store, one tidy row per (split, metric).

    Parameters
    ----------
    store_path : path-like
        Code store of one model at one epoch.
    settings : dict
        The config's ``metrics`` section.
    experiment : str
        Experiment name written in every row.
    out_csv : path-like
        Destination table.
    """
    from .codes import open_store, read_codes
    from .metrics import code_metrics

    attrs = dict(open_store(store_path).attrs)
    train = read_codes(store_path, "train")
    test = read_codes(store_path, "test")
    rows = code_metrics(
        train.packed,
        train.labels,
        test.packed,
        test.labels,
        train.n_bits,
        k=settings["knn_k"],
        n_clusters=settings["kmeans_clusters"],
        kmeans_n_init=settings["kmeans_n_init"],
        logreg_scheme=settings["logreg_scheme"],
        logreg_max_iter=settings["logreg_max_iter"],
        drop_constant=settings["drop_constant_columns"],
        seed=settings["seed"],
    )
    network = attrs.get("network", {})
    for split in ("train", "test"):
        if f"{split}_accuracy" in network:
            rows.append(
                {
                    "split": split,
                    "metric": "network",
                    "value": network[f"{split}_accuracy"],
                    "setting": "own prediction, from training",
                }
            )
    model = attrs["model_config"]
    meta = {
        "experiment": experiment,
        "model_id": attrs["model_id"],
        "dataset": attrs["dataset"],
        "seed": attrs["seed"],
        "width": model["width"],
        "depth": model["depth"],
        "epoch": attrs["epoch"],
        "n_bits": train.n_bits,
    }
    df = pd.DataFrame([{**meta, **r} for r in rows])
    write_csv(df, out_csv)
    logger.info("%s epoch %s: %d metric rows", meta["model_id"], meta["epoch"], len(df))


def collect_tables(paths, out_csv, expected=None) -> None:
    """Concatenate per-model metric tables into one sorted table.

    Parameters
    ----------
    paths : list of path-like
        Per-model tables.
    out_csv : path-like
        Destination.
    expected : list of [model_id, epoch], optional
        The (model, epoch) pairs the config asks for; the table must hold
        exactly these, each once.
    """
    df = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    key = ["model_id", "epoch", "split", "metric"]
    repeated = df[df.duplicated(key, keep=False)]
    pairs = repeated[["model_id", "epoch"]].drop_duplicates()
    if not repeated.empty:
        raise ValueError(
            "metric tables repeat rows for "
            f"{pairs.values.tolist()}: a code store "
            "holds another model's codes; delete the stores of those models and "
            "rerun the workflow"
        )
    if expected is not None:
        have = {(m, int(e)) for m, e in df[["model_id", "epoch"]].values}
        want = {(m, int(e)) for m, e in expected}
        if have != want:
            raise ValueError(
                f"metric tables hold {sorted(have - want)} but lack "
                f"{sorted(want - have)}; delete the stray files and rerun the workflow"
            )
    sort = ["experiment", "width", "seed", "epoch", "split", "metric"]
    write_csv(df.sort_values(sort, kind="stable"), out_csv)
    logger.info("%d rows from %d tables", len(df), len(paths))
