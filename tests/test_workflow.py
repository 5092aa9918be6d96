"""End-to-end runs of the Snakemake workflow on a tiny config in a temp dir."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

TINY = {
    "preset": "tiny",
    "experiments": {
        "width": {
            "dataset": "mnist5k",
            "widths": [3, 24],
            "seeds": [0, 1],
            "code_epochs": [0, 2],
            "training": {"epochs": 2},
        }
    },
    "metrics": {"kmeans_n_init": 2, "logreg_max_iter": 300},
}

pytestmark = pytest.mark.workflow


def snakemake(workdir, *args, timeout=300):
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    return subprocess.run(
        [*cmd, "--cores", "2", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_config(workdir, config):
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "config.yaml", "w") as fh:
        yaml.safe_dump(config, fh)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    write_config(workdir, TINY)
    result = snakemake(workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


def test_figures_and_table(tiny_run):
    for name in ("fig2a", "fig2b"):
        for ext in ("pdf", "png"):
            assert (tiny_run / f"results/figures/{name}.{ext}").stat().st_size > 1000
    table = pd.read_csv(tiny_run / "results/tables/width/metrics.csv")
    assert set(table["model_id"]) == {"w003-s0", "w003-s1", "w024-s0", "w024-s1"}
    assert set(table["epoch"]) == {0, 2}
    assert set(table["dataset"]) == {"mnist5k"}
    red = table[(table["metric"] == "redundancy") & (table["split"] == "test")]
    # 3 bits hold at most 8 codes: at least 992 of 1000 test codes repeat.
    assert (red[red["width"] == 3]["value"] >= 0.992).all()
    by_width = red.pivot_table(index=["seed", "epoch"], columns="width", values="value")
    assert (by_width[24] < by_width[3]).all()
    test_rows = table[table["split"] == "test"]
    for metric in ("kmeans_purity", "kmeans_hungarian", "knn", "logreg", "network"):
        values = test_rows[test_rows["metric"] == metric]["value"]
        assert len(values) == 8 and values.between(0, 1).all(), metric


def test_intermediates_are_cached_files(tiny_run):
    ckpt = tiny_run / "results/models/width/s0-g0/w024-s0/e2.pt"
    assert ckpt.is_file()
    assert (tiny_run / "results/codes/width/s0-g0/w024-s0/e2.zarr/zarr.json").is_file()
    assert (tiny_run / "results/data/mnist5k.npz").is_file()
    assert (tiny_run / "logs/models/width/s0-g0.log").is_file()
    assert (tiny_run / "benchmarks/models/width/s0-g0.tsv").is_file()


def test_second_run_schedules_nothing(tiny_run):
    result = snakemake(tiny_run, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def test_bad_config_stops_before_any_job(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(TINY))
    bad["experiments"]["width"]["widths"] = [3, 0]
    write_config(tmp_path, bad)
    result = snakemake(tmp_path)
    assert result.returncode != 0
    assert "experiments.width.widths[1]" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_offline_download_fails_with_instructions(tmp_path, closed_loopback_url):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["experiments"]["width"]["dataset"] = "mnist"
    config["datasets"] = {"mirrors": {"mnist": [closed_loopback_url]}}
    write_config(tmp_path, config)
    result = snakemake(tmp_path, "results/data/mnist.npz")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{closed_loopback_url}train-images-idx3-ubyte.gz" in out
    assert "place the files by hand" in out
    assert not (tmp_path / "resources/raw/mnist.json").exists()
    assert not (tmp_path / "results/data/mnist.npz").exists()


def test_key_order_and_spelled_out_defaults_rerun_nothing(tiny_run, tmp_path):
    import shutil

    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = yaml.safe_load(yaml.safe_dump(TINY))
    width = config["experiments"]["width"]
    # Same science: keys reordered, defaults written out.
    width["training"] = {"lr": 0.01, "batch_size": 128, "epochs": 2}
    config["metrics"] = {"logreg_max_iter": 300, "knn_k": 9, "kmeans_n_init": 2}
    config["experiments"]["width"] = dict(reversed(list(width.items())))
    with open(workdir / "config.yaml", "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    result = snakemake(workdir, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-2000:]

    # A real change of science reruns training and everything after it.
    width["training"]["lr"] = 0.001
    with open(workdir / "config.yaml", "w") as fh:
        yaml.safe_dump(config, fh)
    result = snakemake(workdir, "--dry-run")
    assert "train " in result.stdout or "train\n" in result.stdout


def _job_counts(output):
    """{rule: jobs} from the "Job stats" table of a dry run."""
    counts = {}
    lines = output.splitlines()
    start = lines.index("Job stats:") + 3
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_code_edits_rerun_only_the_rules_behind_them(tiny_run, tmp_path):
    import shutil

    code = tmp_path / "workflow"
    code.mkdir()
    for part in ("Snakefile", "rules", "scripts", "src", "schemas", "profiles", "envs"):
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, code / part, copy_function=shutil.copy)
        else:
            shutil.copy(REPO / part, code / part)
    # Every file newer than every output, as after a checkout.
    for path in code.rglob("*"):
        path.touch()
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)

    def dry_run():
        cmd = [str(SNAKEMAKE), "-s", str(code / "Snakefile"), "--directory"]
        result = subprocess.run(
            [*cmd, str(workdir), "--dry-run", "--cores", "2"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout + result.stderr

    # Fresh copies of every file (new modification times, same bytes), as
    # after a `git checkout`: nothing reruns.
    assert "Nothing to be done" in dry_run()

    def edit(module, text):
        path = code / "src/neuralcode" / module
        path.write_text(path.read_text() + text)

    # Comments are not code.
    edit("training.py", "\n# a comment\n")
    assert "Nothing to be done" in dry_run()

    edit("metrics.py", "\n_EDITED = 1\n")
    jobs = _job_counts(dry_run())
    assert jobs.get("code_metrics") == 2, jobs
    assert "train" not in jobs and "extract_codes" not in jobs

    # MLP jobs never run cnn.py; the CNN experiments' jobs would rerun.
    edit("cnn.py", "\n_EDITED = 1\n")
    assert "train" not in _job_counts(dry_run())
    edit("training.py", "\n_EDITED = 1\n")
    assert _job_counts(dry_run()).get("train") == 2


def _tiny(**extra):
    base = {"seeds": [0, 1], "code_epochs": [2]}
    if "archs" not in extra:  # widths apply to MLP grids only
        base["widths"] = [8, 16]
    return {**base, "training": {"epochs": 2}, **extra}


# Every experiment of the paper, shrunk to seconds: the histogram figures need
# widths 50, 60 and 70 in the diameter experiment.
TINY_ALL = {
    "preset": "tiny-all",
    "table5_epochs": [0, 2],
    "datasets": {"random": {"n_train": 300, "n_test": 100}},
    "experiments": {
        "width": _tiny(),
        "diameters": _tiny(
            widths=[50, 60, 70],
            seeds=[0],
            code_epochs=[],
            diameters={"epochs": [1, 2], "n_examples": 50, "probes": ["ball"]},
        ),
        "time_mnist": _tiny(code_epochs=[0, 1, 2], probes=["ball", "uniform"]),
        "time_cifar": _tiny(depth=3, code_epochs=[0, 2], probes=["ball"]),
        "size_mnist": _tiny(train_sizes=[20, 4000]),
        "size_cifar": _tiny(depth=3, train_sizes=[20, 4000]),
        "layers_time": _tiny(depth=3, widths=[8], code_epochs=[0, 2], layer_sets=True),
        "layers_size": _tiny(
            depth=3, widths=[8], train_sizes=[20, 4000], layer_sets=True
        ),
        "regularisers": _tiny(
            regularisers=["none", "batch_norm", "weight_decay", "grad_clip"]
        ),
        "label_noise": _tiny(label_noise=[0.0, 0.3]),
        "random_labels": _tiny(dataset="random", widths=[16], code_epochs=[]),
        "cnn_mnist": _tiny(
            dataset="mnist5k",
            archs=["densenet28", "resnet18"],
            multiplier=0.25,
            seeds=[0],
            code_epochs=[1],
            metrics={"drop_constant_columns": True, "logreg": False},
            training={"epochs": 1},
        ),
        "cnn_cifar": _tiny(
            dataset="digits",
            archs=["resnet20"],
            multiplier=0.25,
            code_epochs=[1],
            training={"epochs": 1, "optimizer": "sgd", "batch_size": 64},
        ),
    },
    "metrics": {"kmeans_n_init": 1, "logreg_max_iter": 100},
}


@pytest.fixture(scope="module")
def tiny_all_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_all")
    write_config(workdir, TINY_ALL)
    result = snakemake(workdir, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


def test_every_paper_artifact_is_drawn(tiny_all_run):
    figures = sorted(p.stem for p in (tiny_all_run / "results/figures").glob("*.png"))
    assert len(figures) == 30
    for name in figures:
        assert (tiny_all_run / f"results/figures/{name}.pdf").stat().st_size > 1000
    table5 = (tiny_all_run / "results/tables/table5.md").read_text()
    assert "Training acc (%)" in table5


def test_cnn_tables_beside_the_papers(tiny_all_run):
    tables = tiny_all_run / "results/tables"
    table1 = pd.read_csv(tables / "table1.csv")
    assert list(table1["arch"]) == ["resnet18", "densenet28"]  # the paper's order
    assert table1["knn_paper"].tolist() == [99.32, 98.59]
    assert table1["knn_mean"].between(0, 100).all()
    table2 = pd.read_csv(tables / "table2.csv")
    assert table2["seeds"].tolist() == [2]
    assert "constant bits removed" in (tables / "table1.md").read_text()
    assert "\\begin{tabular}" in (tables / "table2.tex").read_text()
    metrics = pd.read_csv(tables / "cnn_mnist/metrics.csv")
    assert "logreg" not in set(metrics["metric"])  # switched off for Table 1
    assert set(metrics["arch"]) == {"densenet28", "resnet18"}


def test_variant_tables_hold_their_grids(tiny_all_run):
    def table(name):
        return pd.read_csv(tiny_all_run / f"results/tables/{name}/metrics.csv")

    reg = table("regularisers")
    assert set(reg["regulariser"]) == {
        "none",
        "batch_norm",
        "weight_decay",
        "grad_clip",
    }
    assert set(reg[reg["regulariser"] == "batch_norm"]["batch_norm"]) == {True}
    size = table("size_mnist")
    train_red = size[(size["metric"] == "redundancy") & (size["split"] == "train")]
    assert set(train_red["train_size"]) == {20, 4000}
    assert set(table("label_noise")["label_noise"]) == {0.0, 0.3}
    layers = table("layers_time")
    assert {"layer1", "layer3", "first2", "last2", "all"} <= set(layers["layers"])
    probes = table("time_mnist")
    probe_rows = probes[probes["split"].isin(["ball", "uniform"])]
    assert set(probe_rows["metric"]) == {"redundancy"}
    assert set(probe_rows["epoch"]) == {0, 1, 2}

    diam = pd.read_csv(tiny_all_run / "results/tables/diameters/diameters.csv")
    assert set(diam["source"]) == {"test", "ball"}
    assert len(diam) == 3 * 2 * 2 * 50  # widths x epochs x sources x examples
    assert (diam["diameter"] > 0).all()
    history = pd.read_csv(tiny_all_run / "results/tables/random_labels/history.csv")
    assert set(history["epoch"]) == {0, 1, 2}
