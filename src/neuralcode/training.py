"""Training of the MLPs whose codes the metrics study.

The data of these experiments is small, so it lives on the device as one tensor
and minibatches are index gathers: no DataLoader, no per-example Python. One call
trains several models in one process (a training group); each model still gets
its own initialisation and data order from its own seed.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import atomic_torch_save, save_checkpoint
from .devices import pick_device
from .grouped import GroupedMLP, grouped_evaluate, grouped_loss
from .models import MLP, MLPConfig, build_model
from .views import training_view

logger = logging.getLogger(__name__)

HISTORY_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "seconds",
)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by the models of a training group.

    Parameters
    ----------
    epochs : int
        Passes over the training set.
    batch_size : int, default=128
        Examples per optimiser step.
    lr : float, default=0.01
        Adam's initial learning rate (betas 0.9, 0.999 as in the paper).
    lr_step : int, default=0
        Epochs between learning-rate decays; 0 keeps it constant.
    lr_gamma : float, default=0.1
        Factor of each decay.
    weight_decay : float, default=0.0
        Coefficient of an L2 penalty ``sum ||W||^2`` on the linear weights (not
        the biases) added to the loss, as a Keras ``kernel_regularizer`` does.
    grad_clip : float, default=0.0
        Clip every parameter's gradient to this norm (Keras ``clipnorm``); 0 is
        off.
    save_epochs : tuple of int, default=()
        Epochs after which a checkpoint is written; 0 is the initialisation.
    precision : {"fp32", "bf16"}, default="fp32"
        ``"bf16"`` runs the grouped forward pass under bfloat16 autocast
        (about 1.6x faster on CPUs with AVX512-BF16, and on GPUs); weights,
        optimiser and evaluation stay float32. Grouped and single runs agree to
        float tolerance only in fp32.
    optimizer : {"adam", "sgd"}, default="adam"
        Adam (the MLPs and the MNIST CNNs) or plain SGD without momentum (the
        CIFAR-10 CNNs of the paper's appendix).
    """

    epochs: int
    batch_size: int = 128
    lr: float = 0.01
    lr_step: int = 0
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    save_epochs: tuple[int, ...] = field(default_factory=tuple)
    precision: str = "fp32"
    optimizer: str = "adam"

    def __post_init__(self):
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be adam or sgd, got {self.optimizer!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {self.precision!r}")
        bad = [e for e in self.save_epochs if not 0 <= e <= self.epochs]
        if bad:
            raise ValueError(f"save_epochs {bad} outside 0..{self.epochs}")


@dataclass(frozen=True)
class ModelJob:
    """One model of a training group and where its files go."""

    model_id: str
    config: MLPConfig
    seed: int
    checkpoints: dict  # epoch -> path of the checkpoint written after it
    history: str  # path of the per-epoch CSV
    # What the model sees of the training split (neuralcode.views): None, or
    # {"train_size": int | None, "label_noise": float, "seed": int}.
    view: dict | None = None
    # Per-model overrides of TrainConfig's weight_decay and grad_clip.
    optim: dict = field(default_factory=dict)

    def view_key(self) -> tuple:
        v = self.view or {}
        return (v.get("train_size"), v.get("label_noise", 0.0), v.get("seed", 0))


def view_tensors(job: ModelJob, y_train: torch.Tensor):
    """``(order, examples, labels)`` of a job's training view, on ``y_train``'s
    device: the tiled indices an epoch permutes, the distinct examples (for
    the training metrics), and the labels the model is trained on."""
    v = job.view or {}
    view = training_view(
        y_train.cpu().numpy(),
        job.config.n_classes,
        train_size=v.get("train_size"),
        label_noise=v.get("label_noise", 0.0),
        seed=v.get("seed", 0),
    )
    device = y_train.device
    return (
        torch.from_numpy(view.order).to(device),
        torch.from_numpy(view.examples).to(device),
        torch.from_numpy(view.labels).to(device),
    )


def adam(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimiser: Adam with the paper's betas, or plain SGD.

    Adam uses the fused kernel, which updates all tensors in one pass (CPU and
    CUDA); that matters for groups of many small models.
    """
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr)
    return torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999), fused=True)


def images_to_tensor(images, device) -> torch.Tensor:
    """uint8 images (n, H, W, C) -> float32 (n, C, H, W) scaled to [0, 1]."""
    x = torch.from_numpy(images).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


@torch.no_grad()
def evaluate(model: nn.Module, x, y, batch_size: int = 4096) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on tensors ``x``, ``y``."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size])
        target = y[start : start + batch_size]
        loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
        correct += (logits.argmax(1) == target).sum().item()
    return loss_sum / len(x), correct / len(x)


def l2_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of squared weights of the linear layers (biases excluded)."""
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    return sum((w * w).sum() for w in weights)


def write_history(path, rows) -> None:
    """Write the per-epoch log atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def train_one(
    job: ModelJob, cfg: TrainConfig, data, device, extra=None, state_path=None
) -> list:
    """Train one model alone and write its checkpoints and history.

    :func:`train_group` trains MLPs grouped and every other architecture (the
    CNNs) through this plain loop, which is also the reference that the
    grouped engine is tested against.

    Parameters
    ----------
    job : ModelJob
        The model, its seed and its output paths.
    cfg : TrainConfig
        Optimisation settings.
    data : tuple of torch.Tensor
        ``(x_train, y_train, x_test, y_test)`` already on ``device``.
    device : torch.device
        Where to train.
    extra : dict, optional
        Plain values stored in every checkpoint (dataset name and checksum...).
    state_path : path-like, optional
        Resume state saved after every epoch; a later call continues from it.

    Returns
    -------
    list of dict
        The history rows, one per epoch from 0.
    """
    x_train, y_train, x_test, y_test = data
    cfg = replace(cfg, **job.optim)
    order_idx, examples, y_train = view_tensors(job, y_train)
    n = len(order_idx)

    # The seed fixes the initialisation first, then the data order, so two
    # models with the same seed see the same minibatches.
    torch.manual_seed(job.seed)
    model = build_model(job.config.to_dict()).to(device)
    order = torch.Generator().manual_seed(job.seed)
    opt = adam(model.parameters(), cfg)
    sched = None
    if cfg.lr_step > 0:
        sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step, gamma=cfg.lr_gamma)
    history, first_epoch = [], 1
    resumed = _resume(state_path, device, model, opt, sched, order)
    if resumed is not None:
        (history,), first_epoch = resumed

    def log_epoch(epoch, seconds):
        tr_loss, tr_acc = evaluate(model, x_train[examples], y_train[examples])
        te_loss, te_acc = evaluate(model, x_test, y_test)
        row = dict(
            epoch=epoch,
            lr=opt.param_groups[0]["lr"],
            train_loss=tr_loss,
            train_accuracy=tr_acc,
            test_loss=te_loss,
            test_accuracy=te_acc,
            seconds=seconds,
        )
        if epoch in job.checkpoints:
            save_checkpoint(
                job.checkpoints[epoch],
                model=model,
                model_id=job.model_id,
                model_config=job.config.to_dict(),
                seed=job.seed,
                epoch=epoch,
                train_config=asdict(cfg),
                view=job.view,
                metrics=row,
                device=str(device),
                **(extra or {}),
            )
        history.append(row)
        if state_path is not None:
            _save_resume_state(state_path, epoch, model, opt, sched, order, [history])

    if not history:
        log_epoch(0, 0.0)
    for epoch in range(first_epoch, cfg.epochs + 1):
        tic = time.perf_counter()
        model.train()
        perm = order_idx[torch.randperm(n, generator=order).to(device)]
        for start in range(0, n, cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            if cfg.weight_decay:
                loss = loss + cfg.weight_decay * l2_penalty(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()

            # Keras' clipnorm clips each gradient tensor on its own.
            if cfg.grad_clip:
                for p in model.parameters():
                    torch.nn.utils.clip_grad_norm_(p, cfg.grad_clip)
            opt.step()
        if sched is not None:
            sched.step()
        log_epoch(epoch, time.perf_counter() - tic)
        if epoch % max(1, cfg.epochs // 10) == 0 or epoch == cfg.epochs:
            r = history[-1]
            logger.info(
                "%s epoch %d/%d loss %.4f train %.4f test %.4f",
                job.model_id,
                epoch,
                cfg.epochs,
                r["train_loss"],
                r["train_accuracy"],
                r["test_accuracy"],
            )
    write_history(job.history, history)
    return history


def _flags(cfg: TrainConfig) -> dict:
    """Numerics switches that a checkpoint records."""
    return {
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "amp": "bf16" if cfg.precision == "bf16" else False,
    }


def train_group(
    dataset, jobs, cfg: TrainConfig, device=None, extra=None, state_dir=None
):
    """Train the models of a group together, resuming from ``state_dir``.

    Models that share seed, depth, batch-norm switch, training view and
    regulariser strengths are trained as one
    :class:`~neuralcode.grouped.GroupedMLP`; each still starts from the
    initialisation it gets alone from its seed and sees its seed's data order,
    and its checkpoints and history are written as if trained alone.

    Parameters
    ----------
    dataset : neuralcode.data.Dataset
        Prepared dataset; moved to ``device`` once for the whole group.
    jobs : list of ModelJob
        Models to train.
    cfg : TrainConfig
        Shared optimisation settings.
    device : torch.device, optional
        Defaults to :func:`pick_device`.
    extra : dict, optional
        Plain values stored in every checkpoint.
    state_dir : path-like, optional
        Where the resume state is saved after every epoch; a later call with
        the same directory continues from the last completed epoch.
    """
    device = torch.device(device) if device is not None else pick_device()
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    data = (
        images_to_tensor(dataset.x_train, device),
        torch.from_numpy(dataset.y_train).to(device),
        images_to_tensor(dataset.x_test, device),
        torch.from_numpy(dataset.y_test).to(device),
    )
    subgroups: dict[tuple, list[ModelJob]] = {}
    singles = [job for job in jobs if not isinstance(job.config, MLPConfig)]
    for job in jobs:
        if not isinstance(job.config, MLPConfig):
            continue
        c = job.config
        optim = tuple(sorted(job.optim.items()))
        key = (job.seed, c.depth, c.batch_norm, c.input_dim, c.n_classes, optim)
        subgroups.setdefault(key + job.view_key(), []).append(job)
    logger.info(
        "training %d models in %d grouped and %d single runs on %s",
        len(jobs),
        len(subgroups),
        len(singles),
        device,
    )
    extra = {**_flags(cfg), **(extra or {})}
    for k, sub in enumerate(subgroups.values()):
        state = Path(state_dir) / f"resume-{k}.pt" if state_dir else None
        _train_grouped(sub, replace(cfg, **sub[0].optim), data, device, extra, state)
    for job in singles:
        state = Path(state_dir) / f"resume-{job.model_id}.pt" if state_dir else None
        train_one(job, cfg, data, device, extra={**extra}, state_path=state)


def grouped_steps(model, opt, cfg: TrainConfig, x, y, perm) -> None:
    """One pass of optimiser steps over ``perm`` (indices into ``x``, ``y``).

    Parameters
    ----------
    model : GroupedMLP
    opt : torch.optim.Optimizer
    cfg : TrainConfig
        Batch size, weight decay and clipping.
    x, y : torch.Tensor
        Training images (n, C, H, W) and labels (n,), on the model's device.
    perm : torch.Tensor
        (n_used,) int64 order of the examples; minibatches are its slices.
    """
    model.train()
    autocast = torch.autocast(
        x.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"
    )
    for start in range(0, len(perm), cfg.batch_size):
        idx = perm[start : start + cfg.batch_size]
        with autocast:
            loss = grouped_loss(model(x[idx]), y[idx])
        if cfg.weight_decay:
            loss = loss + cfg.weight_decay * model.weight_penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            model.clip_grad_norms_(cfg.grad_clip)
        opt.step()


def _save_resume_state(path, epoch, model, opt, sched, order, histories) -> None:
    """Everything a killed run needs to continue after ``epoch``, atomically."""
    atomic_torch_save(
        {
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched else None,
            "order": order.get_state(),
            "torch_rng": torch.get_rng_state(),
            "histories": histories,
        },
        path,
    )


def _resume(path, device, model, opt, sched, order):
    """Load the saved state at ``path`` into the run's objects.

    Returns ``(histories, first epoch to train)``, or None when there is no
    usable state (the run starts from scratch).
    """
    state = _load_resume_state(path, device)
    if state is None:
        return None
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if sched is not None:
        sched.load_state_dict(state["scheduler"])
    order.set_state(state["order"])
    torch.set_rng_state(state["torch_rng"])
    logger.info("resuming %s after epoch %d", path, state["epoch"])
    return state["histories"], state["epoch"] + 1


def _load_resume_state(path, device):
    """The saved state at ``path``, or None when absent or unreadable."""
    if path is None or not path.is_file():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a damaged state only costs the epochs it held
        logger.warning("ignoring unreadable resume state %s (%s)", path, exc)
        return None


def _train_grouped(jobs, cfg, data, device, extra, state_path) -> None:
    """One :class:`GroupedMLP` run; see :func:`train_group`."""
    x_train, y_train, x_test, y_test = data
    order_idx, examples, y_train = view_tensors(jobs[0], y_train)
    n = len(order_idx)
    seed = jobs[0].seed
    model = GroupedMLP([j.config for j in jobs]).to(device)

    # Each model's initialisation is the one it gets alone from its seed.
    for i, job in enumerate(jobs):
        torch.manual_seed(job.seed)
        model.load_model(i, MLP(job.config))
    order = torch.Generator().manual_seed(seed)
    opt = adam(model.parameters(), cfg)
    sched = None
    if cfg.lr_step > 0:
        sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step, gamma=cfg.lr_gamma)
    histories = [[] for _ in jobs]
    first_epoch = 0
    resumed = _resume(state_path, device, model, opt, sched, order)
    if resumed is not None:
        histories, first_epoch = resumed

    def end_of_epoch(epoch, seconds):
        tr_loss, tr_acc = grouped_evaluate(model, x_train[examples], y_train[examples])
        te_loss, te_acc = grouped_evaluate(model, x_test, y_test)
        for i, job in enumerate(jobs):
            row = dict(
                epoch=epoch,
                lr=opt.param_groups[0]["lr"],
                train_loss=tr_loss[i].item(),
                train_accuracy=tr_acc[i].item(),
                test_loss=te_loss[i].item(),
                test_accuracy=te_acc[i].item(),
                seconds=seconds,
            )
            histories[i].append(row)
            if epoch in job.checkpoints:
                save_checkpoint(
                    job.checkpoints[epoch],
                    model=model.export_model(i),
                    model_id=job.model_id,
                    model_config=job.config.to_dict(),
                    seed=job.seed,
                    epoch=epoch,
                    train_config=asdict(cfg),
                    view=job.view,
                    metrics=row,
                    device=str(device),
                    **extra,
                )
        if state_path is not None:
            _save_resume_state(state_path, epoch, model, opt, sched, order, histories)
        if epoch % max(1, cfg.epochs // 10) == 0 or epoch == cfg.epochs:
            logger.info(
                "seed %d epoch %d/%d: test accuracy %.3f..%.3f over %d models",
                seed,
                epoch,
                cfg.epochs,
                te_acc.min().item(),
                te_acc.max().item(),
                len(jobs),
            )

    if first_epoch == 0:
        end_of_epoch(0, 0.0)
        first_epoch = 1
    for epoch in range(first_epoch, cfg.epochs + 1):
        tic = time.perf_counter()
        perm = order_idx[torch.randperm(n, generator=order).to(device)]
        grouped_steps(model, opt, cfg, x_train, y_train, perm)
        if sched is not None:
            sched.step()
        end_of_epoch(epoch, time.perf_counter() - tic)
    for job, rows in zip(jobs, histories, strict=True):
        write_history(job.history, rows)
