"""What a model sees of its training set: a subset, tiled, with noisy labels.

The sample-size experiments train on the first ``n`` examples of a fixed
permutation of the training split (so smaller subsets nest in larger ones),
repeated until the repeated set is as long as the full split: every run takes
the same number of optimiser steps per epoch, as in the authors' code. The
label-noise experiments give a fixed fraction of the training examples a wrong
label. Training and code extraction both build the view from here, so the codes
of the "train" split are those of the examples, and labels, the model saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrainingView:
    """A model's training data, as indices into the full training split.

    Attributes
    ----------
    order : np.ndarray
        (n_train,) int64 indices, the distinct examples tiled to the full
        length; one epoch is a permutation of this array.
    examples : np.ndarray
        Sorted distinct indices (the subset).
    labels : np.ndarray
        (n_train,) int64 labels the model is trained on, indexed like the
        full split (noisy where noise applies).
    """

    order: np.ndarray
    examples: np.ndarray
    labels: np.ndarray


def subset_indices(n_train: int, size: int, seed: int) -> np.ndarray:
    """The first ``size`` indices of a permutation of ``range(n_train)``.

    The permutation depends on ``seed`` only, so subsets of one seed nest.
    """
    if not 1 <= size <= n_train:
        raise ValueError(
            f"train size {size} is outside 1..{n_train} (the training split's size)"
        )
    perm = np.random.default_rng(seed).permutation(n_train)
    return np.sort(perm[:size])


def tile_indices(indices: np.ndarray, length: int) -> np.ndarray:
    """``indices`` repeated in order and cut to ``length`` entries."""
    return np.resize(np.asarray(indices, dtype=np.int64), length)


def noisy_labels(labels, ratio: float, n_classes: int, seed) -> np.ndarray:
    """Labels where ``round(ratio * n)`` examples get a wrong class.

    The relabelled examples are drawn without replacement; each gets a class
    drawn uniformly from the ``n_classes - 1`` classes other than its own, so
    exactly that fraction is wrong.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not 0 <= ratio < 1:
        raise ValueError(f"label noise ratio {ratio} is outside [0, 1)")
    rng = np.random.default_rng(seed)
    n_wrong = round(ratio * len(labels))
    out = labels.copy()
    if n_wrong == 0:
        return out
    which = rng.choice(len(labels), size=n_wrong, replace=False)
    shift = rng.integers(1, n_classes, size=n_wrong)
    out[which] = (labels[which] + shift) % n_classes
    return out


def training_view(
    labels, n_classes: int, train_size=None, label_noise=0.0, seed=0
) -> TrainingView:
    """Build the view of a training split of ``len(labels)`` examples.

    Parameters
    ----------
    labels : array-like
        True labels of the full training split.
    n_classes : int
        Number of classes (noisy labels stay in ``range(n_classes)``).
    train_size : int, optional
        Distinct examples to keep; None keeps all.
    label_noise : float, default=0.0
        Fraction of the kept examples whose label is replaced by a wrong one.
    seed : int, default=0
        Seed of the subset and of the noise (not the model's seed: models of
        several seeds share a view).
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    examples = (
        np.arange(n) if train_size is None else subset_indices(n, train_size, seed)
    )
    seen = labels.copy()
    if label_noise:
        # A second stream of the same seed, independent of the subset's.
        seen[examples] = noisy_labels(
            labels[examples], label_noise, n_classes, (seed, 1)
        )
    return TrainingView(tile_indices(examples, n), examples, seen)
