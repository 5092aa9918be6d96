"""The grouped engine trains each model as it would be trained alone."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from neuralcode.checkpoints import load_checkpoint
from neuralcode.data import Dataset, save_dataset
from neuralcode.grouped import GroupedMLP
from neuralcode.models import MLP, MLPConfig
from neuralcode.training import ModelJob, TrainConfig, train_group, train_one


@pytest.fixture
def dataset():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(160, 4, 4, 1), dtype=np.uint8)
    y = (x[:, :2].sum((1, 2, 3)) > x[:, 2:].sum((1, 2, 3))).astype(np.int64)
    y = y + 2 * (x[:, :, :2].sum((1, 2, 3)) > x[:, :, 2:].sum((1, 2, 3)))
    return Dataset.from_arrays("toy", x[:128], y[:128], x[128:], y[128:], n_classes=4)


def configs(depth, batch_norm, widths=(3, 8, 5)):
    return [
        MLPConfig(
            input_dim=16, width=w, depth=depth, n_classes=4, batch_norm=batch_norm
        )
        for w in widths
    ]


@pytest.mark.parametrize("depth, batch_norm", [(1, False), (3, False), (2, True)])
def test_load_export_and_forward(depth, batch_norm):
    torch.manual_seed(0)
    models = [MLP(c).eval() for c in configs(depth, batch_norm)]
    group = GroupedMLP([m.config for m in models]).eval()
    for i, m in enumerate(models):
        group.load_model(i, m)
    x = torch.rand(11, 1, 4, 4)
    logits = group(x)
    for i, m in enumerate(models):
        torch.testing.assert_close(logits[:, i], m(x), rtol=1e-5, atol=1e-6)
        exported = group.export_model(i).state_dict()
        for key, value in m.state_dict().items():
            assert torch.equal(exported[key], value), key


def jobs_for(tmp_path, cfgs, seed, tag):
    return [
        ModelJob(
            model_id=f"m{i}",
            config=c,
            seed=seed,
            checkpoints={
                0: tmp_path / tag / f"m{i}-e0.pt",
                4: tmp_path / tag / f"m{i}.pt",
            },
            history=tmp_path / tag / f"m{i}.csv",
        )
        for i, c in enumerate(cfgs)
    ]


@pytest.mark.parametrize(
    "depth, batch_norm, train",
    [
        (1, False, dict()),
        (2, False, dict(lr_step=2, weight_decay=0.01, grad_clip=0.5)),
        (2, True, dict(grad_clip=1.0)),
    ],
)
def test_grouped_equals_alone(tmp_path, dataset, depth, batch_norm, train):
    cfg = TrainConfig(epochs=4, batch_size=16, save_epochs=(0, 4), **train)
    cfgs = configs(depth, batch_norm)
    grouped = jobs_for(tmp_path, cfgs, seed=3, tag="group")
    train_group(dataset, grouped, cfg, device="cpu")

    alone = jobs_for(tmp_path, cfgs, seed=3, tag="alone")
    data = (
        torch.from_numpy(dataset.x_train).permute(0, 3, 1, 2).float() / 255,
        torch.from_numpy(dataset.y_train),
        torch.from_numpy(dataset.x_test).permute(0, 3, 1, 2).float() / 255,
        torch.from_numpy(dataset.y_test),
    )
    for job in alone:
        train_one(job, cfg, data, torch.device("cpu"))

    x_test = data[2]
    for g, a in zip(grouped, alone, strict=True):
        model_g, ckpt_g = load_checkpoint(g.checkpoints[4])
        model_a, ckpt_a = load_checkpoint(a.checkpoints[4])
        wg, wa = ckpt_g["state_dict"], ckpt_a["state_dict"]
        assert wg.keys() == wa.keys()
        for key in wa:
            torch.testing.assert_close(wg[key], wa[key], rtol=1e-4, atol=1e-5)
        with torch.no_grad():
            torch.testing.assert_close(
                model_g(x_test), model_a(x_test), rtol=1e-4, atol=1e-4
            )
        # The initialisation is exactly the one the model gets alone.
        w0g = load_checkpoint(g.checkpoints[0])[1]["state_dict"]
        w0a = load_checkpoint(a.checkpoints[0])[1]["state_dict"]
        for key in w0a:
            assert torch.equal(w0g[key], w0a[key]), key
        assert g.history.read_text().count("\n") == 6  # header + epochs 0..4


def test_padding_stays_zero(dataset):
    from neuralcode.grouped import grouped_loss

    torch.manual_seed(0)
    cfgs = configs(3, False, widths=(2, 9, 4))
    group = GroupedMLP(cfgs)
    for i, c in enumerate(cfgs):
        group.load_model(i, MLP(c))
    opt = torch.optim.Adam(group.parameters(), lr=0.05)
    x = torch.from_numpy(dataset.x_train).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(dataset.y_train)
    for _ in range(20):
        loss = grouped_loss(group(x), y) + 0.01 * group.weight_penalty()
        opt.zero_grad()
        loss.backward()
        group.clip_grad_norms_(0.5)
        opt.step()
    for layer in (0, 1):
        w = group.wh[layer]
        assert torch.count_nonzero(w[0, 2:, :]) == 0
        assert torch.count_nonzero(w[0, :, 2:]) == 0
        assert torch.count_nonzero(w[2, 4:, :]) == 0
        assert torch.count_nonzero(group.bh[layer][0, 2:]) == 0
        assert torch.count_nonzero(w[1]) > 0  # the widest model did move
    assert torch.count_nonzero(group.head_w[0, :, 2:]) == 0


def test_models_with_other_seeds_see_other_data(tmp_path, dataset):
    cfg = TrainConfig(epochs=2, batch_size=16, save_epochs=(2,))
    c = configs(1, False, widths=(6,))
    a = jobs_for(tmp_path, c, seed=0, tag="a")
    b = jobs_for(tmp_path, c, seed=1, tag="b")
    a[0] = ModelJob("a", c[0], 0, {2: tmp_path / "a.pt"}, tmp_path / "a.csv")
    b[0] = ModelJob("b", c[0], 1, {2: tmp_path / "b.pt"}, tmp_path / "b.csv")
    train_group(dataset, [a[0], b[0]], cfg, device="cpu")
    wa = load_checkpoint(tmp_path / "a.pt")[1]["state_dict"]["head.weight"]
    wb = load_checkpoint(tmp_path / "b.pt")[1]["state_dict"]["head.weight"]
    assert not torch.allclose(wa, wb)


RUNNER = """
import logging, sys
from neuralcode.logs import setup_logging
from neuralcode.stages.train import run_training_group
setup_logging()
run_training_group(sys.argv[1], {group!r}, sys.argv[2])
"""

GROUP = {
    "models": [
        {
            "model_id": f"w{w}",
            "seed": 5,
            "model": {"width": w, "depth": 2, "batch_norm": False},
        }
        for w in (4, 11)
    ],
    "training": {
        "epochs": 60,
        "batch_size": 8,
        "lr": 0.01,
        "lr_step": 20,
        "lr_gamma": 0.5,
    },
    "save_epochs": [0, 30, 60],
}


def test_resume_after_kill_equals_uninterrupted(tmp_path, dataset):
    data = tmp_path / "toy.npz"
    save_dataset(dataset, data)
    script = RUNNER.format(group=GROUP)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    # Uninterrupted reference.
    ref = tmp_path / "ref" / "s5-g0"
    subprocess.run(
        [sys.executable, "-c", script, str(data), str(ref)], check=True, env=env
    )

    # Killed run: SIGKILL once the resume state has passed a few epochs.
    out = tmp_path / "run" / "s5-g0"
    state = out.parent / ".work" / out.name / "resume-0.pt"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(data), str(out)], env=env
    )
    deadline = time.monotonic() + 120
    killed_after = None
    while time.monotonic() < deadline and proc.poll() is None:
        if state.is_file():
            try:
                epoch = torch.load(state, weights_only=True)["epoch"]
            except Exception:
                epoch = -1
            if epoch >= 5:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                killed_after = epoch
                break
        time.sleep(0.005)
    assert killed_after is not None, "the run ended before it could be killed"
    assert not (out / "w4" / "e60.pt").exists()

    # Rerun in-process, as Snakemake would after deleting the incomplete output.
    from neuralcode.stages.train import run_training_group

    run_training_group(data, GROUP, out)
    assert not state.parent.exists()
    for model in ("w4", "w11"):
        for epoch in (0, 30, 60):
            a = load_checkpoint(ref / model / f"e{epoch}.pt")[1]["state_dict"]
            b = load_checkpoint(out / model / f"e{epoch}.pt")[1]["state_dict"]
            for key in a:
                assert torch.equal(a[key], b[key]), (model, epoch, key)
        assert (ref / model / "history.csv").read_text().count("\n") == 62
        ha = np.genfromtxt(ref / model / "history.csv", delimiter=",", names=True)
        hb = np.genfromtxt(out / model / "history.csv", delimiter=",", names=True)
        np.testing.assert_array_equal(ha["test_loss"], hb["test_loss"])


def test_stale_work_of_other_settings_is_discarded(tmp_path, dataset):
    from neuralcode.stages.train import run_training_group

    data = tmp_path / "toy.npz"
    save_dataset(dataset, data)
    out = tmp_path / "models" / "s5-g0"
    work = out.parent / ".work" / out.name
    work.mkdir(parents=True)
    (work / "fingerprint").write_text("other settings")
    (work / "resume-0.pt").write_bytes(b"not a torch file")
    small = {
        **GROUP,
        "training": {**GROUP["training"], "epochs": 2},
        "save_epochs": [2],
    }
    run_training_group(data, small, out)
    assert (out / "w4" / "e2.pt").is_file() and not work.exists()


def test_bf16_autocast_is_recorded_and_close_to_fp32(tmp_path, dataset):
    cfgs = configs(1, False, widths=(6, 12))
    accuracy = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainConfig(
            epochs=10, batch_size=16, save_epochs=(10,), precision=precision
        )
        jobs = [
            ModelJob(
                f"m{i}",
                c,
                0,
                {10: tmp_path / precision / f"m{i}.pt"},
                tmp_path / precision / f"m{i}.csv",
            )
            for i, c in enumerate(cfgs)
        ]
        train_group(dataset, jobs, cfg, device="cpu")
        for job in jobs:
            model, ckpt = load_checkpoint(job.checkpoints[10])
            assert ckpt["amp"] == ("bf16" if precision == "bf16" else False)
            assert ckpt["train_config"]["precision"] == precision
            assert all(p.dtype == torch.float32 for p in model.parameters())
            accuracy[precision, job.model_id] = ckpt["metrics"]["train_accuracy"]
    assert min(accuracy.values()) > 0.35  # 4 classes: chance is 0.25
    for model_id in ("m0", "m1"):
        assert accuracy["bf16", model_id] == pytest.approx(
            accuracy["fp32", model_id], abs=0.1
        )
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(epochs=1, precision="fp16")
