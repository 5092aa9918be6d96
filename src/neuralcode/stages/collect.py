"""The `collect_table` and `collect_history` rules: one table per experiment."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from .common import write_csv

logger = logging.getLogger(__name__)


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
