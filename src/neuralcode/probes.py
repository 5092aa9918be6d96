"""Random inputs for probing a network away from its data.

The paper compares the codes and linear regions of real examples with those of
random points. Its text draws them uniformly from the unit ball of the input
space; its appendix draws every pixel uniformly from [0, 1]. Both are offered,
seeded, so that a probe set is reproducible from ``(kind, n, shape, seed)`` alone.
"""

from __future__ import annotations

import math

import numpy as np

PROBE_KINDS = ("ball", "uniform")


def _check_shape(input_shape) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if not shape or not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0
        for s in shape
    ):
        raise ValueError(
            "input_shape must be a non-empty tuple of positive ints, "
            f"got {input_shape!r}"
        )
    return tuple(int(s) for s in shape)


def uniform_ball(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Points uniform in the unit ball of ``R^dim``, as float64.

    A Gaussian vector normalised to unit length is uniform on the sphere; a radius
    ``U ** (1 / dim)`` with ``U ~ U(0, 1)`` makes the volume element uniform
    (``P(r <= s) = s ** dim``).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n : int
        Number of points.
    dim : int
        Dimension of the space.

    Returns
    -------
    numpy.ndarray
        ``(n, dim)`` float64, every row of norm < 1.
    """
    direction = rng.standard_normal((n, dim))
    norms = np.linalg.norm(direction, axis=1, keepdims=True)
    radius = rng.random((n, 1)) ** (1.0 / dim)
    return direction / norms * radius


def random_inputs(kind: str, n: int, input_shape: tuple, seed: int) -> np.ndarray:
    """Random probe inputs of the shape of the data.

    Parameters
    ----------
    kind : {"ball", "uniform"}
        ``"ball"``: uniform in the unit ball of dimension ``prod(input_shape)``
        (the paper's text). ``"uniform"``: every pixel independently ``U(0, 1)``
        (the paper's appendix).
    n : int
        Number of inputs.
    input_shape : tuple of int
        Shape of one input, e.g. ``(1, 28, 28)``.
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same inputs.

    Returns
    -------
    numpy.ndarray
        ``(n, *input_shape)`` float32. Ball points have norm at most 1 up to
        float32 rounding (about 1e-7); uniform pixels lie in [0, 1).

    Raises
    ------
    ValueError
        For an unknown ``kind``, a negative ``n`` or a malformed ``input_shape``.
    """
    if kind not in PROBE_KINDS:
        raise ValueError(f"unknown probe kind {kind!r}; expected one of {PROBE_KINDS}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    shape = _check_shape(input_shape)
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        # Drawn in float32 directly: a float64 draw rounded down to float32 can
        # land on 1.0.
        return rng.random((int(n), *shape), dtype=np.float32)
    points = uniform_ball(rng, int(n), math.prod(shape))
    return points.astype(np.float32).reshape(int(n), *shape)
