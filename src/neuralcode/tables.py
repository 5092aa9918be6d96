"""Tables 1 and 2: classifiers on the neural codes of CNNs, beside the paper's.

Each table is written three ways from one summary: CSV (numbers), Markdown
(the README and a quick look) and LaTeX (a manuscript). Our values are means
over seeds in percent; the paper's values stand in their own columns, copied
from its Tables 1 and 2, so a reader compares them row by row.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# name -> (label in the paper, {column: paper value in %}).
PAPER_TABLE1 = {
    "vgg18": ("VGG-18", {"kmeans_purity": 99.95, "knn": 99.33}),
    "resnet18": ("ResNet-18", {"kmeans_purity": 98.96, "knn": 99.32}),
    "resnet34": ("ResNet-34", {"kmeans_purity": 99.66, "knn": 99.49}),
    "resnext26": ("ResNeXt-26", {"kmeans_purity": 98.31, "knn": 99.24}),
    "densenet28": ("DenseNet-28", {"kmeans_purity": 69.87, "knn": 98.59}),
}
# The paper prints ResNet-18 and ResNet-20 on one line; read in order.
PAPER_TABLE2 = {
    "vgg19": ("VGG-19", {"logreg": 92.19, "network": 91.43}),
    "resnet18_cifar": ("ResNet-18", {"logreg": 89.55, "network": 90.42}),
    "resnet20": ("ResNet-20", {"logreg": 88.76, "network": 90.44}),
    "resnet32": ("ResNet-32", {"logreg": 89.05, "network": 90.45}),
}
TABLES = {
    "table1": {
        "paper": PAPER_TABLE1,
        "metrics": {"kmeans_purity": "K-Means acc", "knn": "K-NN acc"},
        "title": "Table 1: accuracy of K-Means and K-NN on the neural codes of CNNs",
    },
    "table2": {
        "paper": PAPER_TABLE2,
        "metrics": {"logreg": "LR acc", "network": "Test acc"},
        "title": "Table 2: accuracy of logistic regression on the neural codes "
        "of CNNs, and the networks' own test accuracy",
    },
}


def cnn_summary(metrics: pd.DataFrame, table: str, source: str) -> pd.DataFrame:
    """Our mean and sd (in %) per architecture and the paper's values.

    Parameters
    ----------
    metrics : DataFrame
        Metric table of a CNN experiment (``arch`` column, test split).
    table : {"table1", "table2"}
    source : str
        Name of the table for error messages.
    """
    spec = TABLES[table]
    rows = metrics[
        (metrics["split"] == "test")
        & metrics["metric"].isin(list(spec["metrics"]))
        & metrics["layers"].isin(["all", "network"])
    ]
    out = []
    # The paper's row order, then any architecture it does not have.
    present = list(rows["arch"].drop_duplicates())
    order = [a for a in spec["paper"] if a in present]
    order += [a for a in present if a not in spec["paper"]]
    for arch in order:
        label, paper = spec["paper"].get(arch, (arch, {}))
        row = {"architecture": label, "arch": arch}
        for metric in spec["metrics"]:
            values = rows[(rows["arch"] == arch) & (rows["metric"] == metric)]
            if values.empty:
                raise ValueError(f"{source} has no test {metric} rows for {arch}")
            row[f"{metric}_mean"] = 100 * values["value"].mean()
            row[f"{metric}_sd"] = 100 * values["value"].std(ddof=1)
            row[f"{metric}_paper"] = paper.get(metric)
        row["seeds"] = rows[rows["arch"] == arch]["seed"].nunique()
        out.append(row)
    if not out:
        raise ValueError(f"{source} has no test rows of {list(spec['metrics'])}")
    return pd.DataFrame(out)


def _cell(mean, sd) -> str:
    return f"{mean:.2f}" if pd.isna(sd) else f"{mean:.2f} ± {sd:.2f}"


def _paper(value) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.2f}"


def _header(table: str) -> list[str]:
    names = TABLES[table]["metrics"].values()
    return ["Architecture", *(f"{n} (ours)" for n in names)] + [
        f"{n} (paper)" for n in names
    ]


def _body(summary: pd.DataFrame, table: str) -> list[list[str]]:
    metrics = list(TABLES[table]["metrics"])
    return [
        [r["architecture"]]
        + [_cell(r[f"{m}_mean"], r[f"{m}_sd"]) for m in metrics]
        + [_paper(r[f"{m}_paper"]) for m in metrics]
        for _, r in summary.iterrows()
    ]


def to_markdown(summary: pd.DataFrame, table: str, caption: str) -> str:
    header = _header(table)
    lines = [
        f"{TABLES[table]['title']} ({caption})",
        "",
        "| " + " | ".join(header) + " |",
        "|---" + "|---:" * (len(header) - 1) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in _body(summary, table)]
    lines += ["", _note(summary, table), ""]
    return "\n".join(lines)


def to_latex(summary: pd.DataFrame, table: str, caption: str) -> str:
    header = _header(table)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_tex(TABLES[table]['title'])} ({_tex(caption)}). "
        rf"{_tex(_note(summary, table))}}}",
        r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
        r"\hline",
        " & ".join(_tex(h) for h in header) + r" \\",
        r"\hline",
    ]
    lines += [
        " & ".join(_tex(c) for c in cells) + r" \\" for cells in _body(summary, table)
    ]
    lines += [r"\hline", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _tex(text: str) -> str:
    for a, b in (("%", r"\%"), ("_", r"\_"), ("±", r"$\pm$"), ("&", r"\&")):
        text = text.replace(a, b)
    return text


def _note(summary: pd.DataFrame, table: str) -> str:
    """What the numbers are: over how many seeds, and which K-Means score."""
    seeds = sorted(set(summary["seeds"]))
    if seeds == [1]:
        spread = "one seed each (no sd)"
    else:
        spread = f"mean ± sd over {' or '.join(map(str, seeds))} seeds"
    note = f"Ours: test accuracy in %, {spread}"
    if any(m.startswith("kmeans") for m in TABLES[table]["metrics"]):
        note += "; K-Means uses the majority mapping (kmeans_purity), as the paper"
    return note + "."


def cnn_table(metrics_csv, outputs, table: str, caption: str = "") -> None:
    """Write Table 1 or 2 from a CNN experiment's metric table.

    Parameters
    ----------
    metrics_csv : path-like
        ``results/tables/<experiment>/metrics.csv``.
    outputs : list of path-like
        One ``.csv``, one ``.md`` and one ``.tex`` file.
    table : {"table1", "table2"}
    caption : str, default=""
        Dataset, preset, training and metric settings of the run.
    """
    by_suffix = {Path(p).suffix: Path(p) for p in outputs}
    if set(by_suffix) != {".csv", ".md", ".tex"}:
        raise ValueError(f"{table} writes .csv, .md and .tex; got {outputs}")
    summary = cnn_summary(pd.read_csv(metrics_csv), table, f"table {metrics_csv}")
    for path in by_suffix.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(by_suffix[".csv"], index=False)
    by_suffix[".md"].write_text(to_markdown(summary, table, caption), encoding="utf-8")
    by_suffix[".tex"].write_text(to_latex(summary, table, caption), encoding="utf-8")
