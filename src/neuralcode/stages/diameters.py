"""The `diameters` rule: stochastic diameters of a group's checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..data import load_dataset
from .common import write_csv
from .inputs import float_images, probe_images

logger = logging.getLogger(__name__)


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

    from ..checkpoints import load_checkpoint
    from ..diameters import diameter_table

    dataset = load_dataset(dataset_path)
    n, seed = settings["n_examples"], settings["seed"]
    pick = np.random.default_rng(seed).permutation(len(dataset.y_test))[:n]
    sources = {"test": float_images(dataset.x_test[pick])}
    for kind in settings["probes"]:
        images = probe_images(kind, len(pick), dataset.input_shape, seed)
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
