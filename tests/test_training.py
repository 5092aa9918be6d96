import csv

import numpy as np
import pytest
import torch

from neuralcode.checkpoints import CheckpointError, load_checkpoint
from neuralcode.devices import pick_device
from neuralcode.models import MLP, MLPConfig
from neuralcode.training import (
    ModelJob,
    TrainConfig,
    l2_penalty,
    train_one,
)


@pytest.fixture
def data():
    """Tiny separable problem as device tensors (n, C, H, W)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(96, 1, 4, 4, generator=g)
    y = (x.flatten(1)[:, :8].sum(1) > x.flatten(1)[:, 8:].sum(1)).long()
    return x[:64], y[:64], x[64:], y[64:]


def make_job(tmp_path, seed=0, width=5, epochs=(0, 2, 3), tag="a"):
    cfg = MLPConfig(input_dim=16, width=width, depth=2, n_classes=2)
    out = tmp_path / tag
    return ModelJob(
        model_id=f"w{width}-s{seed}",
        config=cfg,
        seed=seed,
        checkpoints={e: out / f"e{e}.pt" for e in epochs},
        history=out / "history.csv",
    )


def weights(path):
    return load_checkpoint(path)[1]["state_dict"]


@pytest.mark.parametrize(
    "cfg",
    [
        TrainConfig(epochs=3, batch_size=8, save_epochs=(0, 2, 3)),
        TrainConfig(
            epochs=3,
            batch_size=16,
            lr_step=1,
            weight_decay=0.01,
            grad_clip=1.0,
            save_epochs=(0, 2, 3),
        ),
    ],
)
def test_same_seed_gives_bit_identical_weights(tmp_path, data, cfg):
    a, b = make_job(tmp_path, tag="a"), make_job(tmp_path, tag="b")
    train_one(a, cfg, data, torch.device("cpu"))
    train_one(b, cfg, data, torch.device("cpu"))
    for epoch in (0, 2, 3):
        wa, wb = weights(a.checkpoints[epoch]), weights(b.checkpoints[epoch])
        for key in wa:
            assert torch.equal(wa[key], wb[key]), (epoch, key)
    c = make_job(tmp_path, seed=1, tag="c")
    train_one(c, cfg, data, torch.device("cpu"))
    assert not torch.equal(
        weights(a.checkpoints[3])["head.weight"],
        weights(c.checkpoints[3])["head.weight"],
    )


def test_epoch_zero_is_the_seeded_initialisation(tmp_path, data):
    job = make_job(tmp_path, seed=7)
    train_one(job, TrainConfig(epochs=3, save_epochs=(0, 3)), data, "cpu")
    torch.manual_seed(7)
    init = MLP(job.config).state_dict()
    stored = weights(job.checkpoints[0])
    for key, value in init.items():
        assert torch.equal(stored[key], value)
    assert not torch.equal(
        weights(job.checkpoints[3])["head.weight"], init["head.weight"]
    )


def test_checkpoint_contents_and_history(tmp_path, data):
    job = make_job(tmp_path)
    cfg = TrainConfig(epochs=3, lr_step=2, save_epochs=(0, 2, 3))
    history = train_one(job, cfg, data, "cpu", extra={"dataset": "toy"})
    model, ckpt = load_checkpoint(job.checkpoints[2])
    assert ckpt["epoch"] == 2 and ckpt["seed"] == 0 and ckpt["dataset"] == "toy"
    assert ckpt["model_config"] == job.config.to_dict()
    assert ckpt["train_config"]["lr_step"] == 2
    assert set(ckpt["versions"]) >= {"torch", "numpy", "neuralcode"}
    assert not model.training
    with open(job.history) as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    # StepLR(2, 0.1): lr 0.01 for epochs 1-2, then 0.001 after the decay.
    assert float(rows[3]["lr"]) == pytest.approx(0.001)
    assert float(rows[2]["test_accuracy"]) == ckpt["metrics"]["test_accuracy"]
    assert history[-1]["train_accuracy"] > 0.6


def test_truncated_checkpoint_is_refused(tmp_path, data):
    job = make_job(tmp_path, epochs=(1,))
    train_one(job, TrainConfig(epochs=1, save_epochs=(1,)), data, "cpu")
    path = job.checkpoints[1]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    assert not list(path.parent.glob("*.tmp"))


def test_l2_penalty_counts_weights_not_biases():
    model = MLP(MLPConfig(input_dim=2, width=2, depth=1, n_classes=2))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(2.0)
    # weights: 2x2 hidden + 2x2 head = 8 entries of 2^2; biases excluded
    assert l2_penalty(model).item() == pytest.approx(32.0)


def test_save_epochs_must_be_within_training():
    with pytest.raises(ValueError, match="outside"):
        TrainConfig(epochs=3, save_epochs=(4,))


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_required_gpu_missing_is_an_error():
    assert pick_device().type == "cpu"
    with pytest.raises(RuntimeError, match="asked for a GPU"):
        pick_device(require_gpu=True)


def test_batch_norm_model_trains_and_reloads(tmp_path, data):
    job = make_job(tmp_path)
    job = ModelJob(
        job.model_id,
        MLPConfig(input_dim=16, width=4, depth=1, n_classes=2, batch_norm=True),
        0,
        {2: tmp_path / "bn.pt"},
        tmp_path / "bn.csv",
    )
    train_one(job, TrainConfig(epochs=2, save_epochs=(2,)), data, "cpu")
    model, _ = load_checkpoint(tmp_path / "bn.pt")
    out = model(data[2])
    assert out.shape == (32, 2) and np.isfinite(out.detach().numpy()).all()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_single_run_resumes_to_the_same_weights(tmp_path, data, monkeypatch, optimizer):
    import neuralcode.training as training

    cfg = TrainConfig(
        epochs=4, batch_size=16, lr_step=2, save_epochs=(4,), optimizer=optimizer
    )
    whole = make_job(tmp_path, epochs=(4,), tag="whole")
    train_one(whole, cfg, data, "cpu")

    # Interrupt the second run right after it saved its state for epoch 2.
    save = training._save_resume_state

    def save_then_die(path, epoch, *args):
        save(path, epoch, *args)
        if epoch == 2:
            raise KeyboardInterrupt

    state = tmp_path / "state.pt"
    resumed = make_job(tmp_path, epochs=(4,), tag="resumed")
    monkeypatch.setattr(training, "_save_resume_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_one(resumed, cfg, data, "cpu", state_path=state)
    assert not resumed.checkpoints[4].exists()
    saved = []

    def save_and_count(path, epoch, *args):
        saved.append(epoch)
        save(path, epoch, *args)

    monkeypatch.setattr(training, "_save_resume_state", save_and_count)
    train_one(resumed, cfg, data, "cpu", state_path=state)
    assert saved == [3, 4]  # continued after epoch 2, did not start over

    a, b = weights(whole.checkpoints[4]), weights(resumed.checkpoints[4])
    for key in a:
        assert torch.equal(a[key], b[key]), key
    with open(resumed.history) as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [0, 1, 2, 3, 4]
