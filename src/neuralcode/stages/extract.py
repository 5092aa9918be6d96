"""The `extract_codes` rule: one zarr store per (model, epoch) of a group."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..data import load_dataset
from .inputs import probe_images

# Written last into a group's code directory: the stores it holds.
STORE_LIST = "stores.json"

logger = logging.getLogger(__name__)


def run_extraction(
    models_dir,
    dataset_path,
    out_dir,
    items,
    batch_size=1000,
    threads=1,
    probes=(),
    probe_seed=0,
    device=None,
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
    device : torch.device, optional
        Where to run the networks; :func:`neuralcode.devices.pick_device` by
        default.
    """
    import numpy as np
    import torch

    from ..checkpoints import load_checkpoint
    from ..devices import pick_device
    from ..extraction import extract_codes
    from ..views import training_view

    torch.set_num_threads(threads)
    device = device if device is not None else pick_device()
    dataset = load_dataset(dataset_path)
    n_probe = len(dataset.y_test)
    probe_splits = {
        kind: (
            probe_images(kind, n_probe, dataset.input_shape, probe_seed),
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
    # The list of stores lets `neuralcode.verify` notice one that goes missing.
    stores = [f"{model_id}/e{epoch}.zarr" for model_id, epoch in items]
    (Path(out_dir) / STORE_LIST).write_text(json.dumps(stores, indent=1) + "\n")
    logger.info("%d code stores in %s", len(items), out_dir)
