"""Chunked K-Means and logistic regression against scikit-learn."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression

from neuralcode.bigcodes import kmeans_packed, logreg_packed, unpack_rows
from neuralcode.metrics import cluster_purity, code_metrics


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def noisy_codes(rng, n, n_bits, n_classes, flip):
    protos = rng.random((n_classes, n_bits)) < 0.5
    y = rng.integers(0, n_classes, n)
    bits = protos[y] ^ (rng.random((n, n_bits)) < flip)
    return bits, y


@pytest.mark.parametrize("n_bits", [1, 13, 64, 70])
def test_unpack_rows(rng, n_bits):
    bits = rng.random((9, n_bits)) < 0.5
    got = unpack_rows(np.packbits(bits, axis=1), n_bits).numpy()
    np.testing.assert_array_equal(got, bits.astype(np.float32))


def test_kmeans_recovers_separated_clusters_whatever_the_chunk(rng):
    bits, y = noisy_codes(rng, 300, 40, 4, flip=0.05)
    packed = np.packbits(bits, axis=1)
    big = kmeans_packed(packed, 40, n_clusters=4, n_init=3, random_state=1)
    tiny = kmeans_packed(
        packed, 40, n_clusters=4, n_init=3, random_state=1, budget_mb=40 * 4 * 7 / 2**20
    )
    assert cluster_purity(y, big[0]) == 1.0
    np.testing.assert_array_equal(big[0], tiny[0])
    assert big[1] == pytest.approx(tiny[1], rel=1e-6)


def test_kmeans_inertia_matches_scikit_learn(rng):
    bits, _ = noisy_codes(rng, 500, 30, 6, flip=0.3)
    ours = kmeans_packed(np.packbits(bits, 1), 30, n_clusters=6, n_init=10)
    ref = KMeans(6, n_init=10, random_state=0).fit(bits.astype(np.float32))
    # Both are local searches from random starts: within 2 % of each other.
    assert ours[1] == pytest.approx(ref.inertia_, rel=0.02)
    # Inertia is the sum of squared distances to the centres of the labels.
    centres = np.stack([bits[ours[0] == c].mean(0) for c in np.unique(ours[0])])
    recomputed = (
        (bits - centres[np.searchsorted(np.unique(ours[0]), ours[0])]) ** 2
    ).sum()
    assert ours[1] == pytest.approx(recomputed, rel=1e-4)


def test_logreg_matches_scikit_learn(rng):
    bits, y = noisy_codes(rng, 900, 48, 4, flip=0.35)
    xtr, ytr, xte, yte = bits[:600], y[:600], bits[600:], y[600:]
    ours = logreg_packed(
        np.packbits(xtr, 1), ytr, np.packbits(xte, 1), yte, 48, budget_mb=0.01
    )
    ref = LogisticRegression(C=1.0, max_iter=1000).fit(xtr.astype(np.float32), ytr)
    assert ours["converged"] and ours["solver"] == "torch-lbfgs-chunked"
    assert ours["accuracy"] == pytest.approx(ref.score(xte, yte), abs=0.01)
    assert ours["train_accuracy"] == pytest.approx(ref.score(xtr, ytr), abs=0.01)


def test_code_metrics_large_path_agrees_with_dense(rng):
    bits, y = noisy_codes(rng, 500, 40, 3, flip=0.1)
    tr, te = np.packbits(bits[:350], 1), np.packbits(bits[350:], 1)
    kwargs = dict(k=5, n_clusters=3, kmeans_n_init=4, drop_constant=True)
    dense = code_metrics(tr, y[:350], te, y[350:], 40, **kwargs)
    large = code_metrics(tr, y[:350], te, y[350:], 40, dense_budget_mb=0, **kwargs)
    key = {(r["split"], r["metric"]): r["value"] for r in dense}
    for r in large:
        assert r["value"] == pytest.approx(key[(r["split"], r["metric"])], abs=0.02), r
    assert any("chunked" in r["setting"] for r in large)
    with pytest.raises(ValueError, match="multinomial"):
        code_metrics(
            tr, y[:350], te, y[350:], 40, logreg_scheme="ovo", dense_budget_mb=0
        )
