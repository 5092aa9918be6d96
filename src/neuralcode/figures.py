"""The paper's figures, drawn from the metric tables the workflow computed."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

logger = logging.getLogger(__name__)

METHOD_LABELS = {
    "kmeans_purity": "K-Means (majority mapping)",
    "knn": "K-NN (k=9, Hamming)",
    "logreg": "Logistic regression",
}


def _save(fig, outputs) -> None:
    for path in outputs:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight", dpi=150)
    plt.close(fig)


def _select(table, metrics, epoch, splits=None) -> pd.DataFrame:
    df = pd.read_csv(table)
    df = df[df["metric"].isin(metrics) & (df["epoch"] == epoch)]
    if splits is not None:
        df = df[df["split"].isin(splits)]
    if df.empty:
        raise ValueError(f"{table} has no rows for {metrics} at epoch {epoch}")
    return df


def redundancy_vs_width(table, outputs, epoch, caption="") -> None:
    """Figure 2(a): redundancy ratio of the codes against the layer width.

    Parameters
    ----------
    table : path-like
        Metric table of the width experiment.
    outputs : list of path-like
        Files to write (the format follows the suffix).
    epoch : int
        Epoch of the checkpoints to plot.
    caption : str, default=""
        Dataset, preset, seeds and epochs, shown under the title.
    """
    df = _select(table, ["redundancy"], epoch)
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    sns.lineplot(
        df,
        x="width",
        y="value",
        hue="split",
        hue_order=["train", "test"],
        palette=["tab:blue", "tab:red"],
        errorbar="sd",
        marker="o",
        ax=ax,
    )
    ax.set(xlabel="layer width", ylabel="redundancy ratio", ylim=(-0.02, 1.02))
    ax.set_title(f"Fig. 2(a) redundancy ratio\n{caption}; mean ± 1 sd", fontsize=9)
    _save(fig, outputs)


def accuracy_vs_width(table, outputs, epoch, caption="") -> None:
    """Figure 2(b): test accuracy of K-Means, K-NN and LR on codes vs width.

    K-Means is scored with the paper's majority mapping (cluster purity); the
    one-to-one Hungarian score is in the table as ``kmeans_hungarian``.
    """
    df = _select(table, list(METHOD_LABELS), epoch, splits=["test"])
    df = df.assign(method=df["metric"].map(METHOD_LABELS))
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    sns.lineplot(
        df,
        x="width",
        y="value",
        hue="method",
        hue_order=list(METHOD_LABELS.values()),
        palette=["tab:blue", "tab:red", "tab:orange"],
        errorbar="sd",
        marker="o",
        ax=ax,
    )
    ax.set(xlabel="layer width", ylabel="test accuracy", ylim=(0, 1.02))
    ax.legend(fontsize=7)
    ax.set_title(f"Fig. 2(b) accuracy on codes\n{caption}; mean ± 1 sd", fontsize=9)
    _save(fig, outputs)
