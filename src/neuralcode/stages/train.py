"""The `train` rule: one group of models per job, resumable."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from ..data import load_dataset

logger = logging.getLogger(__name__)


def model_config(model: dict, dataset):
    """The model's config object for a dataset's image shape and classes."""
    h, w, c = dataset.input_shape
    if model.get("arch") == "cnn":
        from ..cnn import CNNConfig

        if h != w:
            raise ValueError(f"CNNs need square images; {dataset.name} has {h}x{w}")
        return CNNConfig(
            name=model["name"],
            in_channels=c,
            image_size=h,
            n_classes=dataset.n_classes,
            multiplier=model["multiplier"],
        )
    from ..models import MLPConfig

    return MLPConfig(input_dim=h * w * c, n_classes=dataset.n_classes, **model)


def run_training_group(dataset_path, group, out_dir, threads=1, device=None):
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
    device : torch.device, optional
        Where to train; :func:`neuralcode.devices.pick_device` by default.
    """
    import torch

    from ..devices import pick_device
    from ..training import ModelJob, TrainConfig, train_group

    torch.set_num_threads(threads)
    device = device if device is not None else pick_device()
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
                config=model_config(m["model"], dataset),
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
    # TODO(keep a finished group's state so that an incomplete-marked rerun
    # can reuse it without defeating --forcerun): see README, Limitations.
    shutil.rmtree(work)
