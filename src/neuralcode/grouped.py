"""Several MLPs trained as one module: the engine behind a training group.

Models that share a seed see the same minibatches, so their first layers are one
wide matrix product over the concatenated hidden units, and their later layers
are batched matrix products over the models, each model's block padded to the
widest. Padded weights start at zero, receive zero gradients and stay zero, so
every model computes exactly what it would compute alone (up to the summation
order of the products); padding never reaches a checkpoint, hence never a code.

Shapes: ``M`` models, widths ``w_i``, ``W = sum(w_i)``, ``P = max(w_i)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .models import MLP, MLPConfig


class GroupedMLP(nn.Module):
    """``M`` MLPs of one depth (widths may differ) evaluated side by side.

    Parameters
    ----------
    configs : list of MLPConfig
        One per model; ``input_dim``, ``depth``, ``n_classes`` and
        ``batch_norm`` must agree.
    """

    def __init__(self, configs: list[MLPConfig]):
        super().__init__()
        first = configs[0]
        for c in configs:
            same = (c.input_dim, c.depth, c.n_classes, c.batch_norm)
            if same != (
                first.input_dim,
                first.depth,
                first.n_classes,
                first.batch_norm,
            ):
                raise ValueError(f"cannot group {c} with {first}")
        self.configs = list(configs)
        widths = [c.width for c in configs]
        m, p, w = len(widths), max(widths), sum(widths)
        self.m, self.p, self.w = m, p, w
        self.depth, self.n_classes = first.depth, first.n_classes

        # Position of every real hidden unit in the padded (M * P) layout, and
        # the model every unit belongs to.
        offsets = torch.tensor([0, *widths]).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        pad_index = torch.cat([i * p + torch.arange(wi) for i, wi in enumerate(widths)])
        owner = torch.cat([torch.full((wi,), i) for i, wi in enumerate(widths)])
        self.register_buffer("pad_index", pad_index, persistent=False)
        self.register_buffer("owner", owner, persistent=False)

        # Like MLP, no hidden biases under batch norm.
        bias = not first.batch_norm
        self.w0 = nn.Parameter(torch.zeros(w, first.input_dim))  # (W, in)
        self.b0 = nn.Parameter(torch.zeros(w)) if bias else None
        self.wh = nn.ParameterList(
            nn.Parameter(torch.zeros(m, p, p)) for _ in range(first.depth - 1)
        )  # (M, P_out, P_in) per later layer
        self.bh = nn.ParameterList(
            nn.Parameter(torch.zeros(m, p))
            for _ in range(first.depth - 1 if bias else 0)
        )
        self.bn = nn.ModuleList(
            nn.BatchNorm1d(w) for _ in range(first.depth if first.batch_norm else 0)
        )
        self.head_w = nn.Parameter(torch.zeros(m, first.n_classes, p))  # (M, C, P)
        self.head_b = nn.Parameter(torch.zeros(m, first.n_classes))

    def pad(self, h: torch.Tensor) -> torch.Tensor:
        """(B, W) -> (B, M, P) with zeros in the padding."""
        out = h.new_zeros(h.shape[0], self.m * self.p)
        out[:, self.pad_index] = h
        return out.view(h.shape[0], self.m, self.p)

    def unpad(self, hp: torch.Tensor) -> torch.Tensor:
        """(B, M, P) -> (B, W)."""
        return hp.reshape(hp.shape[0], -1)[:, self.pad_index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every model, (B, M, C)."""
        z = F.linear(x.flatten(1), self.w0, self.b0)
        for layer in range(self.depth):
            if self.bn:
                z = self.bn[layer](z)
            h = F.relu(z)
            if layer + 1 < self.depth:
                zp = torch.einsum("bmi,moi->bmo", self.pad(h), self.wh[layer])
                if self.bh:
                    zp = zp + self.bh[layer]
                z = self.unpad(zp)
        return torch.einsum("bmi,mci->bmc", self.pad(h), self.head_w) + self.head_b

    def weight_penalty(self) -> torch.Tensor:
        """Sum of every model's ``l2_penalty`` (padding adds zero)."""
        total = (self.w0 * self.w0).sum() + (self.head_w * self.head_w).sum()
        for w in self.wh:
            total = total + (w * w).sum()
        return total

    # -- moving weights between the group and single models -----------------

    def _blocks(self, i: int):
        """(group tensor, index into it, single-model key) for model ``i``."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        wi = hi - lo
        rows = slice(lo, hi)
        yield self.w0, (rows,), "hidden.0.0.weight"
        if self.b0 is not None:
            yield self.b0, (rows,), "hidden.0.0.bias"
        for layer in range(1, self.depth):
            block = (i, slice(0, wi), slice(0, wi))
            yield self.wh[layer - 1], block, f"hidden.{layer}.0.weight"
            if self.bh:
                yield self.bh[layer - 1], block[:2], f"hidden.{layer}.0.bias"
        for layer, bn in enumerate(self.bn):
            for name in ("weight", "bias", "running_mean", "running_var"):
                yield getattr(bn, name), (rows,), f"hidden.{layer}.1.{name}"
        yield self.head_w, (i, slice(None), slice(0, wi)), "head.weight"
        yield self.head_b, (i,), "head.bias"

    @torch.no_grad()
    def load_model(self, i: int, model: MLP) -> None:
        """Copy the weights of single model ``i`` into the group."""
        state = model.state_dict()
        for tensor, index, key in self._blocks(i):
            tensor[index] = state[key]

    @torch.no_grad()
    def export_model(self, i: int) -> MLP:
        """Model ``i`` as a standalone :class:`MLP` on the CPU."""
        model = MLP(self.configs[i])
        state = model.state_dict()
        for tensor, index, key in self._blocks(i):
            state[key] = tensor[index].detach().cpu().clone()
        for layer, bn in enumerate(self.bn):
            state[f"hidden.{layer}.1.num_batches_tracked"] = (
                bn.num_batches_tracked.cpu()
            )
        model.load_state_dict(state)
        return model.eval()

    @torch.no_grad()
    def clip_grad_norms_(self, max_norm: float) -> None:
        """Clip every model's gradient of every parameter to ``max_norm``.

        The same rule as ``clip_grad_norm_`` applied to each parameter of each
        model alone (Keras' ``clipnorm``), computed per block of the group.
        """
        by_rows = {id(self.w0), id(self.b0)}
        for bn in self.bn:
            by_rows |= {id(bn.weight), id(bn.bias)}
        for param in self.parameters():
            g = param.grad
            if g is None:
                continue
            if id(param) in by_rows:
                # Rows belong to models through `owner` (first layer, BN).
                sq = (g * g).reshape(self.w, -1).sum(1)
                per_model = torch.zeros(self.m, dtype=g.dtype, device=g.device)
                per_model.index_add_(0, self.owner, sq)
                coef = (max_norm / (per_model.sqrt() + 1e-6)).clamp(max=1.0)
                g.mul_(coef[self.owner].view(-1, *[1] * (g.dim() - 1)))
            else:
                # Stacked per-model tensors: model index is the first axis.
                norms = (g * g).reshape(self.m, -1).sum(1).sqrt()
                coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
                g.mul_(coef.view(-1, *[1] * (g.dim() - 1)))


def grouped_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over models of each model's mean cross-entropy.

    Summing keeps every model's gradient equal to the gradient of its own loss.
    """
    b, m, c = logits.shape
    per_example = F.cross_entropy(
        logits.reshape(b * m, c), target.repeat_interleave(m), reduction="sum"
    )
    return per_example / b


@torch.no_grad()
def grouped_evaluate(model: GroupedMLP, x, y, batch_size: int = 4096):
    """Mean loss and accuracy of every model: two (M,) tensors."""
    model.eval()
    loss = torch.zeros(model.m, device=x.device)
    correct = torch.zeros(model.m, device=x.device)
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size])  # (B, M, C)
        target = y[start : start + batch_size]
        b = len(target)
        ce = F.cross_entropy(
            logits.reshape(b * model.m, -1),
            target.repeat_interleave(model.m),
            reduction="none",
        ).view(b, model.m)
        loss += ce.sum(0)
        correct += (logits.argmax(2) == target[:, None]).sum(0)
    return (loss / len(x)).cpu(), (correct / len(x)).cpu()
