"""The workflow on a real single-node Slurm through profiles/slurm.

A module fixture starts Slurm (tests/slurm_cluster.py) and runs a tiny config
three times: through Slurm with CPU fallback off (training must fail: the node
grants a GPU that torch cannot see), through Slurm again with fallback on, and
locally with the default profile. The tests compare what each run left.
sbatch is wrapped by a shim that logs its arguments, so the flags the
executor plugin sends are checked as sent.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm_cluster import (
    DEFAULT_CONF,
    INIT_STATUS_WAIT,
    SlurmCluster,
    SlurmUnavailable,
    ensure_packages,
)

from neuralcode.codes import read_codes

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
PROFILE = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())

# One training group (one seed), so the Slurm jobs are: prepare_dataset,
# train, extract_codes, code_metrics; tables and figures run locally.
TINY = {
    "preset": "tiny-slurm",
    "experiments": {
        "width": {
            "dataset": "mnist5k",
            "widths": [3, 16],
            "seeds": [0],
            "code_epochs": [0, 1],
            "training": {"epochs": 1},
        }
    },
    "metrics": {"kmeans_n_init": 1, "logreg_max_iter": 200},
    "compute": {"allow_cpu_fallback": False},
}
CLUSTER_JOBS = {"prepare_dataset", "train", "extract_codes", "code_metrics"}
GPU_RULES = {r for r, res in PROFILE["set-resources"].items() if res.get("gpu")}

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]


def write_config(workdir, config):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def sbatch_shim(bin_dir, log):
    """An `sbatch` first on PATH that records its arguments, then runs the
    real one."""
    real = subprocess.run(
        ["bash", "-c", "command -v sbatch"], capture_output=True, text=True
    ).stdout.strip()
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "sbatch"
    shim.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {shlex.quote(str(log))}\n'
        f'exec {shlex.quote(real)} "$@"\n'
    )
    shim.chmod(0o755)


def run(workdir, *args, env=None, limit=420):
    """Snakemake in `workdir`, killed with its process group after `limit`
    seconds (a lost Slurm job must not hang the suite)."""
    cmd = [
        "timeout",
        "--kill-after=15",
        str(limit),
        str(SNAKEMAKE),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert result.returncode != 124, "timed out:\n" + result.stderr[-4000:]
    return result


def test_hand_started_cluster_stops_everything_on_sigterm():
    """`python tests/slurm_cluster.py` in the background, stopped by `kill`."""
    import signal
    import time

    try:
        ensure_packages()
    except SlurmUnavailable as err:
        pytest.skip(f"no Slurm here: {err}")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests/slurm_cluster.py")],
        stdout=subprocess.PIPE,
        text=True,
        # As a shell starts a background job: SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("Slurm up"), line
        conf = line.split("SLURM_CONF=")[1].split()[0]
        daemons = subprocess.run(
            ["pgrep", "-f", conf], capture_output=True, text=True
        ).stdout.split()
        assert len(daemons) == 2  # slurmctld and slurmd name the config
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)  # a second signal during clean-up
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(1)
    assert subprocess.run(["pgrep", "-f", conf]).returncode == 1, "daemons left"
    assert not Path(conf).exists()
    assert not DEFAULT_CONF.exists()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except SlurmUnavailable as err:
        pytest.skip(f"no Slurm here: {err}")
    yield cluster
    cluster.stop()
    assert cluster.running() == [], "daemons left running"


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    sbatch_log = base / "sbatch-args.txt"
    sbatch_shim(base / "bin", sbatch_log)
    env = {**cluster.env}
    env["PATH"] = f"{base / 'bin'}{os.pathsep}{env['PATH']}"
    slurm_args = [
        "--workflow-profile",
        str(REPO / "profiles/slurm"),
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        str(INIT_STATUS_WAIT),
        "--slurm-no-account",
        "--latency-wait",
        "5",
        "--retries",
        "0",
        "--jobs",
        "2",
    ]
    on_slurm = base / "slurm"
    write_config(on_slurm, TINY)
    refused = run(on_slurm, *slurm_args, env=env)
    train_log = on_slurm / "logs/models/width/s0-g0.log"
    refused_log = train_log.read_text() if train_log.exists() else ""
    # Same directory, fallback allowed: the dataset prepared above is reused.
    write_config(on_slurm, {**TINY, "compute": {"allow_cpu_fallback": True}})
    done = run(on_slurm, *slurm_args, env=env)
    done_log = train_log.read_text() if train_log.exists() else ""
    again = run(on_slurm, *slurm_args, "-n", env=env)
    jobs = cluster.jobs()
    # The local reference uses the profile's threads: CPU float sums depend on
    # the thread count.
    local = base / "local"
    write_config(local, {**TINY, "compute": {"allow_cpu_fallback": True}})
    threads = [f"{rule}={n}" for rule, n in PROFILE["set-threads"].items()]
    reference = run(local, "--cores", "4", "--set-threads", *threads)
    return {
        "refused": refused,
        "refused_log": refused_log,
        "done": done,
        "done_log": done_log,
        "again": again,
        "reference": reference,
        "slurm_dir": on_slurm,
        "local_dir": local,
        "sbatch": sbatch_log.read_text().splitlines() if sbatch_log.exists() else [],
        "jobs": jobs,
    }


def _rule_of(sbatch_args):
    for token in shlex.split(sbatch_args):
        if token.startswith("rule_"):
            return token.removeprefix("rule_").split("_wildcards")[0]
    return None


def test_gpu_job_without_gpu_fails_clearly(runs):
    refused = runs["refused"]
    assert refused.returncode != 0
    log = runs["refused_log"]
    assert "asked for a GPU but torch sees none" in log
    # Slurm set the granted (fake) device for the job.
    assert "CUDA_VISIBLE_DEVICES='0'" in log
    assert "allow CPU fallback" in log


def test_fallback_run_completes_and_second_run_does_nothing(runs):
    done, again = runs["done"], runs["again"]
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Nothing to be done" in again.stdout + again.stderr
    assert "running on the CPU because compute.allow_cpu_fallback" in runs["done_log"]
    for ext in ("pdf", "png"):
        assert (runs["slurm_dir"] / f"results/figures/fig2a.{ext}").is_file()


def test_jobs_went_through_slurm_with_gpu_flags(runs):
    calls = [(_rule_of(args), args) for args in runs["sbatch"]]
    rules = [rule for rule, _ in calls]
    # Refused run: prepare_dataset and train; second run: the rest.
    assert sorted(set(rules)) == sorted(CLUSTER_JOBS)
    assert rules.count("prepare_dataset") == 1, "cached dataset was prepared again"
    assert rules.count("train") == 2
    for rule, args in calls:
        wants_gpu = rule in GPU_RULES
        assert ("--gpus=1" in args) == wants_gpu, (rule, args)
        if rule in PROFILE["set-threads"]:
            assert f"--cpus-per-task={PROFILE['set-threads'][rule]}" in args, args
    # Slurm's own record: every submitted job ran on the node, the GPU jobs
    # were allocated the node's GPU, and only the refused training failed.
    jobs = {_rule_of(j.get("Comment", "")): [] for j in runs["jobs"]}
    for j in runs["jobs"]:
        jobs[_rule_of(j.get("Comment", ""))].append(j)
    assert sorted(jobs) == sorted(CLUSTER_JOBS)
    assert sum(len(v) for v in jobs.values()) == len(calls)
    for rule, records in jobs.items():
        for j in records:
            assert j["NodeList"] == "localhost"
            assert (j.get("JOB_GRES") == "gpu:1") == (rule in GPU_RULES), (rule, j)
    states = sorted(j["JobState"] for j in runs["jobs"])
    assert states == sorted(["FAILED"] + ["COMPLETED"] * (len(calls) - 1))
    assert [j["JobState"] for j in jobs["train"]] == ["FAILED", "COMPLETED"]


def test_slurm_outputs_equal_local_run(runs):
    assert runs["reference"].returncode == 0, runs["reference"].stderr[-4000:]
    slurm, local = runs["slurm_dir"], runs["local_dir"]
    table = "results/tables/width/metrics.csv"
    pd.testing.assert_frame_equal(
        pd.read_csv(slurm / table), pd.read_csv(local / table)
    )
    stores = sorted(p.relative_to(local) for p in local.glob("results/codes/**/*.zarr"))
    assert len(stores) == 2 * 2  # widths x code epochs
    for store in stores:
        for split in ("train", "test"):
            ours, ref = (
                read_codes(slurm / store, split),
                read_codes(local / store, split),
            )
            assert (ours.packed == ref.packed).all(), (store, split)
            assert (ours.labels == ref.labels).all()
