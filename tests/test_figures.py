"""Figures and Table 5 drawn from small synthetic tables with the pipeline's columns."""

import itertools

import numpy as np
import pandas as pd
import pytest

from neuralcode import figures
from neuralcode.figures import FIGURES, paired_regulariser_values

ACCURACY = ["kmeans_purity", "kmeans_hungarian", "knn", "logreg", "network"]
PROBES = ["ball", "uniform"]
LAYERS = ["all", *(f"{end}{k}" for end in ("layer", "first", "last") for k in (1, 2))]
MODEL = {
    "experiment": "synthetic",
    "dataset": "mnist",
    "depth": 2,
    "regulariser": "none",
    "train_size": 1000,
    "label_noise": 0.0,
    "epoch": 10,
    "layers": "all",
    "n_bits": 80,
    "setting": "synthetic",
    "n_bits_used": 70,
    "extra_column": "ignored",
}


def _model_ids(df) -> pd.Series:
    keys = ["width", "seed", "train_size", "regulariser", "label_noise"]
    return df[keys].astype(str).agg("-".join, axis=1)


def metric_table(path, rng, splits=("train", "test", *PROBES), **axes):
    """Tidy metric rows for every combination of ``axes`` (seeds, widths...)."""
    axes = {"seed": [0, 1], "width": [10, 20, 40], **axes}
    rows = []
    for combo in itertools.product(*axes.values()):
        model = {**MODEL, **dict(zip(axes, combo, strict=True))}
        for split in splits:
            for metric in ["redundancy"] + ([] if split in PROBES else ACCURACY):
                rows.append({**model, "split": split, "metric": metric})
    df = pd.DataFrame(rows)
    df = df.assign(
        model_id=_model_ids(df),
        batch_norm=df["regulariser"].eq("batch_norm"),
        value=rng.uniform(size=len(df)),
    )
    df.to_csv(path, index=False)
    return path


def diameter_table(path, rng):
    rows = [
        {"experiment": "synthetic", "dataset": "mnist", "depth": 1, "seed": s}
        | {"width": w, "epoch": e, "source": src, "example": i}
        for s, w, e, src, i in itertools.product(
            [0, 1], [50, 60, 70], [10, 500], ["test", *PROBES], range(20)
        )
    ]
    df = pd.DataFrame(rows)
    diameter = rng.exponential(size=len(df))
    diameter[:3] = np.inf  # uncapped searches that never changed a code
    df = df.assign(
        model_id=df["width"].astype(str) + "-" + df["seed"].astype(str),
        diameter=diameter,
        t_lo=0.0,
        t_hi=8.0,
        capped=np.arange(len(df)) % 50 == 7,
    )
    df.to_csv(path, index=False)
    return path


def history_table(path, rows):
    """History rows ``(model_id, seed, width, epoch, train_accuracy, train_loss)``."""
    df = pd.DataFrame(
        rows,
        columns=["model_id", "seed", "width", "epoch", "train_accuracy", "train_loss"],
    )
    df = df.assign(
        experiment="random",
        dataset="random",
        lr=1e-3,
        test_loss=2.3,
        test_accuracy=0.1,
        seconds=1.0,
    )
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Synthetic tables of every kind, named by experiment."""
    root = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(0)
    regs = ["none", "batch_norm", "grad_clip", "weight_decay"]
    dataset = root / "dataset.npz"
    np.savez(
        dataset,
        x_train=rng.integers(0, 256, (3, 8, 8, 1), dtype=np.uint8),
        y_train=np.array([7, 1, 2]),
    )
    history = [
        (f"m{s}", s, 100, e, 0.1 + 0.01 * e, 2.3) for s in (0, 1) for e in range(4)
    ]
    return {
        "width": metric_table(root / "width.csv", rng, splits=("train", "test")),
        "time": metric_table(root / "time.csv", rng, epoch=[0, 1, 5, 10]),
        "size": metric_table(
            root / "size.csv", rng, train_size=[100, 1000, 10000], epoch=[5, 10]
        ),
        "layers": metric_table(
            root / "layers.csv",
            rng,
            width=[40],
            epoch=[0, 5, 10],
            layers=LAYERS,
            train_size=[100, 1000],
        ),
        "reg": metric_table(root / "reg.csv", rng, regulariser=regs),
        "noise": metric_table(root / "noise.csv", rng, label_noise=[0.0, 0.1, 0.2]),
        "diameters": diameter_table(root / "diameters.csv", rng),
        "history": history_table(root / "history.csv", history),
        "dataset": dataset,
        "codes": code_stores(root / "codes", rng),
    }


def code_stores(root, rng):
    """A group's code directory with the store of model m0 at epoch 3."""
    import torch

    from neuralcode.checkpoints import save_checkpoint
    from neuralcode.extraction import extract_codes
    from neuralcode.models import MLP, MLPConfig

    torch.manual_seed(0)
    model = MLP(MLPConfig(input_dim=4, width=12))
    ckpt = root / "m0.pt"
    save_checkpoint(
        ckpt,
        model=model,
        model_id="m0",
        model_config=model.config.to_dict(),
        seed=0,
        epoch=3,
    )
    images = rng.integers(0, 256, (80, 2, 2, 1), dtype=np.uint8)
    splits = {"test": (images, rng.integers(0, 10, 80))}
    extract_codes(ckpt, splits, root / "m0/e3.zarr", device="cpu")
    return root


# Target -> (table kind, experiment, options)
CASES = {
    "fig2a": ("metrics", "width", {"epoch": 10}),
    "fig2b": ("metrics", "width", {"epoch": 10}),
    "fig2c": ("diameters", "diameters", {"epoch": 500}),
    "fig2d": ("diameters", "diameters", {"width": 50, "early": 10, "late": 500}),
    "fig2e": ("diameters", "diameters", {"width": 50, "epoch": 500}),
    "fig2f": ("metrics", "time", {}),
    "fig3a": ("metrics", "time", {}),
    "fig3b": ("metrics", "time", {}),
    "fig3c": ("metrics", "time", {}),
    "fig4a": ("metrics", "size", {"epoch": 10}),
    "fig4b": ("metrics", "size", {"epoch": 10}),
    "fig5a": ("metrics", "layers", {"where": {"train_size": 1000}}),
    "fig5b": ("metrics", "layers", {"where": {"train_size": 1000}}),
    "fig5c": ("metrics", "layers", {"epoch": 10}),
    "fig5d": ("metrics", "layers", {"epoch": 10}),
    "fig6a": ("metrics", "reg", {"epoch": 10}),
    "fig6b": ("metrics", "reg", {"epoch": 10}),
    "fig7a": ("diameters", "diameters", {"width": 60, "early": 10, "late": 500}),
    "fig7b": ("diameters", "diameters", {"width": 60, "epoch": 500, "probe": "ball"}),
    "fig7c": ("diameters", "diameters", {"width": 70, "early": 10, "late": 500}),
    "fig7d": (
        "diameters",
        "diameters",
        {"width": 70, "epoch": 500, "probe": "uniform"},
    ),
    "fig8a": ("metrics", "time", {}),
    "fig8b": ("metrics", "time", {}),
    "fig9a": ("metrics", "size", {"epoch": 10}),
    "fig9b": ("metrics", "size", {"epoch": 10}),
    "fig10": ("metrics", "reg", {"epoch": 10}),
    "fig11": ("dataset", "dataset", {}),
    "fig1": ("codes", "codes", {"model_id": "m0", "epoch": 3}),
    "fig12a": ("metrics", "noise", {"epoch": 10}),
    "fig12b": ("metrics", "noise", {"epoch": 10}),
}
CAPTION = "mnist, preset synthetic, 2 seeds"


def test_every_target_has_a_case():
    assert set(FIGURES) == set(CASES) | {"table5"}


@pytest.fixture
def drawn(monkeypatch):
    """Record the title texts and legends of every figure saved."""
    seen = []
    save = figures._save

    def spy(fig, outputs):
        texts = [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]
        legends = [ax.get_legend() is not None for ax in fig.axes]
        seen.append((texts, any(legends), len(fig.axes)))
        save(fig, outputs)

    monkeypatch.setattr(figures, "_save", spy)
    return seen


@pytest.mark.parametrize("name", list(CASES))
def test_target_draws_pdf_and_png(name, tables, tmp_path, drawn):
    kind, experiment, options = CASES[name]
    outputs = [tmp_path / f"{name}.pdf", tmp_path / f"{name}.png"]
    FIGURES[name]({kind: tables[experiment]}, outputs, CAPTION, **options)
    assert all(p.stat().st_size > 1000 for p in outputs)
    [(texts, has_legend, n_axes)] = drawn
    number = name.removeprefix("fig")
    label = (
        f"Fig. {number[:-1]}({number[-1]})"
        if number[-1].isalpha()
        else f"Fig. {number}"
    )
    assert any(t.startswith(label) and CAPTION in t for t in texts), texts
    # Figure 11 shows an image: a colour bar (a second axes) stands for the legend.
    assert has_legend or (name == "fig11" and n_axes == 2)


def test_kmeans_score_is_named(tables, tmp_path, drawn):
    FIGURES["fig3c"]({"metrics": tables["time"]}, [tmp_path / "f.png"], CAPTION)
    [(texts, _, _)] = drawn
    assert "majority mapping (kmeans_purity)" in texts[0]


def test_capped_and_infinite_diameters_are_reported(tables, tmp_path, drawn):
    FIGURES["fig2c"]({"diameters": tables["diameters"]}, [tmp_path / "f.png"], epoch=10)
    [(texts, _, _)] = drawn
    assert "capped" in texts[1] and "3 infinite diameters left out" in texts[1]


def _drop(path, tmp_path, **where):
    """Copy of a table without the rows matching ``where``."""
    df = pd.read_csv(path)
    mask = np.logical_and.reduce([df[c].isin(v) for c, v in where.items()])
    out = tmp_path / "partial.csv"
    df[~mask].to_csv(out, index=False)
    return out


@pytest.mark.parametrize(
    ("name", "experiment", "drop", "options", "match"),
    [
        ("fig2a", "width", {"split": ["train"]}, {"epoch": 10}, "train"),
        ("fig2f", "time", {"split": ["test"]}, {}, "test"),
        ("fig3c", "time", {"metric": ["knn"]}, {}, "knn"),
        ("fig4a", "size", {"epoch": [10]}, {"epoch": 10}, "epoch"),
        ("fig5a", "layers", {"layers": ["layer1", "layer2"]}, {}, "single layers"),
        ("fig5c", "layers", {"epoch": [10]}, {"epoch": 10}, "epoch"),
        ("fig6a", "reg", {"regulariser": ["grad_clip"]}, {"epoch": 10}, "grad_clip"),
        ("fig12b", "noise", {"metric": ["logreg"]}, {"epoch": 10}, "logreg"),
        (
            "fig2d",
            "diameters",
            {"width": [60]},
            {"width": 60, "early": 10, "late": 500},
            "60",
        ),
        (
            "fig2e",
            "diameters",
            {"source": ["ball"]},
            {"width": 50, "epoch": 500},
            "ball",
        ),
    ],
)
def test_missing_rows_raise(name, experiment, drop, options, match, tables, tmp_path):
    kind = CASES[name][0]
    table = _drop(tables[experiment], tmp_path, **drop)
    with pytest.raises(ValueError, match=match) as error:
        FIGURES[name]({kind: table}, [tmp_path / "f.png"], **options)
    assert str(table) in str(error.value)
    assert not (tmp_path / "f.png").exists()


def test_rows_of_several_settings_are_not_averaged(tables, tmp_path):
    # The layer table holds two sample sizes at every epoch.
    with pytest.raises(ValueError, match="train_size"):
        FIGURES["fig5a"]({"metrics": tables["layers"]}, [tmp_path / "f.png"])


def test_missing_table_kind_raises(tables, tmp_path):
    with pytest.raises(ValueError, match="'metrics' table"):
        FIGURES["fig3a"]({"diameters": tables["diameters"]}, [tmp_path / "f.png"])


def test_paired_regulariser_values():
    def row(regulariser, width, seed, value, **other):
        model = {"regulariser": regulariser, "width": width, "seed": seed}
        base = {"metric": "redundancy", "split": "test", "epoch": 10, "layers": "all"}
        return {**base, **model, "value": value, "model_id": "m", **other}

    df = pd.DataFrame(
        [
            row("none", 10, 0, 0.1),
            row("none", 10, 1, 0.2),
            row("none", 20, 0, 0.3),  # no batch-norm partner
            row("batch_norm", 10, 1, 0.6),
            row("batch_norm", 10, 0, 0.5),
            row("batch_norm", 30, 0, 0.9),  # no partner without regulariser
            row("batch_norm", 20, 0, 0.7, epoch=5),  # other epoch
            row("batch_norm", 20, 0, 0.8, split="train"),
            row("batch_norm", 20, 0, 0.4, layers="layer1"),
            row("grad_clip", 20, 0, 0.95),
            row("none", 20, 0, 0.05, metric="logreg"),
        ]
    )
    pairs = paired_regulariser_values(df, "redundancy", "batch_norm", epoch=10)
    expected = pd.DataFrame(
        {"width": [10, 10], "seed": [0, 1], "without": [0.1, 0.2], "with": [0.5, 0.6]}
    )
    pd.testing.assert_frame_equal(pairs, expected)
    with pytest.raises(ValueError, match="weight_decay"):
        paired_regulariser_values(df, "redundancy", "weight_decay", epoch=10)


def test_table5_numbers_and_markdown(tmp_path):
    history = history_table(
        tmp_path / "history.csv",
        [
            ("a", 0, 100, 0, 0.1, 2.3),
            ("b", 1, 100, 0, 0.2, 2.4),
            ("a", 0, 100, 1, 0.3, 2.0),
            ("b", 1, 100, 1, 0.5, 1.0),
            ("a", 0, 100, 2, 0.9, 0.1),
        ],
    )
    out_csv, out_md = tmp_path / "t5.csv", tmp_path / "t5.md"
    FIGURES["table5"]({"history": history}, [out_csv, out_md], CAPTION, epochs=[0, 1])
    got = pd.read_csv(out_csv).set_index("epoch")
    assert got.loc[0, "train_accuracy_pct_mean"] == 15.0
    assert got.loc[0, "train_accuracy_pct_sd"] == round(np.sqrt(50), 6)
    assert got.loc[1, "train_accuracy_pct_mean"] == 40.0
    assert got.loc[0, "train_loss_mean"] == 2.35
    assert got.loc[1, "train_loss_mean"] == 1.5
    assert got["n_models"].tolist() == [2, 2]
    lines = out_md.read_text().splitlines()
    assert "| Epoch | 0 | 1 |" in lines
    assert "| Training acc (%) | 15.00 ± 7.07 | 40.00 ± 14.14 |" in lines
    assert any(line.startswith("| Loss | 2.3500 ± 0.0707 |") for line in lines)
    assert any("mean cross-entropy per training example" in line for line in lines)


def test_table5_missing_epoch_raises(tmp_path):
    history = history_table(tmp_path / "h.csv", [("a", 0, 100, 0, 0.1, 2.3)])
    with pytest.raises(ValueError, match=r"epoch.*500"):
        figures.random_label_table(
            history, tmp_path / "t.csv", tmp_path / "t.md", epochs=[0, 500]
        )


def test_labels_count_in_the_singular_and_plural():
    from neuralcode.figures import _counted, _labelled

    assert [_counted(n, "epoch") for n in (0, 1, 2)] == [
        "0 epochs",
        "1 epoch",
        "2 epochs",
    ]
    df = pd.DataFrame({"epoch": [30, 1, 30]})
    out, order = _labelled(df, "epoch", "trained for", lambda e: _counted(e, "epoch"))
    assert order == ["1 epoch", "30 epochs"]
    assert list(out["trained for"]) == ["30 epochs", "1 epoch", "30 epochs"]
