"""Exact stochastic diameters of the linear regions of a ReLU MLP.

The paper measures how large the linear region of an example ``x`` is by its
*stochastic diameter*: pick a direction ``u`` uniformly on the unit sphere and
take the length of the segment of the line ``{x + t u}`` along which the full
activation pattern (every hidden ReLU, bit 1 where the pre-activation is > 0)
stays that of ``x``. The authors walked ``t`` over a grid; here the segment is
computed exactly.

Why that is possible: while the pattern stays fixed the network is affine, so
along the line every hidden pre-activation is ``z(t) = a + t b`` for any depth,
with ``a`` the pre-activation at ``x`` and ``b`` the derivative along ``u`` of
the network linearised at ``x`` (linear maps without bias, eval-mode batch norm
as the scaling ``gamma / sqrt(var + eps)``, each ReLU as the 0/1 mask of ``x``'s
pattern). The region is the intersection of the half-lines ``z(t) > 0`` (bit-1
units) and ``z(t) <= 0`` (bit-0 units): an interval ``t_lo <= 0 <= t_hi``.
By induction over the layers, inside that interval the linearisation *is* the
network, and outside it at least one unit has flipped, so the interval is exact.

Everything is computed in float64 from the float32 weights. A unit whose
pre-activation at ``x`` is within float32 rounding of 0 may therefore get another
bit here than in the float32 codes of :mod:`neuralcode.extraction`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .models import MLP

TABLE_COLUMNS = ("source", "example", "diameter", "t_lo", "t_hi", "capped")


@dataclass
class _Layer:
    """One hidden layer in float64: pre-activation = BN(W h + bias)."""

    weight: torch.Tensor  # (out, in)
    bias: torch.Tensor | None  # (out,)
    bn: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None
    # bn: running mean, sqrt(running var + eps), gamma, beta


def _as_float64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(device="cpu", dtype=torch.float64)


def _hidden_layers(model: nn.Module) -> list[_Layer]:
    """Float64 copies of the hidden layers, checking the architecture.

    Raises
    ------
    ValueError
        If ``model`` is not an :class:`~neuralcode.models.MLP` whose hidden
        blocks are exactly ``Linear -> [BatchNorm1d] -> ReLU``, or a batch norm
        has no running statistics (its eval mode would not be affine per example).
    """
    if not isinstance(model, MLP):
        raise ValueError(
            f"stochastic diameters need a neuralcode.models.MLP, got "
            f"{type(model).__name__}"
        )
    expected = "Linear -> [BatchNorm1d] -> ReLU"
    layers = []
    n_in = model.config.input_dim
    for i, block in enumerate(model.hidden):
        modules = list(block) if isinstance(block, nn.Sequential) else [block]
        kinds = [type(m).__name__ for m in modules]
        well_formed = (
            len(modules) in (2, 3)
            and type(modules[0]) is nn.Linear
            and type(modules[-1]) is nn.ReLU
            and (len(modules) == 2 or type(modules[1]) is nn.BatchNorm1d)
        )
        if not well_formed:
            raise ValueError(
                f"hidden block {i} of the MLP is {' -> '.join(kinds)}; only "
                f"{expected} blocks are supported"
            )
        linear = modules[0]
        if linear.in_features != n_in:
            raise ValueError(
                f"hidden block {i} takes {linear.in_features} inputs but the "
                f"previous layer gives {n_in}"
            )
        bn = None
        if len(modules) == 3:
            norm = modules[1]
            if norm.running_mean is None or norm.running_var is None:
                raise ValueError(
                    f"BatchNorm1d of hidden block {i} tracks no running statistics, "
                    "so it is not an affine map per example"
                )
            if norm.num_features != linear.out_features:
                raise ValueError(
                    f"BatchNorm1d of hidden block {i} has {norm.num_features} "
                    f"features for {linear.out_features} units"
                )
            ones = torch.ones(norm.num_features, dtype=torch.float64)
            gamma = _as_float64(norm.weight) if norm.affine else ones
            beta = _as_float64(norm.bias) if norm.affine else torch.zeros_like(ones)
            std = torch.sqrt(_as_float64(norm.running_var) + norm.eps)
            bn = (_as_float64(norm.running_mean), std, gamma, beta)
        bias = None if linear.bias is None else _as_float64(linear.bias)
        layers.append(_Layer(_as_float64(linear.weight), bias, bn))
        n_in = linear.out_features
    if not layers:
        raise ValueError("the MLP has no hidden layer, hence no linear regions")
    return layers


def _segment_bounds(
    layers: list[_Layer], x: torch.Tensor, u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(t_lo, t_hi)`` for float64 rows ``x`` and directions ``u`` (both (n, d))."""
    n = x.shape[0]
    t_lo = torch.full((n,), -torch.inf, dtype=torch.float64)
    t_hi = torch.full((n,), torch.inf, dtype=torch.float64)
    a, b = x, u
    for layer in layers:
        a = nn.functional.linear(a, layer.weight, layer.bias)
        b = nn.functional.linear(b, layer.weight)
        if layer.bn is not None:
            mean, std, gamma, beta = layer.bn
            a = (a - mean) / std * gamma + beta
            b = b / std * gamma
        on = a > 0
        # Unit constraint a + t b > 0 (bit 1) or <= 0 (bit 0) holds at t = 0 and
        # changes at r = -a / b: an upper bound on t where moving forward leads
        # out of the allowed side (s b < 0, s = +1 for bit 1, -1 for bit 0), a
        # lower bound where s b > 0, none where b = 0.
        s_b = torch.where(on, b, -b)
        root = -a / torch.where(b == 0, torch.ones_like(b), b)
        upper = torch.where(s_b < 0, root, torch.inf).amin(dim=1)
        lower = torch.where(s_b > 0, root, -torch.inf).amax(dim=1)
        t_hi = torch.minimum(t_hi, upper)
        t_lo = torch.maximum(t_lo, lower)
        mask = on.to(torch.float64)
        a = a * mask
        b = b * mask
    # A bit-0 unit at exactly z = 0 gives a root of -0.0; report it as 0.0.
    return t_lo + 0.0, t_hi + 0.0


def random_directions(n: int, dim: int, seed) -> np.ndarray:
    """Directions uniform on the unit sphere of ``R^dim``.

    Parameters
    ----------
    n : int
        Number of directions.
    dim : int
        Dimension of the input space.
    seed : int or numpy.random.SeedSequence
        Seed of ``numpy.random.default_rng``; the same seed gives the same
        directions.

    Returns
    -------
    numpy.ndarray
        ``(n, dim)`` float64, rows of unit Euclidean norm (normalised Gaussians).
    """
    if n < 0 or dim < 1:
        raise ValueError(f"need n >= 0 and dim >= 1, got n={n}, dim={dim}")
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((int(n), int(dim)))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def region_segments(
    model: nn.Module, x, u, batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """The exact segment of each line ``x + t u`` inside ``x``'s linear region.

    The region of ``x`` is the set of inputs with the same full activation
    pattern (bit 1 where a hidden pre-activation is > 0, bit 0 where it is <= 0).
    The model is read in eval mode (batch norm uses its running statistics); its
    training flags are restored on return.

    Parameters
    ----------
    model : neuralcode.models.MLP
        Hidden blocks ``Linear -> [BatchNorm1d] -> ReLU``.
    x : array-like
        ``(n, *input_shape)`` or ``(n, d)`` inputs.
    u : array-like
        ``(n, d)`` directions, one per input. ``t`` is measured in units of
        ``u``, so the segment's length is ``(t_hi - t_lo) * |u|``.
    batch_size : int, default=4096
        Rows handled at a time (bounds memory, not the result).

    Returns
    -------
    t_lo, t_hi : numpy.ndarray
        ``(n,)`` float64 with ``t_lo <= 0 <= t_hi``; ``-inf`` / ``+inf`` where no
        unit bounds that side. ``x + t u`` has the pattern of ``x`` for every
        ``t_lo < t < t_hi`` and a different one for every ``t`` outside
        ``[t_lo, t_hi]``. A bit-0 unit exactly at 0 whose pre-activation grows
        along ``u`` gives ``t_hi = 0`` (likewise ``t_lo = 0`` backwards).

    Raises
    ------
    ValueError
        For an unsupported model, mismatched shapes or non-finite values.
    """
    layers = _hidden_layers(model)
    x = np.asarray(x, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"x must have a batch axis, got shape {x.shape}")
    x = x.reshape(x.shape[0], -1)
    d = layers[0].weight.shape[1]
    if x.shape[1] != d:
        raise ValueError(f"inputs have {x.shape[1]} features, the model takes {d}")
    if u.shape != x.shape:
        raise ValueError(f"directions must have shape {x.shape}, got {u.shape}")
    if not (np.isfinite(x).all() and np.isfinite(u).all()):
        raise ValueError("inputs and directions must be finite")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")

    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        t_lo = np.empty(x.shape[0])
        t_hi = np.empty(x.shape[0])
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                rows = slice(start, start + batch_size)
                lo, hi = _segment_bounds(
                    layers, torch.from_numpy(x[rows]), torch.from_numpy(u[rows])
                )
                t_lo[rows] = lo.numpy()
                t_hi[rows] = hi.numpy()
    finally:
        for module, training in flags.items():
            module.training = training
    return t_lo, t_hi


def stochastic_diameters(model: nn.Module, x, seed, cap: float | None = None) -> dict:
    """Stochastic diameters of the linear regions of ``x``, one random direction each.

    Parameters
    ----------
    model : neuralcode.models.MLP
        The network.
    x : array-like
        ``(n, *input_shape)`` or ``(n, d)`` inputs.
    seed : int or numpy.random.SeedSequence
        Seed of the directions (:func:`random_directions`).
    cap : float, optional
        Clip each side to ``[-cap, cap]``, as the authors' sampled version, which
        walked ``t`` over ``[-5, 5]`` (``cap=5`` bounds a diameter at 10).

    Returns
    -------
    dict of numpy.ndarray
        ``t_lo``, ``t_hi`` (float64, clipped if ``cap``), ``diameter``
        (``t_hi - t_lo``; ``inf`` where a side is unbounded and there is no cap)
        and ``capped`` (bool: a side was clipped).
    """
    if cap is not None and not (np.isfinite(cap) and cap > 0):
        raise ValueError(f"cap must be a positive finite number or None, got {cap!r}")
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must have a batch axis, got shape {x.shape}")
    d = int(np.prod(x.shape[1:]))
    u = random_directions(x.shape[0], d, seed)
    t_lo, t_hi = region_segments(model, x, u)
    capped = np.zeros(x.shape[0], dtype=bool)
    if cap is not None:
        capped = (t_lo < -cap) | (t_hi > cap)
        t_lo = np.maximum(t_lo, -float(cap))
        t_hi = np.minimum(t_hi, float(cap))
    return {"t_lo": t_lo, "t_hi": t_hi, "diameter": t_hi - t_lo, "capped": capped}


def source_seed(seed: int, index: int) -> int:
    """Seed of the directions for the ``index``-th source of :func:`diameter_table`."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(
        1, dtype=np.uint64
    )
    return int(state[0])


def diameter_table(
    model: nn.Module,
    sources: dict[str, np.ndarray],
    n_examples: int,
    seed: int,
    cap: float | None,
) -> pd.DataFrame:
    """Stochastic diameters of several sets of inputs, as a tidy table.

    Parameters
    ----------
    model : neuralcode.models.MLP
        The network.
    sources : dict of str to numpy.ndarray
        Named input sets (e.g. ``"test"``, ``"ball"``, ``"uniform"``), each
        ``(n, *input_shape)``; the caller chooses the examples.
    n_examples : int
        Use the first ``n_examples`` rows of every source (all if fewer).
    seed : int
        Directions of the ``i``-th source (in dict order) are drawn with
        ``source_seed(seed, i)``.
    cap : float or None
        See :func:`stochastic_diameters`.

    Returns
    -------
    pandas.DataFrame
        One row per example: ``source``, ``example`` (row index in its source),
        ``diameter``, ``t_lo``, ``t_hi``, ``capped``.
    """
    if n_examples < 0:
        raise ValueError(f"n_examples must be >= 0, got {n_examples}")
    frames = []
    for index, (name, inputs) in enumerate(sources.items()):
        chosen = np.asarray(inputs)[: int(n_examples)]
        result = stochastic_diameters(model, chosen, source_seed(seed, index), cap)
        frames.append(
            pd.DataFrame(
                {
                    "source": name,
                    "example": np.arange(len(chosen), dtype=np.int64),
                    **{key: result[key] for key in TABLE_COLUMNS[2:]},
                }
            )
        )
    if not frames:
        return pd.DataFrame({c: [] for c in TABLE_COLUMNS})
    return pd.concat(frames, ignore_index=True)[list(TABLE_COLUMNS)]
