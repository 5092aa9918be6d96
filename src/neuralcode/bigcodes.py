"""K-Means and logistic regression on codes too large to unpack whole.

CNN codes run to 10^5 bits per example; 60,000 of them as a float32 matrix take
24 GB. These versions keep the codes packed (1 bit each) and unpack one chunk
of rows at a time into float32, on the CPU or a GPU, so memory is bounded by
the chunk. They minimise the same objectives as scikit-learn's ``KMeans``
(Lloyd, k-means++ seeding) and multinomial ``LogisticRegression`` (L-BFGS,
L2 penalty ``||W||^2 / (2C)``, intercept unpenalised); the tests compare them.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

_SHIFTS = torch.arange(7, -1, -1, dtype=torch.uint8)


def chunk_rows(n_bits: int, budget_mb: float = 256) -> int:
    """Rows per chunk so that one float32 chunk stays within ``budget_mb``."""
    return max(1, int(budget_mb * 2**20 // (4 * max(n_bits, 1))))


def unpack_rows(packed: np.ndarray, n_bits: int, device="cpu") -> torch.Tensor:
    """(rows, n_bytes) uint8 -> (rows, n_bits) float32 on ``device``."""
    p = torch.from_numpy(np.ascontiguousarray(packed)).to(device)
    bits = (p.unsqueeze(-1) >> _SHIFTS.to(device)) & 1  # (rows, n_bytes, 8)
    return bits.reshape(len(p), -1)[:, :n_bits].float()


def _chunks(packed, n_bits, rows, device):
    for start in range(0, len(packed), rows):
        yield start, unpack_rows(packed[start : start + rows], n_bits, device)


def kmeans_packed(
    packed,
    n_bits: int,
    n_clusters: int = 10,
    n_init: int = 10,
    random_state: int = 0,
    max_iter: int = 300,
    tol: float = 1e-4,
    budget_mb: float = 256,
    device="cpu",
):
    """Lloyd's K-Means on packed bit codes, best of ``n_init`` k-means++ starts.

    Parameters
    ----------
    packed : np.ndarray
        (n, ceil(n_bits / 8)) uint8 codes.
    n_bits : int
        Bits per code.
    n_clusters : int, default=10
    n_init : int, default=10
        Independent starts; the lowest inertia wins.
    random_state : int, default=0
        Seed of the k-means++ seeding.
    max_iter : int, default=300
    tol : float, default=1e-4
        Stop when the centres move less than ``tol`` times the mean per-bit
        variance (scikit-learn's rule), or when no label changes.
    budget_mb : float, default=256
        Float32 memory of one unpacked chunk.
    device : str, default="cpu"

    Returns
    -------
    labels : np.ndarray
        (n,) int64 cluster of every code.
    inertia : float
        Sum of squared distances to the assigned centres.
    n_iter : int
        Lloyd iterations of the winning start.
    """
    n = len(packed)
    rows = chunk_rows(n_bits, budget_mb)
    rng = np.random.default_rng(random_state)
    ones = np.zeros(n_bits, dtype=np.float64)
    for _, x in _chunks(packed, n_bits, rows, device):
        ones += x.sum(0).double().cpu().numpy()
    mean = ones / n
    threshold = tol * float(np.mean(mean * (1 - mean)))

    def sq_dist(x, centres):
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2 ; |x|^2 is the popcount for bits.
        return (
            x.sum(1, keepdim=True) - 2 * x @ centres.T + (centres * centres).sum(1)
        ).clamp_min_(0)

    def rows_at(idx):
        return unpack_rows(packed[idx], n_bits, device)

    best = None
    for _ in range(n_init):
        # k-means++ seeding: the next centre is drawn with probability
        # proportional to the squared distance to the nearest centre so far.
        centres = rows_at(np.array([rng.integers(n)]))
        closest = torch.full((n,), float("inf"), device=device)
        for _ in range(1, n_clusters):
            for start, x in _chunks(packed, n_bits, rows, device):
                d = sq_dist(x, centres[-1:]).squeeze(1)
                closest[start : start + len(x)] = torch.minimum(
                    closest[start : start + len(x)], d
                )
            weights = closest.double().cpu().numpy()
            if weights.sum() == 0:  # fewer distinct codes than clusters
                pick = rng.integers(n)
            else:
                pick = rng.choice(n, p=weights / weights.sum())
            centres = torch.cat([centres, rows_at(np.array([pick]))])

        labels = torch.full((n,), -1, dtype=torch.long, device=device)
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            sums = torch.zeros_like(centres, dtype=torch.float64)
            counts = torch.zeros(n_clusters, dtype=torch.float64, device=device)
            changed = 0
            for start, x in _chunks(packed, n_bits, rows, device):
                new = sq_dist(x, centres).argmin(1)
                changed += int((new != labels[start : start + len(x)]).sum())
                labels[start : start + len(x)] = new
                sums.index_add_(0, new, x.double())
                counts.index_add_(0, new, torch.ones_like(new, dtype=torch.float64))
            # An empty cluster keeps its centre.
            moved = torch.where(
                counts[:, None] > 0,
                sums / counts.clamp_min(1)[:, None],
                centres.double(),
            ).float()
            shift = float(((moved - centres) ** 2).sum())
            centres = moved
            if changed == 0 or shift <= threshold:
                break
        inertia = 0.0
        for start, x in _chunks(packed, n_bits, rows, device):
            d = sq_dist(x, centres)
            labels[start : start + len(x)] = d.argmin(1)
            inertia += float(d.min(1).values.double().sum())
        if best is None or inertia < best[1]:
            best = (labels.cpu().numpy().copy(), inertia, n_iter)
    return best


def logreg_packed(
    train_packed,
    y_train,
    test_packed,
    y_test,
    n_bits: int,
    C: float = 1.0,
    max_iter: int = 1000,
    tol: float = 1e-4,
    budget_mb: float = 256,
    device="cpu",
) -> dict:
    """Multinomial logistic regression fit by full-batch L-BFGS over chunks.

    The loss and its gradient are summed chunk by chunk, so only one chunk of
    unpacked codes exists at a time.

    Returns
    -------
    dict
        ``accuracy`` (test), ``train_accuracy``, ``solver``, ``n_iter`` and
        ``converged``, as :func:`neuralcode.metrics.logreg_accuracy`.
    """
    classes, y_idx = np.unique(np.asarray(y_train), return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            "logistic regression needs at least two classes in the training "
            f"labels, got only {classes.tolist()}"
        )
    rows = chunk_rows(n_bits, budget_mb)
    n = len(y_idx)
    target = torch.from_numpy(y_idx).to(device)
    w = torch.zeros(n_bits, len(classes), device=device, requires_grad=True)
    b = torch.zeros(len(classes), device=device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=tol,
        tolerance_change=1e-9,
        history_size=10,
        line_search_fn="strong_wolfe",
    )

    # scikit-learn's objective divided by n: same minimiser, and a gradient
    # tolerance that does not grow with the number of examples.
    def closure():
        opt.zero_grad()
        total = 0.0
        for start, x in _chunks(train_packed, n_bits, rows, device):
            t = target[start : start + len(x)]
            loss = F.cross_entropy(x @ w + b, t, reduction="sum") / n
            loss.backward()
            total += loss.item()
        penalty = (w * w).sum() / (2 * C * n)
        penalty.backward()
        return torch.tensor(total + penalty.item())

    opt.step(closure)
    n_iter = int(opt.state[w]["n_iter"])

    def predict(packed):
        out = []
        with torch.no_grad():
            for _, x in _chunks(packed, n_bits, rows, device):
                out.append((x @ w + b).argmax(1).cpu().numpy())
        return classes[np.concatenate(out)]

    return {
        "accuracy": float(np.mean(predict(test_packed) == np.asarray(y_test))),
        "train_accuracy": float(np.mean(predict(train_packed) == np.asarray(y_train))),
        "solver": "torch-lbfgs-chunked",
        "n_iter": n_iter,
        "converged": n_iter < max_iter,
    }
