"""Glue between the workflow's rules and the package: paths and plain values in,
files out. The scripts under ``scripts/`` call one function each; a notebook can
call the same functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
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
    "arch",
    "seed",
    "width",
    "depth",
    "batch_norm",
    "regulariser",
    "train_size",
    "label_noise",
    "epoch",
    "layers",
    "n_bits",
    "split",
    "metric",
]

# Splits of a code store that hold random inputs rather than data.
PROBE_SPLITS = ("ball", "uniform")


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


def _model_config(model: dict, dataset):
    """The model's config object for a dataset's image shape and classes."""
    h, w, c = dataset.input_shape
    if model.get("arch") == "cnn":
        from .cnn import CNNConfig

        if h != w:
            raise ValueError(f"CNNs need square images; {dataset.name} has {h}x{w}")
        return CNNConfig(
            name=model["name"],
            in_channels=c,
            image_size=h,
            n_classes=dataset.n_classes,
            multiplier=model["multiplier"],
        )
    from .models import MLPConfig

    return MLPConfig(input_dim=h * w * c, n_classes=dataset.n_classes, **model)


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

    from .training import ModelJob, TrainConfig, pick_device, train_group

    torch.set_num_threads(threads)
    device = pick_device(require_gpu)
    dataset = load_dataset(dataset_path)
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
                config=_model_config(m["model"], dataset),
                seed=m["seed"],
                checkpoints={e: model_dir / f"e{e}.pt" for e in group["save_epochs"]},
                history=model_dir / "history.csv",
                view=m.get("view"),
                optim=m.get("optim", {}),
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


def _float_images(images):
    """uint8 (n, H, W, C) -> float32 (n, C, H, W) in [0, 1]."""
    import numpy as np

    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255


def _probe_images(kind, n, input_shape, seed):
    """Random inputs of ``kind`` shaped like images (n, H, W, C), float32."""
    from .probes import random_inputs

    h, w, c = input_shape
    return random_inputs(kind, n, (c, h, w), seed).transpose(0, 2, 3, 1)


def run_extraction(
    models_dir,
    dataset_path,
    out_dir,
    items,
    batch_size=1000,
    threads=1,
    probes=(),
    probe_seed=0,
    require_gpu=False,
):
    """Codes of a training group's checkpoints, one store per (model, epoch).

    Each store, ``out_dir/<model_id>/e<epoch>.zarr``, holds the "train" split
    as the distinct examples the model was trained on, with the labels it saw
    (a subset, noisy labels: see :mod:`neuralcode.views`), the test split, and
    per probe kind as many random inputs as test examples, labelled -1.

    Parameters
    ----------
    models_dir : path-like
        The group's training output (``<model_id>/e<epoch>.pt``).
    dataset_path : path-like
        Prepared dataset, loaded once for the whole group.
    out_dir : path-like
        Destination directory of the stores.
    items : list of [model_id, epoch]
        Checkpoints to read; each must hold that model id and epoch, so a
        swapped or hand-copied file cannot pass for another model.
    batch_size, threads : int
        Examples per forward pass; torch threads.
    probes : list of str
        Probe kinds (:mod:`neuralcode.probes`); ``probe_seed`` seeds them.
    require_gpu : bool, default=False
        Fail instead of extracting on the CPU when no GPU is visible.
    """
    import numpy as np
    import torch

    from .checkpoints import load_checkpoint
    from .extraction import extract_codes
    from .training import pick_device
    from .views import training_view

    torch.set_num_threads(threads)
    device = pick_device(require_gpu)
    dataset = load_dataset(dataset_path)
    n_probe = len(dataset.y_test)
    probe_splits = {
        kind: (
            _probe_images(kind, n_probe, dataset.input_shape, probe_seed),
            np.full(n_probe, -1),
        )
        for kind in probes
    }
    for model_id, epoch in items:
        checkpoint = Path(models_dir) / model_id / f"e{epoch}.pt"
        _, ckpt = load_checkpoint(checkpoint)
        v = ckpt.get("view") or {}
        view = training_view(
            dataset.y_train,
            dataset.n_classes,
            train_size=v.get("train_size"),
            label_noise=v.get("label_noise", 0.0),
            seed=v.get("seed", 0),
        )
        splits = {
            "train": (dataset.x_train[view.examples], view.labels[view.examples]),
            "test": (dataset.x_test, dataset.y_test),
            **probe_splits,
        }
        store = Path(out_dir) / model_id / f"e{epoch}.zarr"
        store.parent.mkdir(parents=True, exist_ok=True)
        extract_codes(
            checkpoint,
            splits,
            store,
            batch_size=batch_size,
            device=device,
            attrs={"dataset": dataset.name, "view": v, "probe_seed": probe_seed},
            expect={"model_id": model_id, "epoch": int(epoch)},
        )
    logger.info("%d code stores in %s", len(items), out_dir)


def layer_sets(depth: int, all_sets: bool) -> dict[str, list[int]]:
    """Named selections of hidden layers (0-based indices) to measure.

    ``all`` is the whole code; with ``all_sets`` also every single layer
    (``layer1``..), the first k (``first1``..) and the last k (``last1``..).
    """
    sets = {"all": list(range(depth))}
    if all_sets:
        for k in range(1, depth + 1):
            sets[f"layer{k}"] = [k - 1]
            sets[f"first{k}"] = list(range(k))
            sets[f"last{k}"] = list(range(depth - k, depth))
    return sets


def run_metrics(codes_dir, models, epochs, settings, experiment, out_csv, layers=False):
    """Encoding metrics of a training group's code stores, as one tidy table.

    Parameters
    ----------
    codes_dir : path-like
        The group's stores, ``<model_id>/e<epoch>.zarr``.
    models : list of dict
        The group's entries from :func:`neuralcode.config.experiment_models`
        (regulariser and training view go into the rows).
    epochs : list of int
        Epochs of every model to measure.
    settings : dict
        The config's ``metrics`` section.
    experiment : str
        Experiment name written in every row.
    out_csv : path-like
        Destination table.
    layers : bool, default=False
        Also measure single layers and first/last-k layer sets.
    """
    frames = [
        store_metrics(
            Path(codes_dir) / m["model_id"] / f"e{epoch}.zarr",
            settings,
            experiment,
            model=m,
            layers=layers,
        )
        for m in models
        for epoch in epochs
    ]
    write_csv(pd.concat(frames, ignore_index=True), out_csv)
    logger.info("%d metric tables of %s", len(frames), codes_dir)


def store_metrics(store_path, settings, experiment, model=None, layers=False):
    """Encoding metrics of one code store, one row per (layers, split, metric).

    Parameters are those of :func:`run_metrics`, for one model's store; the
    rows come back as a DataFrame.
    """
    from .codes import open_store, read_codes
    from .metrics import code_metrics, redundancy_ratio

    root = open_store(store_path)
    attrs = dict(root.attrs)
    config = attrs["model_config"]
    model = model or {}
    view = model.get("view") or {}
    probes = [s for s in PROBE_SPLITS if s in root]
    rows, done = [], {}
    depth = len(attrs["layers"])  # ReLU layers of the store
    for name, chosen in layer_sets(depth, layers).items():
        key = tuple(chosen)
        if key not in done:
            train = read_codes(store_path, "train", chosen)
            test = read_codes(store_path, "test", chosen)
            found = code_metrics(
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
                logreg=settings["logreg"],
            )
            for split in probes:
                codes = read_codes(store_path, split, chosen)
                found.append(
                    {
                        "split": split,
                        "metric": "redundancy",
                        "value": redundancy_ratio(codes.packed),
                        "setting": "all bits, random inputs",
                        "n_bits_used": codes.n_bits,
                    }
                )
            done[key] = (train.n_bits, found)
        n_bits, found = done[key]
        rows += [{"layers": name, "n_bits": n_bits, **r} for r in found]
    network = attrs.get("network", {})
    for split in ("train", "test"):
        if f"{split}_accuracy" in network:
            rows.append(
                {
                    "layers": "network",
                    "n_bits": sum(layer["n_bits"] for layer in attrs["layers"]),
                    "split": split,
                    "metric": "network",
                    "value": network[f"{split}_accuracy"],
                    "setting": "own prediction, from training",
                }
            )
    meta = {
        "experiment": experiment,
        "model_id": attrs["model_id"],
        "dataset": attrs["dataset"],
        "seed": attrs["seed"],
        "arch": config.get("name", config["arch"]),
        "width": config.get("width"),
        "depth": config.get("depth"),
        "batch_norm": config.get("batch_norm"),
        "regulariser": model.get("regulariser", "none"),
        "train_size": view.get("train_size") or attrs["splits"]["train"],
        "label_noise": view.get("label_noise", 0.0),
        "epoch": attrs["epoch"],
    }
    df = pd.DataFrame([{**meta, **r} for r in rows])
    if model and model["model_id"] != meta["model_id"]:
        raise ValueError(
            f"code store {store_path} holds model {meta['model_id']!r}, not "
            f"{model['model_id']!r}; delete it and rerun the workflow"
        )
    logger.info("%s epoch %s: %d metric rows", meta["model_id"], meta["epoch"], len(df))
    return df[ID_COLUMNS + [c for c in df.columns if c not in ID_COLUMNS]]


def run_diameters(models_dir, dataset_path, items, settings, experiment, out_csv):
    """Stochastic diameters of a training group's checkpoints.

    Parameters
    ----------
    models_dir : path-like
        The group's training output (``<model_id>/e<epoch>.pt``).
    dataset_path : path-like
        Prepared dataset; the examples are the first ``n_examples`` test
        examples of a permutation seeded by ``settings["seed"]``.
    items : list of [model_id, epoch]
        Checkpoints to measure.
    settings : dict
        The experiment's ``diameters`` section.
    experiment : str
        Written in every row.
    out_csv : path-like
        Tidy table, one row per (model, epoch, source, example).
    """
    import numpy as np

    from .checkpoints import load_checkpoint
    from .diameters import diameter_table

    dataset = load_dataset(dataset_path)
    n, seed = settings["n_examples"], settings["seed"]
    pick = np.random.default_rng(seed).permutation(len(dataset.y_test))[:n]
    sources = {"test": _float_images(dataset.x_test[pick])}
    for kind in settings["probes"]:
        images = _probe_images(kind, len(pick), dataset.input_shape, seed)
        sources[kind] = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    frames = []
    for model_id, epoch in items:
        checkpoint = Path(models_dir) / model_id / f"e{epoch}.pt"
        model, ckpt = load_checkpoint(checkpoint)
        if (ckpt["model_id"], ckpt["epoch"]) != (model_id, int(epoch)):
            raise ValueError(
                f"checkpoint {checkpoint} holds model {ckpt['model_id']!r} at "
                f"epoch {ckpt['epoch']}; rerun its training job "
                f"(`snakemake --forcerun {models_dir}`)"
            )
        df = diameter_table(model, sources, n, seed, settings["cap"])
        config = ckpt["model_config"]
        meta = {
            "experiment": experiment,
            "model_id": model_id,
            "dataset": dataset.name,
            "seed": ckpt["seed"],
            "width": config["width"],
            "depth": config["depth"],
            "epoch": ckpt["epoch"],
        }
        frames.append(df.assign(**meta)[[*meta, *df.columns]])
    write_csv(pd.concat(frames, ignore_index=True), out_csv)
    logger.info("%d diameter tables of %s", len(frames), models_dir)


def collect_histories(group_dirs, models, out_csv, experiment, dataset) -> None:
    """Per-epoch training logs of an experiment's models in one table.

    Parameters
    ----------
    group_dirs : list of path-like
        Training-group directories (``<group>/<model_id>/history.csv``).
    models : list of dict
        The experiment's models (id, seed, width...), as in the config.
    out_csv : path-like
        Destination.
    experiment, dataset : str
        Written in every row.
    """
    frames = []
    for m in models:
        found = [Path(d) / m["model_id"] / "history.csv" for d in group_dirs]
        found = [p for p in found if p.is_file()]
        if len(found) != 1:
            raise ValueError(
                f"expected one history.csv of {m['model_id']} under {group_dirs}, "
                f"found {len(found)}; rerun the training job of that model"
            )
        df = pd.read_csv(found[0])
        frames.append(
            df.assign(
                experiment=experiment,
                model_id=m["model_id"],
                dataset=dataset,
                seed=m["seed"],
                width=m["model"]["width"],
                regulariser=m["regulariser"],
            )
        )
    write_csv(pd.concat(frames, ignore_index=True), out_csv)


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
    key = [
        c
        for c in ("model_id", "epoch", "layers", "source", "example", "split", "metric")
        if c in df.columns
    ]
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
                f"{sorted(want - have)}; the per-group tables {list(map(str, paths))} "
                "were edited or are stale: delete them and rerun the workflow"
            )
    sort = ["experiment", "model_id", "epoch"]
    write_csv(df.sort_values(sort, kind="stable"), out_csv)
    logger.info("%d rows from %d tables", len(df), len(paths))
