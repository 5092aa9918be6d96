"""The `code_metrics` rule: encoding metrics of a group's code stores."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from .common import ID_COLUMNS, PROBE_SPLITS, write_csv

logger = logging.getLogger(__name__)


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
    from ..codes import open_store, read_codes
    from ..metrics import code_metrics, redundancy_ratio

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
