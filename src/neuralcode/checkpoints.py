"""Checkpoints that carry everything needed to rebuild and trace a model.

A checkpoint is written to a temporary file beside its destination and renamed
into place, so a killed job never leaves a truncated file under the final name.
It holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .models import build_model

FORMAT = "neuralcode-checkpoint/1"
REQUIRED_KEYS = ("format", "model_id", "model_config", "seed", "epoch", "state_dict")


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated or not one of ours."""


def library_versions() -> dict:
    """Versions of what determines the numbers in a checkpoint."""
    return {
        "neuralcode": __version__,
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "python": platform.python_version(),
    }


def atomic_torch_save(obj, path) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates files private to the owner
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path, *, model, model_id, model_config, seed, epoch, **extra):
    """Write one model's state at one epoch.

    Parameters
    ----------
    path : path-like
        Destination ``.pt`` file.
    model : torch.nn.Module
        The model; its ``state_dict`` is copied to the CPU.
    model_id : str
        Identifier used in paths and tables (e.g. ``w040-s0``).
    model_config : dict
        ``MLPConfig.to_dict()``: enough to rebuild the module.
    seed : int
        Seed of initialisation and data order.
    epoch : int
        Completed epochs (0 is the initialisation).
    **extra
        Further plain values: training config, metrics, device, flags.
    """
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "model_id": model_id,
        "model_config": dict(model_config),
        "seed": int(seed),
        "epoch": int(epoch),
        "state_dict": state,
        "versions": library_versions(),
        **extra,
    }
    atomic_torch_save(payload, path)


def load_checkpoint(path, device="cpu"):
    """Load a checkpoint and rebuild its model in eval mode.

    Returns
    -------
    model : torch.nn.Module
    checkpoint : dict
        The stored payload (``state_dict`` included).

    Raises
    ------
    CheckpointError
        If the file is absent, truncated, not a neuralcode checkpoint, or its
        weights do not fit its model config.
    """
    path = Path(path)
    # A training job's output is its whole group directory, so deleting this
    # file alone would not make Snakemake retrain it.
    fix = (
        f"Retrain its group: `snakemake --forcerun {path.parent.parent}` (or delete "
        "that directory and rerun the workflow)."
    )
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist. {fix}")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged file
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); "
            f"it is probably truncated or not a torch file. {fix}"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a {FORMAT} checkpoint (format: "
            f"{ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt)}). {fix}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks keys {missing}. {fix}")
    model = build_model(ckpt["model_config"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"weights in {path} do not match its model config "
            f"{ckpt['model_config']}: {exc}. {fix}"
        ) from exc
    return model.to(device).eval(), ckpt
