"""Training views: nested subsets tiled to full length, exact label noise."""

import numpy as np
import pytest

from neuralcode.views import (
    noisy_labels,
    subset_indices,
    tile_indices,
    training_view,
)


def test_tiling_repeats_in_order_and_cuts_to_length():
    assert tile_indices(np.array([4, 7, 9]), 8).tolist() == [4, 7, 9, 4, 7, 9, 4, 7]
    assert tile_indices(np.array([2]), 3).tolist() == [2, 2, 2]
    # A subset as long as the split is the split itself.
    assert tile_indices(np.arange(5), 5).tolist() == [0, 1, 2, 3, 4]


def test_subsets_of_one_seed_nest_and_differ_across_seeds():
    small, large = subset_indices(100, 10, 3), subset_indices(100, 40, 3)
    assert len(set(small)) == 10 and set(small) <= set(large)
    assert not np.array_equal(small, subset_indices(100, 10, 4))
    with pytest.raises(ValueError, match="outside 1..100"):
        subset_indices(100, 101, 0)


def test_every_tiled_example_appears_equally_often():
    view = training_view(np.zeros(1000, dtype=int), 10, train_size=30, seed=1)
    assert len(view.order) == 1000
    counts = np.bincount(view.order, minlength=1000)[view.examples]
    # 1000 = 33 * 30 + 10: every example 33 or 34 times, nothing else drawn.
    assert set(counts) == {33, 34} and counts.sum() == 1000
    assert set(np.flatnonzero(np.bincount(view.order))) == set(view.examples)


@pytest.mark.parametrize("ratio, n_wrong", [(0.1, 100), (0.25, 250), (0.0, 0)])
def test_label_noise_makes_exactly_that_fraction_wrong(ratio, n_wrong):
    y = np.arange(1000) % 10
    noisy = noisy_labels(y, ratio, 10, seed=0)
    assert (noisy != y).sum() == n_wrong
    assert noisy.min() >= 0 and noisy.max() <= 9
    np.testing.assert_array_equal(noisy, noisy_labels(y, ratio, 10, seed=0))


def test_wrong_labels_spread_over_the_other_classes():
    y = np.zeros(20000, dtype=int)
    noisy = noisy_labels(y, 0.5, 10, seed=2)
    counts = np.bincount(noisy[noisy != 0], minlength=10)[1:]
    # 10,000 wrong labels over the 9 other classes: about 1,111 each.
    assert counts.sum() == 10000
    assert counts.min() > 10000 / 9 * 0.9 and counts.max() < 10000 / 9 * 1.1


def test_noise_in_a_view_touches_only_its_subset():
    y = np.arange(500) % 10
    view = training_view(y, 10, train_size=100, label_noise=0.2, seed=5)
    wrong = np.flatnonzero(view.labels != y)
    assert len(wrong) == 20 and set(wrong) <= set(view.examples)


def test_the_full_view_is_the_identity():
    y = np.arange(50) % 10
    view = training_view(y, 10)
    assert view.order.tolist() == list(range(50))
    assert view.examples.tolist() == list(range(50))
    np.testing.assert_array_equal(view.labels, y)
