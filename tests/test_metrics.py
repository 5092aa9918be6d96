"""Tests of neuralcode.metrics: packing, redundancy, K-Means, K-NN, logistic."""

import warnings

import numpy as np
import pytest

from neuralcode.metrics import (
    cluster_purity,
    code_metrics,
    constant_columns,
    hungarian_accuracy,
    kmeans_accuracy,
    knn_accuracy,
    knn_accuracy_bruteforce,
    knn_predict,
    knn_predict_bruteforce,
    logreg_accuracy,
    pack_codes,
    redundancy_ratio,
    unpack_codes,
)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def random_bits(rng, n, n_bits, p=0.5):
    return (rng.random((n, n_bits)) < p).astype(np.uint8)  # (n, n_bits)


# ---------------------------------------------------------------------------
# Packing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_bits", [1, 3, 8, 13, 64, 70, 1024])
def test_pack_unpack_round_trip(rng, n_bits):
    bits = random_bits(rng, 17, n_bits)
    packed = pack_codes(bits)
    assert packed.dtype == np.uint8
    assert packed.shape == (17, (n_bits + 7) // 8)
    np.testing.assert_array_equal(packed, np.packbits(bits, axis=1))
    np.testing.assert_array_equal(unpack_codes(packed, n_bits), bits)
    as_float = unpack_codes(packed, n_bits, dtype=np.float32)
    assert as_float.dtype == np.float32
    np.testing.assert_array_equal(as_float, bits)


def test_unpack_rejects_wrong_width():
    with pytest.raises(ValueError, match="n_bits"):
        unpack_codes(np.zeros((2, 2), dtype=np.uint8), n_bits=20)


# ---------------------------------------------------------------------------
# Redundancy
# ---------------------------------------------------------------------------


def test_redundancy_hand_made():
    bits = np.array(
        [[0, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 0], [1, 0, 0]], dtype=np.uint8
    )  # 5 rows, 3 distinct
    assert redundancy_ratio(pack_codes(bits)) == pytest.approx(0.4)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_redundancy_all_same_and_all_distinct(n):
    same = np.ones((n, 12), dtype=np.uint8)
    assert redundancy_ratio(pack_codes(same)) == pytest.approx((n - 1) / n)
    distinct = np.eye(n, 12, dtype=np.uint8)  # n distinct one-hot rows
    assert redundancy_ratio(pack_codes(distinct)) == 0.0


def test_redundancy_empty_raises():
    with pytest.raises(ValueError):
        redundancy_ratio(np.zeros((0, 3), dtype=np.uint8))


@pytest.mark.parametrize(("n_bits", "n"), [(10, 3000), (77, 2000), (1024, 500)])
def test_redundancy_matches_unique_rows(rng, n_bits, n):
    bits = random_bits(rng, n, n_bits)
    # Copy a third of the rows elsewhere so that long codes repeat too.
    src = rng.integers(0, n, n // 3)
    dst = rng.integers(0, n, n // 3)
    bits[dst] = bits[src]
    n_distinct = np.unique(bits, axis=0).shape[0]
    assert redundancy_ratio(pack_codes(bits)) == pytest.approx((n - n_distinct) / n)


# ---------------------------------------------------------------------------
# Constant columns
# ---------------------------------------------------------------------------


def test_constant_columns_hand_case():
    a = np.array([[0, 1, 1, 0], [0, 1, 0, 0]], dtype=np.uint8)
    b = np.array([[0, 1, 1, 1]], dtype=np.uint8)
    # Column 3 is constant within each matrix but not over both.
    np.testing.assert_array_equal(constant_columns(a), [True, True, False, True])
    np.testing.assert_array_equal(constant_columns(a, b), [True, True, False, False])


# ---------------------------------------------------------------------------
# K-Means
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "clusters", "purity", "hungarian"),
    [
        # Both clusters' majority is label 0: purity 6/9; one-to-one A->0, B->1.
        ([0, 0, 0, 1, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1, 1, 1, 1], 6 / 9, 5 / 9),
        # More clusters than labels: cluster 2 stays unmatched.
        ([0, 0, 1, 1, 1, 0], [0, 0, 1, 1, 2, 2], 5 / 6, 4 / 6),
        # Fewer clusters than labels, arbitrary label and cluster values.
        ([7, 3, 5, 5], [9, 9, 9, 9], 2 / 4, 2 / 4),
        # A permutation of the labels is perfect under both mappings.
        ([2, 2, 0, 0, 1], [5, 5, 3, 3, 4], 1.0, 1.0),
    ],
)
def test_purity_and_hungarian_by_hand(labels, clusters, purity, hungarian):
    assert cluster_purity(labels, clusters) == pytest.approx(purity)
    assert hungarian_accuracy(labels, clusters) == pytest.approx(hungarian)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_kmeans_separated_blobs(rng, dtype):
    n_labels, per_label, n_bits = 4, 30, 64
    protos = random_bits(rng, n_labels, n_bits)
    labels = np.repeat(np.arange(n_labels), per_label)  # (120,)
    flips = random_bits(rng, labels.size, n_bits, p=0.03)
    bits = (protos[labels] ^ flips).astype(dtype)  # (120, 64)
    before = bits.copy()
    res = kmeans_accuracy(bits, labels, n_clusters=n_labels, n_init=3, random_state=0)
    assert res["purity"] == 1.0
    assert res["hungarian"] == 1.0
    assert res["inertia"] > 0
    assert res["n_iter"] >= 1
    np.testing.assert_array_equal(bits, before)  # the input is left untouched


def test_kmeans_fewer_distinct_codes_than_clusters(rng, caplog):
    # Highly redundant codes: 4 distinct codes, 10 clusters. scikit-learn's
    # ConvergenceWarning is logged rather than leaked.
    protos = random_bits(rng, 4, 16)
    labels = np.arange(40) % 4
    bits = protos[labels]  # (40, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = kmeans_accuracy(bits, labels, n_clusters=10, n_init=2, random_state=0)
    assert res["purity"] == 1.0
    assert res["inertia"] == pytest.approx(0.0, abs=1e-6)
    assert "distinct clusters" in caplog.text


# ---------------------------------------------------------------------------
# Hamming K-NN
# ---------------------------------------------------------------------------


def test_knn_hand_case_fractional_tie():
    # Distances from query 00000: t0 0 (label 3), t1 1 (label 1), t2..t4 2
    # (labels 2, 2, 3), t5 5 (label 1).
    # k=3: d_k = 2; t0 and t1 vote 1 each and the three tied codes share the
    # last vote (1/3 each): 3 -> 4/3, 1 -> 1, 2 -> 2/3, so 3. Taking the first
    # tied code by row order (t2, label 2) would give a 1-1-1 tie, i.e. label 1.
    # k=2: d_k = 1, no tie; labels 3 and 1 get one vote each -> smaller label 1.
    # Distances from query 11111: t5 0 (label 1), t2..t4 3, t1 4, t0 5.
    # k=3: t5 votes 1, the tied t2..t4 share 2 votes: 2 -> 4/3, 1 -> 1, 3 -> 2/3.
    # k=2: the tied codes share 1 vote: 1 -> 1, 2 -> 2/3, 3 -> 1/3.
    train = np.array(
        [
            [0, 0, 0, 0, 0],
            [1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [0, 1, 1, 0, 0],
            [0, 0, 1, 1, 0],
            [1, 1, 1, 1, 1],
        ],
        dtype=np.uint8,
    )
    y_train = np.array([3, 1, 2, 2, 3, 1])
    test = np.array([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=np.uint8)
    expected = {3: [3, 2], 2: [1, 1]}
    for k, exp in expected.items():
        acc, pred = knn_accuracy(
            pack_codes(train),
            y_train,
            pack_codes(test),
            np.array(exp),
            n_bits=5,
            k=k,
            return_predictions=True,
        )
        np.testing.assert_array_equal(pred, exp)
        assert acc == 1.0
        np.testing.assert_array_equal(
            knn_predict_bruteforce(train, y_train, test, k), exp
        )


@pytest.mark.parametrize("n_bits", [3, 5, 12, 70, 130])
@pytest.mark.parametrize("k", [1, 9])
def test_knn_faiss_equals_bruteforce(rng, n_bits, k):
    n_train, n_test = 300, 200
    classes = np.array([2, 5, 7, 11])  # non-contiguous label values
    # Biased bits make near-duplicates and ties at the k-th distance common.
    train = random_bits(rng, n_train, n_bits, p=0.2)
    test = random_bits(rng, n_test, n_bits, p=0.2)
    y_train = rng.choice(classes, n_train)
    y_test = rng.choice(classes, n_test)
    acc, pred = knn_accuracy(
        pack_codes(train),
        y_train,
        pack_codes(test),
        y_test,
        n_bits,
        k=k,
        return_predictions=True,
        max_batch_hits=500,  # force several batches and re-searches
    )
    ref = knn_predict_bruteforce(train, y_train, test, k)
    np.testing.assert_array_equal(pred, ref)
    assert acc == knn_accuracy_bruteforce(train, y_train, test, y_test, k)


@pytest.mark.parametrize("n_bits", [4, 12, 70])
def test_knn_independent_of_training_order(rng, n_bits):
    n_train, k = 250, 9
    train = random_bits(rng, n_train, n_bits, p=0.3)
    test = random_bits(rng, 120, n_bits, p=0.3)
    y_train = rng.integers(0, 5, n_train)
    pred = knn_predict(pack_codes(train), y_train, pack_codes(test), n_bits, k)
    for _ in range(3):
        perm = rng.permutation(n_train)
        pred_perm = knn_predict(
            pack_codes(train[perm]), y_train[perm], pack_codes(test), n_bits, k
        )
        np.testing.assert_array_equal(pred_perm, pred)


def test_knn_ignores_padding_bits(rng):
    n_bits = 13
    train = pack_codes(random_bits(rng, 80, n_bits))
    test = pack_codes(random_bits(rng, 40, n_bits))
    y_train = rng.integers(0, 3, 80)
    dirty_train = train.copy()
    dirty_train[:, -1] |= rng.integers(0, 8, 80, dtype=np.uint8)  # low 3 bits
    clean = knn_predict(train, y_train, test, n_bits, 5)
    np.testing.assert_array_equal(
        knn_predict(dirty_train, y_train, test, n_bits, 5), clean
    )


def test_knn_k_larger_than_train_raises(rng):
    train = pack_codes(random_bits(rng, 4, 8))
    with pytest.raises(ValueError, match="k must be"):
        knn_accuracy(train, np.arange(4), train, np.arange(4), 8, k=9)


# ---------------------------------------------------------------------------
# Logistic regression
# ---------------------------------------------------------------------------


def separable(rng, n, n_labels, n_bits=12):
    labels = np.arange(n) % n_labels  # (n,)
    bits = random_bits(rng, n, n_bits)
    bits[:, :n_labels] = np.eye(n_labels, dtype=np.uint8)[labels]  # one-hot label
    return bits, labels


@pytest.mark.parametrize("scheme", ["multinomial", "ovo"])
@pytest.mark.parametrize("n_labels", [2, 3])
def test_logreg_separable(rng, scheme, n_labels):
    train, y_train = separable(rng, 60, n_labels)
    test, y_test = separable(rng, 30, n_labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = logreg_accuracy(train, y_train, test, y_test, scheme=scheme, C=10.0)
    assert res["accuracy"] == 1.0
    assert res["train_accuracy"] == 1.0
    assert res["converged"] is True
    assert res["solver"] == "lbfgs"
    assert 1 <= res["n_iter"] < 1000


@pytest.mark.parametrize("scheme", ["multinomial", "ovo"])
def test_logreg_non_convergence_is_recorded_not_printed(rng, scheme):
    train = random_bits(rng, 80, 30)
    y_train = rng.integers(0, 3, 80)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked ConvergenceWarning would fail
        res = logreg_accuracy(train, y_train, train, y_train, scheme=scheme, max_iter=1)
    assert res["converged"] is False
    assert res["n_iter"] == 1


def test_logreg_single_class_raises(rng):
    train = random_bits(rng, 10, 8)
    with pytest.raises(ValueError, match="two classes"):
        logreg_accuracy(train, np.zeros(10), train, np.zeros(10))


# ---------------------------------------------------------------------------
# All metrics
# ---------------------------------------------------------------------------


@pytest.fixture
def small_codes(rng):
    n_bits = 40
    train, y_train = separable(rng, 150, 3, n_bits)
    test, y_test = separable(rng, 60, 3, n_bits)
    train[:, -5:] = 1  # constant columns over train and test
    test[:, -5:] = 1
    train[:40] = train[0]  # some redundancy
    return pack_codes(train), y_train, pack_codes(test), y_test, n_bits


@pytest.mark.parametrize("drop_constant", [False, True])
def test_code_metrics_rows(small_codes, drop_constant):
    train, y_train, test, y_test, n_bits = small_codes
    rows = code_metrics(
        train,
        y_train,
        test,
        y_test,
        n_bits,
        n_clusters=3,
        kmeans_n_init=2,
        drop_constant=drop_constant,
        seed=0,
    )
    keys = [(r["split"], r["metric"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert set(keys) == {
        ("train", "redundancy"),
        ("test", "redundancy"),
        ("train", "kmeans_purity"),
        ("test", "kmeans_purity"),
        ("train", "kmeans_hungarian"),
        ("test", "kmeans_hungarian"),
        ("test", "knn"),
        ("train", "logreg"),
        ("test", "logreg"),
    }
    for r in rows:
        assert isinstance(r["value"], float)
        assert 0.0 <= r["value"] <= 1.0
        assert isinstance(r["setting"], str)
    values = {(r["split"], r["metric"]): r for r in rows}
    assert values[("train", "redundancy")]["value"] == pytest.approx(
        redundancy_ratio(train)
    )
    assert values[("train", "redundancy")]["n_bits_used"] == n_bits
    expected_used = n_bits - 5 if drop_constant else n_bits
    assert values[("test", "logreg")]["n_bits_used"] == expected_used
    assert values[("test", "knn")]["value"] == knn_accuracy(
        train, y_train, test, y_test, n_bits
    )


def test_dropping_constant_columns_keeps_knn(small_codes):
    train, y_train, test, y_test, n_bits = small_codes
    keep = ~constant_columns(unpack_codes(train, n_bits), unpack_codes(test, n_bits))
    tr = unpack_codes(train, n_bits)[:, keep]
    te = unpack_codes(test, n_bits)[:, keep]
    _, pred_all = knn_accuracy(
        train, y_train, test, y_test, n_bits, return_predictions=True
    )
    _, pred_kept = knn_accuracy(
        pack_codes(tr),
        y_train,
        pack_codes(te),
        y_test,
        int(keep.sum()),
        return_predictions=True,
    )
    np.testing.assert_array_equal(pred_kept, pred_all)
    assert redundancy_ratio(pack_codes(tr)) == redundancy_ratio(train)


@pytest.mark.parametrize("budget", [2048, 0])  # dense path, chunked path
def test_logreg_can_be_left_out(small_codes, budget):
    train, y_train, test, y_test, n_bits = small_codes
    kwargs = dict(n_clusters=3, kmeans_n_init=1, seed=0, dense_budget_mb=budget)
    rows = code_metrics(train, y_train, test, y_test, n_bits, logreg=False, **kwargs)
    assert "logreg" not in {r["metric"] for r in rows}
    full = code_metrics(train, y_train, test, y_test, n_bits, **kwargs)
    assert {r["metric"] for r in full} - {r["metric"] for r in rows} == {"logreg"}
    # The other rows do not depend on the switch.
    same = [r for r in full if r["metric"] != "logreg"]
    assert [(r["metric"], r["value"]) for r in same] == [
        (r["metric"], r["value"]) for r in rows
    ]
