"""What several stages share: table columns and atomic CSV writes."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

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
