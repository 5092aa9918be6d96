"""Tables 1 and 2 from hand-made metric rows."""

import pandas as pd
import pytest

from neuralcode.tables import cnn_summary, cnn_table


def rows(arch, seed, values, split="test", layers="all"):
    return [
        {
            "arch": arch,
            "seed": seed,
            "split": split,
            "layers": layers,
            "metric": m,
            "value": v,
        }
        for m, v in values.items()
    ]


@pytest.fixture
def metrics():
    data = (
        rows("vgg18", 0, {"kmeans_purity": 0.90, "knn": 0.95, "logreg": 0.5})
        + rows("vgg18", 1, {"kmeans_purity": 0.80, "knn": 0.97})
        + rows("vgg18", 0, {"kmeans_purity": 0.10}, split="train")
        + rows("vgg18", 0, {"knn": 0.10}, layers="layer1")
        + rows("mine", 0, {"kmeans_purity": 0.5, "knn": 0.6})
    )
    return pd.DataFrame(data)


def test_table1_means_in_percent_beside_the_papers(metrics):
    summary = cnn_summary(metrics, "table1", "t").set_index("arch")
    vgg = summary.loc["vgg18"]
    assert vgg["architecture"] == "VGG-18"
    assert vgg["kmeans_purity_mean"] == pytest.approx(
        85.0
    )  # train and layer rows left out
    assert vgg["knn_mean"] == pytest.approx(96.0)
    assert vgg["knn_sd"] == pytest.approx(pd.Series([95.0, 97.0]).std())
    assert vgg["kmeans_purity_paper"] == 99.95 and vgg["knn_paper"] == 99.33
    assert vgg["seeds"] == 2
    # An architecture the paper does not have keeps its name and no paper value.
    assert summary.loc["mine"]["architecture"] == "mine"
    assert pd.isna(summary.loc["mine"]["knn_paper"])


def test_missing_rows_name_the_metric(metrics):
    with pytest.raises(ValueError, match="no test network rows for vgg18"):
        cnn_summary(
            pd.concat([metrics, pd.DataFrame(rows("vgg18", 0, {"logreg": 0.4}))]),
            "table2",
            "t",
        )


def test_three_formats_are_written(metrics, tmp_path):
    out = [tmp_path / "t1.csv", tmp_path / "t1.md", tmp_path / "t1.tex"]
    src = tmp_path / "m.csv"
    metrics.to_csv(src, index=False)
    cnn_table(src, out, "table1", caption="mnist5k, preset quick")
    md = out[1].read_text()
    assert "| VGG-18 | 85.00 ± 7.07 | 96.00 ± 1.41 | 99.95 | 99.33 |" in md
    tex = out[2].read_text()
    assert r"VGG-18 & 85.00 $\pm$ 7.07 & 96.00 $\pm$ 1.41 & 99.95 & 99.33 \\" in tex
    assert "mnist5k, preset quick" in tex and "\\%" in tex
    assert len(pd.read_csv(out[0])) == 2
    with pytest.raises(ValueError, match=r"\.csv, \.md and \.tex"):
        cnn_table(src, out[:2], "table1")


def test_note_names_only_what_the_table_shows():
    import pandas as pd

    from neuralcode.tables import _note

    one = pd.DataFrame({"seeds": [1, 1]})
    assert _note(one, "table1") == (
        "Ours: test accuracy in %, one seed each (no sd); K-Means uses the "
        "majority mapping (kmeans_purity), as the paper."
    )
    assert "K-Means" not in _note(one, "table2")
    assert "mean ± sd over 3 seeds" in _note(pd.DataFrame({"seeds": [3, 3]}), "table2")
