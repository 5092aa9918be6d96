"""The paper's figures and Table 5, drawn from the tables the workflow computed.

Every target is registered in :data:`FIGURES` as
``fn(tables, outputs, caption="", **options)``: ``tables`` maps a table kind
(``"metrics"``, ``"diameters"``, ``"history"`` or ``"dataset"``) to its path,
``outputs`` lists the files to write (the format follows the suffix) and
``caption`` (dataset, preset, seeds) is shown under the title.

Rows are always chosen by their columns, never by their order, and extra
columns are ignored. When the rows a figure needs are absent a ``ValueError``
names the table, the filter and the missing values, so no empty figure is
drawn. Curves show the mean over seeds and a band of ± 1 sd. K-Means is
scored, as in the paper, by the majority mapping of clusters to classes
(``kmeans_purity``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

logger = logging.getLogger(__name__)

METHOD_LABELS = {
    "kmeans_purity": "K-Means (majority mapping)",
    "knn": "K-NN (k=9, Hamming)",
    "logreg": "Logistic regression",
}
METRIC_LABELS = {"redundancy": "redundancy ratio", **METHOD_LABELS}
SHORT_LABELS = {
    "redundancy": "R ratio",
    "kmeans_purity": "K-Means acc.",
    "knn": "K-NN acc.",
    "logreg": "LR acc.",
}
SPLIT_LABELS = {
    "train": "training set",
    "test": "True data (test set)",
    "ball": "random data (ball)",
    "uniform": "random data (uniform)",
}
REGULARISERS = {
    "batch_norm": "BN",
    "grad_clip": "gradient clipping",
    "weight_decay": "weight decay",
}
# The paper's colour order: blue, red, orange, green.
PALETTE = ["tab:blue", "tab:red", "tab:orange", "tab:green", "tab:purple"]
SOLID, DASHED, DOTTED, DASH_DOT = "", (4, 2), (1, 2), (6, 2, 1, 2)
MEAN_SD = "mean ± 1 sd over seeds"
KMEANS_NOTE = "K-Means scored by majority mapping (kmeans_purity)"


# ---------------------------------------------------------------------------
# Reading and selecting rows


def _table_path(tables, kind):
    if kind not in tables:
        raise ValueError(f"this target needs a {kind!r} table; got {sorted(tables)}")
    return tables[kind]


def _read_table(tables, kind) -> tuple[pd.DataFrame, str]:
    """Read the table of ``kind``; return it and a name for error messages."""
    path = _table_path(tables, kind)
    return pd.read_csv(path), f"{kind} table {path}"


def _as_list(wanted) -> list:
    return list(wanted) if isinstance(wanted, list | tuple | set) else [wanted]


def _mask(df, table, where) -> pd.Series:
    """Rows of ``df`` whose columns take the wanted values (no value required)."""
    mask = pd.Series(True, index=df.index)
    for column, wanted in where.items():
        if column not in df.columns:
            raise ValueError(f"{table} has no column {column!r} (filter {where})")
        mask &= df[column].isin(_as_list(wanted))
    return mask


def _rows(df, table, **where) -> pd.DataFrame:
    """Rows of ``df`` matching every filter, each wanted value being present.

    Parameters
    ----------
    df : pandas.DataFrame
        Any table.
    table : str
        Name of the table, for the error message.
    **where
        Column name to a wanted value or a list of wanted values.

    Raises
    ------
    ValueError
        If a column is absent, or if some wanted value has no matching row.
    """
    rows = df[_mask(df, table, where)]
    missing = {
        column: absent
        for column, wanted in where.items()
        if (absent := [w for w in _as_list(wanted) if w not in set(rows[column])])
    }
    if rows.empty or missing:
        raise ValueError(
            f"{table} has no rows for {missing or where} under the filter {where}"
        )
    return rows


def _whole_network(df) -> dict:
    """Filter for the codes of the whole network (tables without layers: all)."""
    return {"layers": "all"} if "layers" in df.columns else {}


def _check_unique(df, table, keys) -> None:
    """Refuse to average rows that differ in something other than ``keys``."""
    repeated = df[df.duplicated(keys, keep=False)]
    if repeated.empty:
        return
    groups = repeated.groupby(keys, dropna=False)
    varying = [
        c
        for c in repeated.columns
        if c not in (*keys, "value") and groups[c].nunique(dropna=False).gt(1).any()
    ]
    raise ValueError(
        f"{table} has several rows per {keys} (they differ in {varying}); "
        "restrict them with the `where` option"
    )


def _counted(n, noun) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _labelled(df, column, name, fmt="{:g}") -> tuple[pd.DataFrame, list[str]]:
    """Add a text column ``name`` from ``column``; return it and its order.

    ``fmt`` is a format string or a function of the value."""
    values = sorted(df[column].unique())
    label = fmt if callable(fmt) else fmt.format
    labels = {v: label(v) for v in values}
    return df.assign(**{name: df[column].map(labels)}), list(labels.values())


# ---------------------------------------------------------------------------
# Drawing helpers


def _split_label(split) -> str:
    return SPLIT_LABELS.get(split, split)


def _palette(n) -> list:
    return PALETTE[:n] if n <= len(PALETTE) else sns.color_palette("husl", n)


def _title(target, label, what, caption, *notes) -> None:
    """Title ``Fig. <label> <what>`` with the caption and notes underneath."""
    text = f"Fig. {label} {what}\n" + "; ".join(filter(None, [caption, *notes]))
    if isinstance(target, plt.Figure):
        target.suptitle(text, fontsize=9)
    else:
        target.set_title(text, fontsize=9)


def _save(fig, outputs) -> None:
    for path in outputs:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight", dpi=150)
    plt.close(fig)


def _set_xaxis(ax, x) -> None:
    label, scale = XAXES[x]
    ax.set_xlabel(label)
    if scale == "symlog":  # epoch 0 is a checkpoint too
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)  # no negative epochs
    else:
        ax.set_xscale(scale)


def _legend_on_last(axes) -> None:
    """Keep one legend, outside the last panel."""
    for ax in axes[:-1]:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    # Long handles: a dash pattern must show beside the marker.
    sns.move_legend(
        axes[-1], "upper left", bbox_to_anchor=(1.02, 1), fontsize=7, handlelength=4
    )


# ---------------------------------------------------------------------------
# Figure 2(a), 2(b): metrics against width, from one metric table


def _select(table, metrics, epoch, splits=None) -> pd.DataFrame:
    """Whole-network rows of ``metrics`` at ``epoch``, each present, one per seed."""
    df = pd.read_csv(table)
    where = {"metric": metrics, "epoch": epoch, **_whole_network(df)}
    if splits is not None:
        where["split"] = splits
    rows = _rows(df, f"metrics table {table}", **where)
    _check_unique(rows, f"metrics table {table}", ["width", "split", "metric", "seed"])
    return rows


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
    df = _select(table, ["redundancy"], epoch, splits=["train", "test"])
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


# ---------------------------------------------------------------------------
# Metric figures: views (x axis, colours, epochs) and the two measures


XAXES = {
    "epoch": ("training epoch", "symlog"),
    "train_size": ("training sample size", "log"),
    "width": ("layer width", "linear"),
}


@dataclass(frozen=True)
class View:
    """How a metric figure lays out its rows.

    Attributes
    ----------
    x : str
        Column on the x axis: ``epoch``, ``train_size`` or ``width``.
    hue : str
        What the colours tell apart: a key of :data:`ENCODINGS`.
    at_epoch : bool
        Whether to keep only the rows at the option ``epoch``.
    """

    x: str
    hue: str
    at_epoch: bool


@dataclass
class Encoding:
    """Rows with their colour (and optional line style) columns."""

    data: pd.DataFrame
    hue: str
    hue_order: list[str]
    selection: str
    style: str | None = None
    dashes: dict | None = None


def _by_column(column, name, fmt="{:g}"):
    """Encoding by the values of ``column``, whole-network codes only."""

    def encode(df, table) -> Encoding:
        data, order = _labelled(
            _rows(df, table, **_whole_network(df)), column, name, fmt
        )
        return Encoding(data, name, order, selection="layers 'all'")

    return encode


def _layer_rows(df, table, pattern, what) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows whose ``layers`` match ``pattern``, with the match groups."""
    if "layers" not in df.columns:
        raise ValueError(f"{table} has no column 'layers', needed for {what}")
    parts = df["layers"].astype(str).str.extract(f"^{pattern}$")
    keep = parts.notna().all(axis=1)
    if not keep.any():
        found = sorted(df["layers"].astype(str).unique())
        raise ValueError(
            f"{table} has no rows for {what} (layers {pattern!r}); it has {found}"
        )
    return df[keep], parts[keep]


def _by_single_layer(df, table) -> Encoding:
    """Encoding by single hidden layers ``layer1`` ... ``layerL``."""
    df, parts = _layer_rows(df, table, r"layer(\d+)", "single layers")
    df, order = _labelled(df.assign(_i=parts[0].astype(int)), "_i", "layer", "layer {}")
    return Encoding(df, "layer", order, selection="single layers")


def _by_layer_set(df, table) -> Encoding:
    """Encoding by layer sets: colour = how many layers, style = which end."""
    df, parts = _layer_rows(df, table, r"(first|last)(\d+)", "layer sets")
    df = df.assign(_k=parts[1].astype(int), _end=parts[0])
    df, order = _labelled(df, "_k", "layers used", lambda k: _counted(k, "layer"))
    ends = {"first": "first k (from the input)", "last": "last k (from the output)"}
    df = df.assign(**{"taken from": df["_end"].map(ends)})
    return Encoding(
        df,
        "layers used",
        order,
        selection="layer sets",
        style="taken from",
        dashes={ends["first"]: SOLID, ends["last"]: DASHED},
    )


ENCODINGS = {
    "width": _by_column("width", "layer width"),
    "label_noise": _by_column("label_noise", "label noise"),
    "layer": _by_single_layer,
    "layer_set": _by_layer_set,
}


def _metric_rows(tables, label, view, metrics, splits, epoch, where, optional=()):
    """Rows of the metric table for one figure, encoded for plotting.

    Every value of ``metrics`` and ``splits`` must have rows; the ``optional``
    splits are kept where the table has them.
    """
    df, table = _read_table(tables, "metrics")
    filters = {"metric": metrics, "split": splits, **(where or {})}
    if view.at_epoch:
        if epoch is None:
            raise TypeError(f"Fig. {label} needs the option `epoch`")
        filters["epoch"] = epoch
    _rows(df, table, **filters)
    kept = df[_mask(df, table, {**filters, "split": [*_as_list(splits), *optional]})]
    enc = ENCODINGS[view.hue](kept, table)
    _rows(enc.data, f"{table} ({enc.selection})", **filters)
    keys = [view.x, enc.hue, "metric", "split", "seed"]
    _check_unique(enc.data, table, keys + ([enc.style] if enc.style else []))
    return enc


def _lines(ax, df, x, enc, style=None, dashes=None) -> None:
    """Mean ± 1 sd curves of ``value`` against ``x``, one colour per hue level.

    The encoding's own line style, where it has one, replaces ``style``.
    """
    style, dashes = (enc.style, enc.dashes) if enc.style else (style, dashes)
    present = set(df[style]) if style else set()
    sns.lineplot(
        df,
        x=x,
        y="value",
        hue=enc.hue,
        hue_order=enc.hue_order,
        palette=_palette(len(enc.hue_order)),
        style=style,
        style_order=[s for s in dashes if s in present] if style else None,
        dashes=dashes if style else True,
        errorbar="sd",
        marker="o",
        markersize=4,
        ax=ax,
    )


def _epoch_note(view, epoch) -> str:
    return f"epoch {epoch}" if view.at_epoch else ""


def redundancy_figure(
    tables, outputs, caption="", *, label, view, splits, epoch=None, where=None
) -> None:
    """Redundancy ratio against ``view.x``, one line per colour and split.

    Parameters
    ----------
    tables : dict
        ``{"metrics": path}``.
    outputs : list of path-like
        Files to write.
    caption : str, default=""
        Dataset, preset and seeds, shown under the title.
    label : str
        Figure label, e.g. ``"3(a)"``.
    view : View
        x axis, colours and epochs.
    splits : dict
        Split to ``(dash pattern, required)``; the optional splits (random
        probes) are drawn where the table has them.
    epoch : int, optional
        Epoch of the rows; needed when ``view.at_epoch``.
    where : dict, optional
        Further column filters, e.g. ``{"train_size": 60000}``.
    """
    required = [s for s, (_, needed) in splits.items() if needed]
    optional = [s for s in splits if s not in required]
    enc = _metric_rows(
        tables, label, view, "redundancy", required, epoch, where, optional
    )
    data = enc.data.assign(data=enc.data["split"].map(_split_label))
    dashes = {_split_label(s): dash for s, (dash, _) in splits.items()}
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    _lines(ax, data, view.x, enc, style="data", dashes=dashes)
    _set_xaxis(ax, view.x)
    ax.set(ylabel="redundancy ratio", ylim=(-0.02, 1.02))
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), fontsize=7)
    _title(ax, label, "redundancy ratio", caption, MEAN_SD, _epoch_note(view, epoch))
    _save(fig, outputs)


def accuracy_figure(
    tables, outputs, caption="", *, label, view, epoch=None, where=None
) -> None:
    """Test accuracy of K-Means (left), K-NN (middle) and LR (right) on codes.

    Parameters are those of :func:`redundancy_figure`, without ``splits``:
    accuracies are always those on the test split.
    """
    enc = _metric_rows(tables, label, view, list(METHOD_LABELS), "test", epoch, where)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True, layout="constrained")
    for ax, (metric, name) in zip(axes, METHOD_LABELS.items(), strict=True):
        _lines(ax, enc.data[enc.data["metric"] == metric], view.x, enc)
        _set_xaxis(ax, view.x)
        ax.set(title=name, ylabel="test accuracy", ylim=(0, 1.02))
    _legend_on_last(axes)
    what = "test accuracy of classifiers on the codes"
    notes = (MEAN_SD, KMEANS_NOTE, _epoch_note(view, epoch))
    _title(fig, label, what, caption, *notes)
    _save(fig, outputs)


# ---------------------------------------------------------------------------
# Regularisation (Figures 6 and 10)


def paired_regulariser_values(
    df, metric, regulariser, epoch, split="test", table="metric table"
) -> pd.DataFrame:
    """Values of ``metric`` with and without ``regulariser``, model by model.

    A model trained with ``regulariser`` is paired with the model of regulariser
    ``"none"`` of the same width and seed, both at ``epoch``.

    Parameters
    ----------
    df : pandas.DataFrame
        Metric table of the regulariser experiment.
    metric : str
        Metric name, e.g. ``"redundancy"``.
    regulariser : str
        ``"batch_norm"``, ``"grad_clip"`` or ``"weight_decay"``.
    epoch : int
        Epoch of both models.
    split : str, default="test"
        Split the metric was computed on.
    table : str, default="metric table"
        Name of the table, for error messages.

    Returns
    -------
    pandas.DataFrame
        Columns ``width``, ``seed``, ``without``, ``with``, sorted by width and
        seed; (width, seed) found under only one of the two are left out.
    """
    keys = ["width", "seed"]

    def values(reg) -> pd.Series:
        where = {"metric": metric, "split": split, "epoch": epoch, "regulariser": reg}
        rows = _rows(df, table, **where, **_whole_network(df))
        _check_unique(rows, table, keys)
        return rows.set_index(keys)["value"]

    pairs = pd.concat(
        {"without": values("none"), "with": values(regulariser)}, axis=1, join="inner"
    )
    if pairs.empty:
        raise ValueError(
            f"{table}: no (width, seed) has {metric} on {split} at epoch {epoch} "
            f"both with regulariser {regulariser!r} and with 'none'"
        )
    return pairs.reset_index().sort_values(keys, ignore_index=True)


def _scatter_pairs(ax, pairs, order, metric, regulariser) -> None:
    """One point per model pair, coloured by width, with the identity line."""
    data, _ = _labelled(pairs, "width", "layer width")
    lo = data[["without", "with"]].min().min()
    hi = data[["without", "with"]].max().max()
    pad = 0.05 * (hi - lo) or 0.01
    ends = [lo - pad, hi + pad]
    ax.plot(ends, ends, color="grey", ls="--", lw=0.8, label="y = x")
    sns.scatterplot(
        data,
        x="without",
        y="with",
        hue="layer width",
        hue_order=order,
        palette=_palette(len(order)),
        ax=ax,
    )
    reg = REGULARISERS[regulariser]
    ax.set(
        title=f"{SHORT_LABELS[metric]}, {reg}", xlabel=f"w/o {reg}", ylabel=f"w/ {reg}"
    )


def regulariser_figure(
    tables, outputs, caption="", *, label, metrics, epoch, where=None
) -> None:
    """Scatter of a test metric with (y) vs without (x) each regulariser.

    One row of panels per metric; columns: batch norm, gradient clipping,
    weight decay.

    Parameters
    ----------
    tables : dict
        ``{"metrics": path}`` of the regulariser experiment.
    outputs : list of path-like
        Files to write.
    caption : str, default=""
        Dataset, preset and seeds, shown under the title.
    label : str
        Figure label, e.g. ``"6(a)"``.
    metrics : tuple of str
        Metric of each row of panels.
    epoch : int
        Epoch of the models compared.
    where : dict, optional
        Further column filters.
    """
    df, table = _read_table(tables, "metrics")
    if where:
        df = _rows(df, table, **where)
    pairs = {
        (metric, reg): paired_regulariser_values(df, metric, reg, epoch, table=table)
        for metric in metrics
        for reg in REGULARISERS
    }
    _, order = _labelled(pd.concat(pairs.values()), "width", "layer width")
    fig, axes = plt.subplots(
        len(metrics),
        len(REGULARISERS),
        figsize=(12, 1 + 3.6 * len(metrics)),
        squeeze=False,
        layout="constrained",
    )
    for ((metric, reg), data), ax in zip(pairs.items(), axes.flat, strict=True):
        _scatter_pairs(ax, data, order, metric, reg)
    for row in axes:
        _legend_on_last(row)
    what = " and ".join(METRIC_LABELS[m] for m in metrics)
    notes = [f"test split, one point per model (width, seed) at epoch {epoch}"]
    if "kmeans_purity" in metrics:
        notes.append(KMEANS_NOTE)
    _title(fig, label, f"{what} with vs without regularisation", caption, *notes)
    _save(fig, outputs)


# ---------------------------------------------------------------------------
# Stochastic activation diameters (Figures 2 and 7)


def _diameter_rows(tables, **where) -> tuple[pd.DataFrame, str, str]:
    """Finite diameters matching ``where``, the table name and a note on caps."""
    df, table = _read_table(tables, "diameters")
    rows = _rows(df, table, **where)
    finite = np.isfinite(rows["diameter"].astype(float))
    notes = []
    if "capped" in rows.columns and (n := int(rows["capped"].eq(True).sum())):
        notes.append(f"{n} of {len(rows)} diameters capped at the search bound")
    if n := int((~finite).sum()):
        notes.append(f"{n} infinite diameters left out")
    if not finite.any():
        raise ValueError(f"{table} has only infinite diameters under filter {where}")
    return rows[finite], table, "; ".join(notes)


def diameter_vs_width(tables, outputs, caption="", *, epoch) -> None:
    """Figure 2(c): mean stochastic diameter of test examples against width.

    Parameters
    ----------
    tables : dict
        ``{"diameters": path}``.
    outputs : list of path-like
        Files to write.
    caption : str, default=""
        Dataset, preset and seeds, shown under the title.
    epoch : int
        Epoch of the checkpoints.
    """
    df, table, note = _diameter_rows(tables, source="test", epoch=epoch)
    per_model = df.groupby(["model_id", "seed", "width"], as_index=False)[
        "diameter"
    ].mean()
    _check_unique(per_model, table, ["width", "seed"])
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    sns.lineplot(
        per_model,
        x="width",
        y="diameter",
        errorbar="sd",
        marker="o",
        color="tab:blue",
        label="mean over test examples",
        ax=ax,
    )
    ax.set(xlabel="layer width", ylabel="stochastic diameter D")
    ax.legend(fontsize=7)
    what = "average stochastic activation diameter"
    _title(ax, "2(c)", what, caption, MEAN_SD, f"epoch {epoch}", note)
    _save(fig, outputs)


def _histogram_figure(df, hue, order, outputs, label, what, caption, *notes):
    """Step histograms of diameters, one colour per ``hue`` level."""
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    sns.histplot(
        df,
        x="diameter",
        hue=hue,
        hue_order=order,
        palette=_palette(len(order)),
        stat="probability",
        common_norm=False,
        element="step",
        ax=ax,
    )
    ax.set(xlabel="stochastic diameter D", ylabel="fraction of examples")
    pooled = f"pooled over {_counted(df['seed'].nunique(), 'seed')}"
    _title(ax, label, what, caption, pooled, *notes)
    _save(fig, outputs)


def diameter_histograms_by_epoch(
    tables, outputs, caption="", *, label, width, early, late
) -> None:
    """Histograms of test-example diameters at an early and a late epoch.

    Parameters
    ----------
    tables : dict
        ``{"diameters": path}``.
    outputs : list of path-like
        Files to write.
    caption : str, default=""
        Dataset, preset and seeds, shown under the title.
    label : str
        Figure label, e.g. ``"2(d)"``.
    width : int
        Width of the models.
    early, late : int
        The two epochs compared.
    """
    df, _, note = _diameter_rows(
        tables, source="test", width=width, epoch=[early, late]
    )
    df, order = _labelled(df, "epoch", "trained for", lambda e: _counted(e, "epoch"))
    what = f"stochastic diameters, width {width}, test examples"
    _histogram_figure(df, "trained for", order, outputs, label, what, caption, note)


def diameter_histograms_by_source(
    tables, outputs, caption="", *, label, width, epoch, probe="ball"
) -> None:
    """Histograms of diameters of test examples and of random probe inputs.

    The paper's text draws its random inputs from the unit ball, its appendix
    from U(0,1) pixels; ``probe`` may list both to overlay them.

    Parameters
    ----------
    tables : dict
        ``{"diameters": path}``.
    outputs : list of path-like
        Files to write.
    caption : str, default=""
        Dataset, preset and seeds, shown under the title.
    label : str
        Figure label, e.g. ``"2(e)"``.
    width : int
        Width of the models.
    epoch : int
        Epoch of the checkpoints.
    probe : str or list of str, default="ball"
        Source(s) of the random inputs (``"ball"``, ``"uniform"``).
    """
    probes = [probe] if isinstance(probe, str) else list(probe)
    df, _, note = _diameter_rows(
        tables, source=["test", *probes], width=width, epoch=epoch
    )
    df = df.assign(data=df["source"].map(_split_label))
    order = [_split_label(s) for s in ("test", *probes)]
    what = f"stochastic diameters, width {width}, epoch {epoch}"
    _histogram_figure(df, "data", order, outputs, label, what, caption, note)


# ---------------------------------------------------------------------------
# Figure 11 and Table 5


def random_image(dataset_npz, outputs, caption="") -> None:
    """Figure 11: training image 0 of a prepared dataset, in grey.

    Parameters
    ----------
    dataset_npz : path-like
        Prepared dataset with ``x_train`` (uint8, (n, H, W, C)) and ``y_train``.
    outputs : list of path-like
        Files to write.
    caption : str, default=""
        Dataset and preset, shown under the title.
    """
    with np.load(dataset_npz, allow_pickle=False) as data:
        missing = [k for k in ("x_train", "y_train") if k not in data.files]
        if missing:
            raise ValueError(f"dataset {dataset_npz} has no array {missing}")
        x, y = data["x_train"], data["y_train"]
    if len(x) == 0:
        raise ValueError(f"dataset {dataset_npz} has no training images")
    grey = x[0].mean(axis=-1) if x[0].ndim == 3 else x[0]
    # Constrained layout and a figure title: the colour bar keeps clear of it.
    fig, ax = plt.subplots(figsize=(4.2, 4.0), layout="constrained")
    shown = ax.imshow(grey, cmap="gray", vmin=0, vmax=255)
    fig.colorbar(shown, ax=ax, label="pixel value (grey, channel mean)")
    ax.set(xlabel="pixel column", ylabel="pixel row")
    _title(fig, "11", f"training image 0, label {y[0]}", caption)
    _save(fig, outputs)


TABLE5_ROWS = {
    "Training acc (%)": ("train_accuracy_pct", 2),
    "Loss": ("train_loss", 4),
}
LOSS_NOTE = (
    "Note: Loss is the mean cross-entropy per training example (natural log). "
    "The paper's values (about 230) appear to be on another scale (a sum, or "
    "x100), so compare their trend only."
)


def table5_summary(history, epochs, table="history table") -> pd.DataFrame:
    """Training accuracy (%) and loss at ``epochs``, mean and sd over models.

    Parameters
    ----------
    history : pandas.DataFrame
        Training history, one row per model and epoch.
    epochs : list of int
        Epochs to report, in this order.
    table : str, default="history table"
        Name of the table, for error messages.

    Returns
    -------
    pandas.DataFrame
        One row per epoch: ``epoch``, ``n_models``, then mean and sd (ddof 1;
        empty for one model) of ``train_accuracy_pct`` and ``train_loss``,
        rounded to 6 decimals.
    """
    epochs = [int(e) for e in epochs]
    rows = _rows(history, table, epoch=epochs)
    _check_unique(rows, table, ["model_id", "epoch"])
    rows = rows.assign(train_accuracy_pct=100 * rows["train_accuracy"])
    stats = {"n_models": ("model_id", "nunique")}
    for column in ("train_accuracy_pct", "train_loss"):
        stats[f"{column}_mean"] = (column, "mean")
        stats[f"{column}_sd"] = (column, "std")
    summary = rows.groupby("epoch").agg(**stats).reindex(epochs)
    return summary.rename_axis("epoch").reset_index().round(6)


def _mean_sd(mean, sd, digits) -> str:
    if np.isnan(sd):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def table5_markdown(summary, caption="") -> str:
    """Markdown of :func:`table5_summary`, shaped like the paper's Table 5."""
    title = "Table 5: Training accuracy and loss on the training data"
    lines = [
        f"{title} ({caption})" if caption else title,
        "",
        "| Epoch | " + " | ".join(str(e) for e in summary["epoch"]) + " |",
        "|---|" + "---:|" * len(summary),
    ]
    for name, (column, digits) in TABLE5_ROWS.items():
        cells = [
            _mean_sd(m, s, digits)
            for m, s in zip(
                summary[f"{column}_mean"], summary[f"{column}_sd"], strict=True
            )
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    models = ", ".join(str(n) for n in summary["n_models"].unique())
    lines += ["", f"Mean ± 1 sd over models ({models} per epoch).", LOSS_NOTE, ""]
    return "\n".join(lines)


def random_label_table(history_csv, out_csv, out_md, epochs, caption="") -> None:
    """Table 5: training accuracy and loss at ``epochs``, as CSV and Markdown.

    Parameters
    ----------
    history_csv : path-like
        History table of the experiment.
    out_csv, out_md : path-like
        Files to write.
    epochs : list of int
        Epochs to report (columns of the table).
    caption : str, default=""
        Dataset, preset and seeds, shown in the Markdown title.
    """
    history = pd.read_csv(history_csv)
    summary = table5_summary(history, epochs, f"history table {history_csv}")
    for path in (out_csv, out_md):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out_csv, index=False)
    Path(out_md).write_text(table5_markdown(summary, caption), encoding="utf-8")


# ---------------------------------------------------------------------------
# Registry


def _on_metric_table(fn):
    """Registry entry for a function of one metric table (Figures 2(a), 2(b))."""

    def entry(tables, outputs, caption="", *, epoch) -> None:
        fn(_table_path(tables, "metrics"), outputs, epoch=epoch, caption=caption)

    entry.__doc__ = fn.__doc__
    return entry


def tsne_codes(store, outputs, caption="", *, split="test", seed=0) -> None:
    """Figure 1: t-SNE of the neural codes of one split, coloured by label.

    The codes are 0/1 vectors, so the squared Euclidean distance t-SNE uses is
    their Hamming distance. scikit-learn's Barnes-Hut t-SNE with PCA
    initialisation and ``random_state=seed``.

    Parameters
    ----------
    store : path-like
        Code store of one model at one epoch.
    outputs : list of path-like
        Files to write.
    caption : str, default=""
        Dataset, preset and model, shown under the title.
    split : str, default="test"
    seed : int, default=0
    """
    from sklearn.manifold import TSNE

    from .codes import read_codes

    codes = read_codes(store, split)
    bits = np.unpackbits(codes.packed, axis=1, count=codes.n_bits).astype(np.float32)
    xy = TSNE(n_components=2, init="pca", random_state=seed).fit_transform(bits)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    sns.scatterplot(
        x=xy[:, 0],
        y=xy[:, 1],
        hue=codes.labels,
        palette="tab10",
        s=6,
        linewidth=0,
        legend="full",
        ax=ax,
    )
    ax.set(xticks=[], yticks=[], xlabel="t-SNE 1", ylabel="t-SNE 2")
    ax.legend(title="label", fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    what = f"t-SNE of the neural codes ({len(bits)} {split} examples)"
    _title(ax, "1", what, caption, f"{codes.n_bits} bits, seed {seed}")
    _save(fig, outputs)


def _fig1(tables, outputs, caption="", *, model_id, epoch, seed=0) -> None:
    store = Path(_table_path(tables, "codes")) / model_id / f"e{epoch}.zarr"
    tsne_codes(store, outputs, f"{caption}; model {model_id}, epoch {epoch}", seed=seed)


def _fig11(tables, outputs, caption="") -> None:
    random_image(_table_path(tables, "dataset"), outputs, caption)


def _table5(tables, outputs, caption="", *, epochs) -> None:
    by_suffix = {Path(p).suffix: p for p in outputs}
    missing = sorted({".csv", ".md"} - set(by_suffix))
    if missing:
        raise ValueError(
            f"table5 writes .csv and .md; outputs {outputs} lack {missing}"
        )
    history = _table_path(tables, "history")
    random_label_table(history, by_suffix[".csv"], by_suffix[".md"], epochs, caption)


EPOCH_BY_WIDTH = View("epoch", "width", at_epoch=False)
SIZE_BY_WIDTH = View("train_size", "width", at_epoch=True)
WIDTH_BY_NOISE = View("width", "label_noise", at_epoch=True)
EPOCH_BY_LAYER = View("epoch", "layer", at_epoch=False)
SIZE_BY_LAYER_SET = View("train_size", "layer_set", at_epoch=True)

TEST = {"test": (SOLID, True)}
TRAIN_TEST = {"train": (DOTTED, True), "test": (SOLID, True)}
TEST_PROBES = {
    "test": (SOLID, True),
    "ball": (DOTTED, False),
    "uniform": (DASH_DOT, False),
}
TEST_PROBES_2F = {**TEST_PROBES, "ball": (DASHED, False)}
TRAIN_TEST_PROBES = {"train": (DASHED, True), **TEST_PROBES}


def _redundancy(label, view, splits):
    return partial(redundancy_figure, label=label, view=view, splits=splits)


def _accuracy(label, view):
    return partial(accuracy_figure, label=label, view=view)


def _regularisers(label, *metrics):
    return partial(regulariser_figure, label=label, metrics=metrics)


def _by_epoch(label):
    return partial(diameter_histograms_by_epoch, label=label)


def _by_source(label):
    return partial(diameter_histograms_by_source, label=label)


FIGURES = {
    "fig2a": _on_metric_table(redundancy_vs_width),
    "fig2b": _on_metric_table(accuracy_vs_width),
    "fig2c": diameter_vs_width,
    "fig2d": _by_epoch("2(d)"),
    "fig2e": _by_source("2(e)"),
    "fig2f": _redundancy("2(f)", EPOCH_BY_WIDTH, TEST_PROBES_2F),
    "fig3a": _redundancy("3(a)", EPOCH_BY_WIDTH, TEST_PROBES),
    "fig3b": _redundancy("3(b)", EPOCH_BY_WIDTH, TEST_PROBES),
    "fig3c": _accuracy("3(c)", EPOCH_BY_WIDTH),
    "fig4a": _redundancy("4(a)", SIZE_BY_WIDTH, TRAIN_TEST),
    "fig4b": _accuracy("4(b)", SIZE_BY_WIDTH),
    "fig5a": _redundancy("5(a)", EPOCH_BY_LAYER, TEST),
    "fig5b": _accuracy("5(b)", EPOCH_BY_LAYER),
    "fig5c": _redundancy("5(c)", SIZE_BY_LAYER_SET, TEST),
    "fig5d": _accuracy("5(d)", SIZE_BY_LAYER_SET),
    "fig6a": _regularisers("6(a)", "redundancy"),
    "fig6b": _regularisers("6(b)", "logreg"),
    "fig7a": _by_epoch("7(a)"),
    "fig7b": _by_source("7(b)"),
    "fig7c": _by_epoch("7(c)"),
    "fig7d": _by_source("7(d)"),
    "fig8a": _redundancy("8(a)", EPOCH_BY_WIDTH, TRAIN_TEST_PROBES),
    "fig8b": _accuracy("8(b)", EPOCH_BY_WIDTH),
    "fig9a": _redundancy("9(a)", SIZE_BY_WIDTH, TRAIN_TEST),
    "fig9b": _accuracy("9(b)", SIZE_BY_WIDTH),
    "fig10": _regularisers("10", "kmeans_purity", "knn"),
    "fig11": _fig11,
    "fig1": _fig1,
    "fig12a": _redundancy("12(a)", WIDTH_BY_NOISE, TRAIN_TEST),
    "fig12b": _accuracy("12(b)", WIDTH_BY_NOISE),
    "table5": _table5,
}
"""Target name -> ``fn(tables, outputs, caption="", **options)``."""
