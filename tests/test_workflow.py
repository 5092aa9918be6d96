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
    assert (tiny_run / "results/codes/width/w024-s0/e2.zarr/zarr.json").is_file()
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
