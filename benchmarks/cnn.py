"""Time and peak memory of code extraction and metrics per CNN of the quick preset.

    make run                             # trains the quick preset's CNNs first
    .venv/bin/python benchmarks/cnn.py   # writes benchmarks/CNN.md

Each model's extraction and metrics run in a fresh process, which reports its
own wall time and peak resident memory, so the numbers are per model. Training
time comes from the per-epoch ``seconds`` the workflow logged. The paper-preset
estimate scales the measured times by the work each step does (stated with the
numbers). Not part of the tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from neuralcode.config import experiment_models, training_groups, validate_config

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = ("cnn_mnist", "cnn_cifar")
# Paper preset sizes: MNIST 60,000 / 10,000, CIFAR-10 50,000 / 10,000 codes.
PAPER_SIZES = {"cnn_mnist": (60000, 10000), "cnn_cifar": (50000, 10000)}

CHILD = """
import json, resource, sys, time
from neuralcode.stages.extract import run_extraction
from neuralcode.stages.measure import store_metrics
a = json.loads(sys.argv[1])
tic = time.perf_counter()
if a["step"] == "extract":
    run_extraction(a["models"], a["data"], a["out"], [[a["model"], a["epoch"]]])
else:
    store_metrics(a["store"], a["settings"], "b", model={"model_id": a["model"]})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.perf_counter() - tic, "peak_mb": peak}))
"""


def child(**args) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(name: str, exp: dict, metrics: dict, tmp: Path) -> list[dict]:
    epoch = exp["code_epochs"][-1]
    settings = {**metrics, **exp["metrics"]}
    data = REPO / f"results/data/{exp['dataset']}.npz"
    group = training_groups(name, exp)[0]["name"].removeprefix(f"{name}-")
    models_dir = REPO / f"results/models/{name}/{group}"
    rows = []
    for m in experiment_models(name, exp)[: len(exp["archs"])]:
        model = m["model_id"]
        if not (models_dir / model / f"e{epoch}.pt").is_file():
            sys.exit(f"{models_dir / model} has no e{epoch}.pt: run `make run` first")
        out = tmp / name
        ext = child(
            step="extract",
            models=str(models_dir),
            data=str(data),
            out=str(out),
            model=model,
            epoch=epoch,
        )
        store = out / model / f"e{epoch}.zarr"
        met = child(step="metrics", store=str(store), settings=settings, model=model)
        history = pd.read_csv(models_dir / model / "history.csv")
        attrs = json.loads((store / "zarr.json").read_text())["attributes"]
        rows.append(
            {
                "experiment": name,
                "model": model,
                "dataset": exp["dataset"],
                "bits": sum(layer["n_bits"] for layer in attrs["layers"]),
                "n_train": attrs["splits"]["train"],
                "n_test": attrs["splits"]["test"],
                "train_s_per_epoch": history["seconds"].iloc[1:].mean(),
                "extract_s": ext["seconds"],
                "extract_peak_mb": ext["peak_mb"],
                "metrics_s": met["seconds"],
                "metrics_peak_mb": met["peak_mb"],
                "multiplier": exp["multiplier"],
            }
        )
        print(rows[-1], flush=True)
    return rows


def paper_estimate(row: dict) -> dict:
    """Scale one measured row to the paper preset (multiplier 1, full data).

    Code bits at the paper's scale are those of the net at multiplier 1.0 on
    its native input (28x28 or 32x32), counted by a forward pass. Extraction,
    K-Means and logistic regression grow with codes x bits; K-NN with
    train x test x bits. We scale the whole metrics time by the K-Means/LR
    factor and report the K-NN factor beside it: a range, not a measurement.
    """
    from neuralcode.cnn import code_bits, native_config

    n_train, n_test = PAPER_SIZES[row["experiment"]]
    arch = row["model"].rsplit("-s", 1)[0]
    bits = sum(n for _, n in code_bits(native_config(arch)))
    codes = (n_train + n_test) / (row["n_train"] + row["n_test"])
    width = bits / row["bits"]
    return {
        "paper_bits": round(bits),
        "paper_store_mb": (n_train + n_test) * bits / 8 / 2**20,
        "paper_dense_gb": n_train * bits * 4 / 2**30,
        "paper_extract_min": row["extract_s"] * codes * width / 60,
        "paper_metrics_min": row["metrics_s"] * codes * width / 60,
        "knn_factor": n_train * n_test / (row["n_train"] * row["n_test"]) * width,
    }


def main():
    with open(REPO / "config.yaml") as fh:
        config = validate_config(yaml.safe_load(fh))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in EXPERIMENTS:
            if name in config["experiments"]:
                exp = config["experiments"][name]
                rows += measure(name, exp, config["metrics"], Path(tmp))
    df = pd.DataFrame([{**r, **paper_estimate(r)} for r in rows])
    lines = [
        "# CNN codes: time and memory per model",
        "",
        "Measured by `benchmarks/cnn.py` on the quick preset's CNNs (one process",
        "per model and step; peak = the process's maximum resident memory).",
        "",
        "| model | dataset | code bits | train s/epoch | extract s | extract peak MB "
        "| metrics s | metrics peak MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['bits']:,} | "
            f"{r['train_s_per_epoch']:.1f} | {r['extract_s']:.1f} | "
            f"{r['extract_peak_mb']:.0f} | {r['metrics_s']:.1f} | "
            f"{r['metrics_peak_mb']:.0f} |"
        )
    lines += [
        "",
        "## Estimate for the paper preset (not measured)",
        "",
        paper_estimate.__doc__.strip().replace("\n    ", " "),
        "Above 2 GB of float32 codes the metrics switch to the chunked solvers,",
        "which bounds their memory but not their time.",
        "",
        "| model | code bits | store MB | float32 train codes GB | extract min "
        "| metrics min | K-NN work factor |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for _, r in df.iterrows():
        lines.append(
            f"| {r['model']} | {r['paper_bits']:,} | {r['paper_store_mb']:,.0f} | "
            f"{r['paper_dense_gb']:.1f} | {r['paper_extract_min']:.0f} | "
            f"{r['paper_metrics_min']:.0f} | {r['knn_factor']:,.0f}x |"
        )
    out = REPO / "benchmarks" / "CNN.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
