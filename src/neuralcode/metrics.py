"""Encoding metrics of neural codes: redundancy, K-Means, Hamming K-NN, logistic.

A code matrix is bit-packed along the neuron axis, as written by the rest of the
pipeline: ``packed = np.packbits(bits, axis=1)`` (numpy's default big bit
order), of shape ``(n_examples, ceil(n_bits / 8))`` and dtype ``uint8``, with
``n_bits`` passed alongside and the padding bits set to 0.

The metrics follow the paper and the authors' code:

- redundancy ratio ``(n - n_distinct) / n``, on train and on test separately;
- K-Means with 10 clusters fit separately on the train and on the test codes,
  scored by cluster purity (each cluster mapped to its majority label, as the
  authors do) and by the one-to-one (Hungarian) clustering accuracy;
- Hamming K-NN with ``k = 9``, fit on train, scored on test, with an explicit
  and order-independent tie policy (see :func:`knn_accuracy`);
- logistic regression fit on train and scored on test, either multinomial or
  one-vs-one (the authors' choice).
"""

from __future__ import annotations

import logging
import warnings

import faiss
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsOneClassifier

logger = logging.getLogger(__name__)

__all__ = [
    "unpack_codes",
    "pack_codes",
    "redundancy_ratio",
    "constant_columns",
    "cluster_purity",
    "hungarian_accuracy",
    "kmeans_accuracy",
    "knn_predict",
    "knn_accuracy",
    "knn_predict_bruteforce",
    "knn_accuracy_bruteforce",
    "logreg_accuracy",
    "code_metrics",
]

# Upper bound on the number of (query, neighbour) pairs one faiss call returns,
# so that memory stays bounded (int32 distances + int64 ids: 12 bytes a pair,
# about 50 MB) even when ties force a search for many neighbours.
_MAX_BATCH_HITS = 1 << 22

LOGREG_SCHEMES = ("multinomial", "ovo")


# ---------------------------------------------------------------------------
# Packing
# ---------------------------------------------------------------------------


def _n_bytes(n_bits: int) -> int:
    return (n_bits + 7) // 8


def _check_packed(packed, n_bits: int | None = None) -> np.ndarray:
    """Validate a packed code matrix and return it as a C-contiguous uint8 array."""
    packed = np.asarray(packed)
    if packed.ndim != 2:
        raise ValueError(f"packed codes must be 2-D, got shape {packed.shape}")
    if packed.dtype != np.uint8:
        raise ValueError(f"packed codes must be uint8, got {packed.dtype}")
    if n_bits is not None:
        if n_bits < 0:
            raise ValueError(f"n_bits must be >= 0, got {n_bits}")
        if packed.shape[1] != _n_bytes(n_bits):
            raise ValueError(
                f"packed codes have {packed.shape[1]} bytes per row, but "
                f"n_bits={n_bits} needs {_n_bytes(n_bits)}"
            )
    return np.ascontiguousarray(packed)


def unpack_codes(packed, n_bits: int, dtype=np.uint8) -> np.ndarray:
    """Unpack bit-packed codes into a 0/1 matrix.

    Parameters
    ----------
    packed : ndarray of shape (n_examples, ceil(n_bits / 8)), dtype uint8
        Codes packed with ``np.packbits(bits, axis=1)``.
    n_bits : int
        Number of bits (neurons) in a code; the padding bits are dropped.
    dtype : data-type, default=np.uint8
        Data type of the result (``np.float32`` for scikit-learn estimators).

    Returns
    -------
    bits : ndarray of shape (n_examples, n_bits)
        The 0/1 code matrix.
    """
    packed = _check_packed(packed, n_bits)
    bits = np.unpackbits(packed, axis=1, count=n_bits)  # (n, n_bits) uint8
    return bits.astype(dtype, copy=False)


def pack_codes(bits) -> np.ndarray:
    """Pack a 0/1 code matrix along the neuron axis.

    Parameters
    ----------
    bits : array-like of shape (n_examples, n_bits)
        Code matrix; any non-zero entry counts as a 1.

    Returns
    -------
    packed : ndarray of shape (n_examples, ceil(n_bits / 8)), dtype uint8
        ``np.packbits(bits, axis=1)``, with zero padding bits.
    """
    bits = np.asarray(bits)
    if bits.ndim != 2:
        raise ValueError(f"bits must be 2-D, got shape {bits.shape}")
    return np.packbits(bits, axis=1)


def _mask_padding(packed: np.ndarray, n_bits: int) -> np.ndarray:
    """Zero the padding bits, so that they cannot change any Hamming distance."""
    tail = n_bits % 8
    if tail == 0 or packed.shape[1] == 0:
        return packed
    keep = np.uint8((0xFF << (8 - tail)) & 0xFF)  # big bit order: high bits are used
    if not np.any(packed[:, -1] & ~keep):
        return packed
    packed = packed.copy()
    packed[:, -1] &= keep
    return packed


# ---------------------------------------------------------------------------
# Redundancy and constant columns
# ---------------------------------------------------------------------------


def redundancy_ratio(packed) -> float:
    """Fraction of examples whose code repeats an earlier example's code.

    Parameters
    ----------
    packed : ndarray of shape (n_examples, n_bytes), dtype uint8
        Bit-packed codes (zero padding bits).

    Returns
    -------
    ratio : float
        ``(n_examples - n_distinct) / n_examples``: 0 when all codes differ,
        ``(n - 1) / n`` when all are equal.

    Raises
    ------
    ValueError
        If there are no examples.
    """
    packed = _check_packed(packed)
    n = packed.shape[0]
    if n == 0:
        raise ValueError("redundancy_ratio needs at least one code")
    if packed.shape[1] == 0:
        # Zero-bit codes are all the same (empty) code.
        return (n - 1) / n
    rows = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()  # (n,)
    # A Python set compares the bytes on every hash match, so colliding hashes
    # never merge distinct codes: the count is exact.
    n_distinct = len(set(rows.tolist()))
    return (n - n_distinct) / n


def constant_columns(*bit_matrices) -> np.ndarray:
    """Mask of the columns that take a single value over all given matrices.

    Parameters
    ----------
    *bit_matrices : array-like of shape (n_i, n_bits)
        Code matrices with the same number of columns, treated as if stacked
        along the example axis (they are not copied into one array).

    Returns
    -------
    mask : ndarray of shape (n_bits,), dtype bool
        True for the columns that are constant over all rows of all matrices.
    """
    if not bit_matrices:
        raise ValueError("constant_columns needs at least one matrix")
    all_mats = [np.asarray(m) for m in bit_matrices]
    widths = {m.shape[1] for m in all_mats}
    if len(widths) != 1:
        raise ValueError(f"matrices have different numbers of columns: {widths}")
    mats = [m for m in all_mats if m.shape[0] > 0]
    if not mats:
        raise ValueError("constant_columns needs at least one row")
    lo = np.min([m.min(axis=0) for m in mats], axis=0)  # (n_bits,)
    hi = np.max([m.max(axis=0) for m in mats], axis=0)  # (n_bits,)
    return lo == hi


# ---------------------------------------------------------------------------
# K-Means
# ---------------------------------------------------------------------------


def _contingency(labels, clusters) -> np.ndarray:
    """Cluster x label count table, of shape (n_clusters_used, n_labels)."""
    labels = np.asarray(labels)
    clusters = np.asarray(clusters)
    if labels.shape != clusters.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and clusters must be 1-D of equal length, got "
            f"{labels.shape} and {clusters.shape}"
        )
    if labels.size == 0:
        raise ValueError("need at least one example")
    _, lab_idx = np.unique(labels, return_inverse=True)
    _, clu_idx = np.unique(clusters, return_inverse=True)
    table = np.zeros((clu_idx.max() + 1, lab_idx.max() + 1), dtype=np.int64)
    np.add.at(table, (clu_idx, lab_idx), 1)
    return table


def cluster_purity(labels, clusters) -> float:
    """Accuracy when every cluster predicts its most frequent label.

    This is the paper's K-Means accuracy: several clusters may map to the same
    label, so it never decreases as clusters are split.

    Parameters
    ----------
    labels : array-like of shape (n_examples,)
        True labels.
    clusters : array-like of shape (n_examples,)
        Cluster assignments.

    Returns
    -------
    purity : float
        Fraction of examples whose label is their cluster's majority label.
    """
    table = _contingency(labels, clusters)
    return float(table.max(axis=1).sum() / table.sum())


def hungarian_accuracy(labels, clusters) -> float:
    """Accuracy of the best one-to-one mapping from clusters to labels.

    The mapping maximises the number of matched examples (scipy's
    ``linear_sum_assignment`` on the contingency table). When there are more
    clusters than labels, the unmatched clusters count as wrong; when there are
    fewer, some labels are never predicted.

    Parameters
    ----------
    labels : array-like of shape (n_examples,)
        True labels.
    clusters : array-like of shape (n_examples,)
        Cluster assignments.

    Returns
    -------
    accuracy : float
        Fraction of examples matched under the best one-to-one mapping.
    """
    table = _contingency(labels, clusters)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def kmeans_accuracy(
    bits,
    labels,
    n_clusters: int = 10,
    n_init: int = 10,
    random_state: int = 0,
    max_iter: int = 300,
) -> dict:
    """Fit K-Means on codes and score the clusters against the labels.

    Parameters
    ----------
    bits : array-like of shape (n_examples, n_bits)
        0/1 code matrix (unpacked). It is used as float32; a float32 input is
        not converted again.
    labels : array-like of shape (n_examples,)
        True labels.
    n_clusters : int, default=10
        Number of clusters.
    n_init : int, default=10
        Number of k-means++ initialisations; the best inertia is kept.
    random_state : int, default=0
        Seed of the initialisations.
    max_iter : int, default=300
        Maximum number of Lloyd iterations per initialisation.

    Returns
    -------
    result : dict
        ``purity`` (majority mapping, the paper's number), ``hungarian``
        (one-to-one mapping), ``inertia`` and ``n_iter`` of the kept run.
    """
    bits = np.asarray(bits)
    if bits.dtype == np.float32:
        # scikit-learn copies before centring, leaving the caller's array as is.
        x, copy_x = bits, True
    else:
        # Our own float32 copy may be centred in place: one copy, never float64.
        x, copy_x = bits.astype(np.float32), False  # (n, n_bits)
    km = KMeans(
        n_clusters=n_clusters,
        n_init=n_init,
        max_iter=max_iter,
        random_state=random_state,
        copy_x=copy_x,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clusters = km.fit_predict(x)  # (n,)
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            # Typically fewer distinct codes than clusters (highly redundant codes).
            logger.warning("K-Means: %s", w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return {
        "purity": cluster_purity(labels, clusters),
        "hungarian": hungarian_accuracy(labels, clusters),
        "inertia": float(km.inertia_),
        "n_iter": int(km.n_iter_),
    }


# ---------------------------------------------------------------------------
# Hamming K-NN
# ---------------------------------------------------------------------------


def _label_index(y_train):
    """Sorted label values and the index of every training label in them."""
    classes, y_idx = np.unique(np.asarray(y_train), return_inverse=True)
    return classes, y_idx.astype(np.int64)  # (n_labels,), (n_train,)


def _check_k(k: int, n_train: int) -> None:
    if not 1 <= k <= n_train:
        raise ValueError(f"k must be in [1, n_train={n_train}], got k={k}")


def _vote_sorted(dist, y_nb, k: int, n_labels: int) -> np.ndarray:
    """Labels voted by neighbour lists sorted by distance.

    Every list must hold all codes at the k-th distance (and all closer ones).
    The fractional tie weight ``(k - n_closer) / m`` is multiplied by ``m`` for
    all labels of a query, which keeps the argmax and makes the sums exact
    integers (so equal scores compare equal).
    """
    n_q = dist.shape[0]
    d_k = dist[:, k - 1 : k]  # (q, 1)
    closer = dist < d_k  # (q, k')
    tied = dist == d_k  # (q, k')
    n_closer = closer.sum(axis=1, keepdims=True)  # (q, 1)
    m = tied.sum(axis=1, keepdims=True)  # (q, 1)
    weight = np.where(closer, m, np.where(tied, k - n_closer, 0))  # (q, k')
    flat = (np.arange(n_q)[:, None] * n_labels + y_nb).ravel()  # (q * k',)
    # float64 bincount is exact here: every partial sum is an integer <= k * n_train.
    scores = np.bincount(flat, weights=weight.ravel(), minlength=n_q * n_labels)
    # argmax keeps the first maximum, i.e. the smallest label among tied labels.
    return scores.reshape(n_q, n_labels).argmax(axis=1)  # (q,)


def knn_predict(
    train_packed,
    y_train,
    test_packed,
    n_bits: int,
    k: int = 9,
    max_batch_hits: int = _MAX_BATCH_HITS,
) -> np.ndarray:
    """Hamming K-NN predictions on packed codes with faiss.

    Same tie policy as :func:`knn_accuracy`.

    Parameters
    ----------
    train_packed : ndarray of shape (n_train, ceil(n_bits / 8)), dtype uint8
        Bit-packed training codes.
    y_train : array-like of shape (n_train,)
        Training labels.
    test_packed : ndarray of shape (n_test, ceil(n_bits / 8)), dtype uint8
        Bit-packed query codes.
    n_bits : int
        Number of bits in a code.
    k : int, default=9
        Number of neighbours.
    max_batch_hits : int, default=4194304
        Most (query, neighbour) pairs one faiss search may return; bounds
        memory.

    Returns
    -------
    y_pred : ndarray of shape (n_test,)
        Predicted labels, with the dtype of ``y_train``.
    """
    train = _mask_padding(_check_packed(train_packed, n_bits), n_bits)
    test = _mask_padding(_check_packed(test_packed, n_bits), n_bits)
    classes, y_idx = _label_index(y_train)
    n_train, n_test = train.shape[0], test.shape[0]
    if y_idx.shape[0] != n_train:
        raise ValueError("y_train and train_packed differ in length")
    _check_k(k, n_train)
    if n_test == 0:
        return classes[np.empty(0, dtype=np.int64)]

    if train.shape[1] == 0:
        # Zero-bit codes: every distance is 0, so all training codes tie.
        counts = np.bincount(y_idx, minlength=classes.size)
        return classes[np.full(n_test, counts.argmax())]

    # faiss 1.15 accepts any whole number of bytes (d a multiple of 8 bits), and
    # the zeroed padding bits add nothing to the distances: no further padding.
    index = faiss.IndexBinaryFlat(8 * train.shape[1])
    index.add(train)

    # Equal queries get equal predictions: search each distinct code once. This
    # matters for redundant codes, whose ties at distance 0 need long searches.
    rows_void = test.view(np.dtype((np.void, test.shape[1]))).ravel()  # (n_test,)
    _, first, inverse = np.unique(rows_void, return_index=True, return_inverse=True)
    test = test[first]  # (n_distinct, n_bytes)
    n_test = test.shape[0]
    pred_idx = np.empty(n_test, dtype=np.int64)  # (n_distinct,)

    # One more neighbour than k tells whether the tie at the k-th distance is
    # complete; a few more spare most re-searches when small ties are common.
    n_search = min(n_train, 2 * k)
    rows = np.arange(n_test)  # queries whose tie set is still incomplete
    while rows.size:
        step = max(1, max_batch_hits // n_search)
        pending = []
        for start in range(0, rows.size, step):
            r = rows[start : start + step]  # (b,)
            dist, nb = index.search(test[r], n_search)  # (b, n_search) sorted
            # Complete when a farther code follows the k-th distance, or when
            # every training code has been returned.
            if n_search == n_train:
                done = np.ones(r.size, dtype=bool)  # (b,)
            else:
                done = dist[:, -1] > dist[:, k - 1]  # (b,)
            if done.any():
                pred_idx[r[done]] = _vote_sorted(
                    dist[done], y_idx[nb[done]], k, classes.size
                )
            pending.append(r[~done])
        rows = np.concatenate(pending)
        if rows.size:
            n_search = min(n_train, 2 * n_search)
            logger.debug(
                "K-NN: %d queries tie beyond the k-th distance, searching %d",
                rows.size,
                n_search,
            )
    return classes[pred_idx[inverse.ravel()]]  # (n_test,)


def knn_accuracy(
    train_packed,
    y_train,
    test_packed,
    y_test,
    n_bits: int,
    k: int = 9,
    return_predictions: bool = False,
    max_batch_hits: int = _MAX_BATCH_HITS,
):
    """Accuracy of Hamming K-NN on packed codes (faiss ``IndexBinaryFlat``).

    Tie policy (deterministic, independent of the order of the training rows):
    let ``d_k`` be the k-th smallest Hamming distance from a query to the
    training codes. Every training code closer than ``d_k`` votes for its label
    with weight 1; the ``m`` codes at exactly ``d_k`` share the remaining
    ``k - n_closer`` votes equally, each with weight ``(k - n_closer) / m``.
    This is the expected vote when ties at the k-th distance are broken
    uniformly at random. The prediction is the label with the largest summed
    weight; a remaining tie between labels goes to the smallest label.

    All codes at ``d_k`` are found by searching more neighbours (doubling the
    count) for the queries whose last returned distance still equals ``d_k``.
    Equal queries are searched once. Queries are processed in batches of at most
    ``max_batch_hits`` returned pairs, so that memory stays bounded.

    Parameters
    ----------
    train_packed : ndarray of shape (n_train, ceil(n_bits / 8)), dtype uint8
        Bit-packed training codes.
    y_train : array-like of shape (n_train,)
        Training labels.
    test_packed : ndarray of shape (n_test, ceil(n_bits / 8)), dtype uint8
        Bit-packed test codes.
    y_test : array-like of shape (n_test,)
        Test labels.
    n_bits : int
        Number of bits in a code.
    k : int, default=9
        Number of neighbours.
    return_predictions : bool, default=False
        Also return the predicted labels.
    max_batch_hits : int, default=4194304
        Most (query, neighbour) pairs one faiss search may return.

    Returns
    -------
    accuracy : float
        Fraction of test codes whose predicted label equals ``y_test``.
    y_pred : ndarray of shape (n_test,)
        Predicted labels; only when ``return_predictions`` is True.
    """
    y_test = np.asarray(y_test)
    y_pred = knn_predict(
        train_packed, y_train, test_packed, n_bits, k, max_batch_hits=max_batch_hits
    )
    acc = _accuracy(y_test, y_pred)
    return (acc, y_pred) if return_predictions else acc


def _accuracy(y_true, y_pred) -> float:
    y_true = np.asarray(y_true)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"labels and predictions differ in shape: {y_true.shape} vs {y_pred.shape}"
        )
    if y_true.size == 0:
        raise ValueError("accuracy of zero examples is undefined")
    return float(np.mean(y_true == y_pred))


def knn_predict_bruteforce(train_bits, y_train, test_bits, k: int = 9) -> np.ndarray:
    """Reference Hamming K-NN predictions from a full distance matrix.

    Same tie policy as :func:`knn_accuracy`, written independently (no sorting,
    no faiss) to check it. Memory is ``O(n_test * n_train)``: for tests and
    small benchmarks only.

    Parameters
    ----------
    train_bits : array-like of shape (n_train, n_bits)
        0/1 training codes.
    y_train : array-like of shape (n_train,)
        Training labels.
    test_bits : array-like of shape (n_test, n_bits)
        0/1 test codes.
    k : int, default=9
        Number of neighbours.

    Returns
    -------
    y_pred : ndarray of shape (n_test,)
        Predicted labels.
    """
    a = np.asarray(test_bits, dtype=np.float64)  # (n_test, n_bits)
    b = np.asarray(train_bits, dtype=np.float64)  # (n_train, n_bits)
    classes, y_idx = _label_index(y_train)
    _check_k(k, b.shape[0])
    # |a - b|_1 = |a| + |b| - 2 a.b for 0/1 vectors; exact in float64.
    dist = a.sum(1)[:, None] + b.sum(1)[None, :] - 2.0 * (a @ b.T)
    dist = np.rint(dist).astype(np.int64)  # (n_test, n_train)
    d_k = np.partition(dist, k - 1, axis=1)[:, k - 1 : k]  # (n_test, 1)
    onehot = np.eye(classes.size, dtype=np.int64)[y_idx]  # (n_train, n_labels)
    closer = (dist < d_k).astype(np.int64)  # (n_test, n_train)
    tied = (dist == d_k).astype(np.int64)  # (n_test, n_train)
    n_closer = closer.sum(1, keepdims=True)  # (n_test, 1)
    m = tied.sum(1, keepdims=True)  # (n_test, 1)
    # Scores times m: m * (#closer of a label) + (k - n_closer) * (#tied of it).
    scores = m * (closer @ onehot) + (k - n_closer) * (tied @ onehot)
    return classes[scores.argmax(axis=1)]  # (n_test,)


def knn_accuracy_bruteforce(train_bits, y_train, test_bits, y_test, k: int = 9):
    """Reference Hamming K-NN accuracy; see :func:`knn_predict_bruteforce`.

    Parameters
    ----------
    train_bits : array-like of shape (n_train, n_bits)
        0/1 training codes.
    y_train : array-like of shape (n_train,)
        Training labels.
    test_bits : array-like of shape (n_test, n_bits)
        0/1 test codes.
    y_test : array-like of shape (n_test,)
        Test labels.
    k : int, default=9
        Number of neighbours.

    Returns
    -------
    accuracy : float
        Fraction of test codes whose predicted label equals ``y_test``.
    """
    y_pred = knn_predict_bruteforce(train_bits, y_train, test_bits, k)
    return _accuracy(y_test, y_pred)


# ---------------------------------------------------------------------------
# Logistic regression
# ---------------------------------------------------------------------------


def logreg_accuracy(
    train_bits,
    y_train,
    test_bits,
    y_test,
    scheme: str = "multinomial",
    max_iter: int = 1000,
    C: float = 1.0,
    random_state: int = 0,
) -> dict:
    """Fit logistic regression on train codes and score it on test codes.

    Parameters
    ----------
    train_bits : array-like of shape (n_train, n_bits)
        0/1 training codes (used as float32).
    y_train : array-like of shape (n_train,)
        Training labels; at least two classes.
    test_bits : array-like of shape (n_test, n_bits)
        0/1 test codes (used as float32).
    y_test : array-like of shape (n_test,)
        Test labels.
    scheme : {"multinomial", "ovo"}, default="multinomial"
        ``"multinomial"``: one softmax ``LogisticRegression`` (lbfgs).
        ``"ovo"``: ``OneVsOneClassifier(LogisticRegression(...))``, the
        authors' choice (they used scikit-learn's defaults, i.e.
        ``max_iter=100``).
    max_iter : int, default=1000
        Maximum number of lbfgs iterations of every sub-model.
    C : float, default=1.0
        Inverse L2 regularisation strength.
    random_state : int, default=0
        Seed passed to the estimators (lbfgs itself is deterministic).

    Returns
    -------
    result : dict
        ``accuracy`` (test), ``train_accuracy``, ``solver``, ``n_iter`` (most
        iterations over the sub-models) and ``converged`` (every sub-model
        stopped before ``max_iter`` and no ``ConvergenceWarning`` was raised).

    Raises
    ------
    ValueError
        If the training labels hold a single class, or the scheme is unknown.
    """
    if scheme not in LOGREG_SCHEMES:
        raise ValueError(f"scheme must be one of {LOGREG_SCHEMES}, got {scheme!r}")
    y_train = np.asarray(y_train)
    if np.unique(y_train).size < 2:
        raise ValueError(
            "logistic regression needs at least two classes in the training "
            f"labels, got only {np.unique(y_train).tolist()}"
        )
    x_train = np.asarray(train_bits, dtype=np.float32)  # (n_train, n_bits)
    x_test = np.asarray(test_bits, dtype=np.float32)  # (n_test, n_bits)
    solver = "lbfgs"
    base = LogisticRegression(
        C=C, solver=solver, max_iter=max_iter, random_state=random_state
    )
    model = OneVsOneClassifier(base) if scheme == "ovo" else base
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x_train, y_train)
    warned = False
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            warned = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    subs = model.estimators_ if scheme == "ovo" else [model]
    n_iter = max(int(np.max(est.n_iter_)) for est in subs)
    converged = (not warned) and n_iter < max_iter
    if not converged:
        logger.warning(
            "logistic regression (%s) did not converge in max_iter=%d", scheme, max_iter
        )
    return {
        "accuracy": _accuracy(y_test, model.predict(x_test)),
        "train_accuracy": _accuracy(y_train, model.predict(x_train)),
        "solver": solver,
        "n_iter": n_iter,
        "converged": bool(converged),
    }


# ---------------------------------------------------------------------------
# All metrics of one code
# ---------------------------------------------------------------------------


def code_metrics(
    train_packed,
    y_train,
    test_packed,
    y_test,
    n_bits: int,
    *,
    k: int = 9,
    n_clusters: int = 10,
    kmeans_n_init: int = 10,
    logreg_scheme: str = "multinomial",
    logreg_max_iter: int = 1000,
    drop_constant: bool = False,
    seed: int = 0,
    dense_budget_mb: float = 2048,
    logreg: bool = True,
) -> list[dict]:
    """All encoding metrics of one pair of train/test code matrices.

    Parameters
    ----------
    train_packed : ndarray of shape (n_train, ceil(n_bits / 8)), dtype uint8
        Bit-packed training codes.
    y_train : array-like of shape (n_train,)
        Training labels.
    test_packed : ndarray of shape (n_test, ceil(n_bits / 8)), dtype uint8
        Bit-packed test codes.
    y_test : array-like of shape (n_test,)
        Test labels.
    n_bits : int
        Number of bits in a code.
    k : int, default=9
        Neighbours of the Hamming K-NN.
    n_clusters : int, default=10
        Clusters of K-Means.
    kmeans_n_init : int, default=10
        K-Means initialisations.
    logreg_scheme : {"multinomial", "ovo"}, default="multinomial"
        Logistic-regression scheme, see :func:`logreg_accuracy`.
    logreg_max_iter : int, default=1000
        Maximum lbfgs iterations.
    drop_constant : bool, default=False
        Remove the columns constant over train and test together before
        K-Means and logistic regression (the authors' step).
    dense_budget_mb : float, default=2048
        Memory of the float32 code matrices above which K-Means and logistic
        regression switch to the chunked solvers of :mod:`neuralcode.bigcodes`
        (K-NN and redundancy always work on packed codes).
    seed : int, default=0
        ``random_state`` of K-Means and logistic regression.
    logreg : bool, default=True
        Fit the logistic regression (the costliest metric on large codes);
        False leaves its rows out.

    Returns
    -------
    rows : list of dict
        One row per (split, metric) with keys ``split`` ("train" or "test"),
        ``metric``, ``value``, ``setting`` (the metric's parameters and
        diagnostics, as text) and ``n_bits_used`` (bits the metric saw).
        Metrics: ``redundancy`` (both splits, on all bits), ``kmeans_purity``
        and ``kmeans_hungarian`` (fit separately on each split), ``knn``
        (test) and ``logreg`` (test accuracy, and train accuracy as split
        "train").
    """
    train_packed = _check_packed(train_packed, n_bits)
    test_packed = _check_packed(test_packed, n_bits)
    y_train = np.asarray(y_train)
    y_test = np.asarray(y_test)
    rows: list[dict] = []

    def add(split, metric, value, setting, used):
        rows.append(_row(split, metric, value, setting, used))

    for split, packed in (("train", train_packed), ("test", test_packed)):
        add(split, "redundancy", redundancy_ratio(packed), "all bits", n_bits)

    # A column constant over train and test adds the same 0 to every train-test
    # Hamming distance and never tells two codes apart, so neither the K-NN
    # distances nor the redundancy depend on dropping it: both use all bits.
    knn_acc = knn_accuracy(train_packed, y_train, test_packed, y_test, n_bits, k=k)
    add("test", "knn", knn_acc, f"k={k},hamming", n_bits)

    dense_mb = (len(train_packed) + len(test_packed)) * n_bits * 4 / 2**20
    if dense_mb > dense_budget_mb:
        rows += _large_code_metrics(
            train_packed,
            y_train,
            test_packed,
            y_test,
            n_bits,
            n_clusters=n_clusters,
            kmeans_n_init=kmeans_n_init,
            logreg_scheme=logreg_scheme,
            logreg_max_iter=logreg_max_iter,
            drop_constant=drop_constant,
            seed=seed,
            logreg=logreg,
        )
        return rows

    x_train = unpack_codes(train_packed, n_bits, dtype=np.float32)  # (n_train, b)
    x_test = unpack_codes(test_packed, n_bits, dtype=np.float32)  # (n_test, b)
    if drop_constant:
        keep = ~constant_columns(x_train, x_test)  # (n_bits,)
        logger.info("dropping %d constant of %d bits", n_bits - keep.sum(), n_bits)
        x_train = np.ascontiguousarray(x_train[:, keep])
        x_test = np.ascontiguousarray(x_test[:, keep])
    used = x_train.shape[1]
    drop = f",drop_constant={drop_constant}"

    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        km = kmeans_accuracy(
            x, y, n_clusters=n_clusters, n_init=kmeans_n_init, random_state=seed
        )
        setting = (
            f"n_clusters={n_clusters},n_init={kmeans_n_init},seed={seed}"
            f",n_iter={km['n_iter']}{drop}"
        )
        add(split, "kmeans_purity", km["purity"], setting, used)
        add(split, "kmeans_hungarian", km["hungarian"], setting, used)

    if not logreg:
        return rows
    lr = logreg_accuracy(
        x_train,
        y_train,
        x_test,
        y_test,
        scheme=logreg_scheme,
        max_iter=logreg_max_iter,
        random_state=seed,
    )
    setting = (
        f"scheme={logreg_scheme},solver={lr['solver']},max_iter={logreg_max_iter}"
        f",n_iter={lr['n_iter']},converged={lr['converged']}{drop}"
    )
    add("test", "logreg", lr["accuracy"], setting, used)
    add("train", "logreg", lr["train_accuracy"], setting, used)
    return rows


def _large_code_metrics(
    train_packed,
    y_train,
    test_packed,
    y_test,
    n_bits,
    *,
    n_clusters,
    kmeans_n_init,
    logreg_scheme,
    logreg_max_iter,
    drop_constant,
    seed,
    logreg=True,
) -> list[dict]:
    """K-Means and logistic rows of :func:`code_metrics` on packed codes.

    Used when the float32 matrices would not fit ``dense_budget_mb``: the
    chunked solvers of :mod:`neuralcode.bigcodes` never unpack all rows.
    """
    from .bigcodes import kmeans_packed, logreg_packed, unpack_rows

    if logreg and logreg_scheme != "multinomial":
        raise ValueError(
            f"one-vs-one logistic regression needs the {n_bits}-bit codes "
            "unpacked in memory; set metrics.logreg_scheme to multinomial for "
            "codes this large"
        )
    if drop_constant:
        ones = np.zeros(n_bits, dtype=np.int64)
        for packed in (train_packed, test_packed):
            for start in range(0, len(packed), 4096):
                ones += (
                    unpack_rows(packed[start : start + 4096], n_bits)
                    .sum(0)
                    .long()
                    .numpy()
                )
        n_total = len(train_packed) + len(test_packed)
        keep = (ones > 0) & (ones < n_total)
        train_packed = _select_bits(train_packed, n_bits, keep)
        test_packed = _select_bits(test_packed, n_bits, keep)
        used = int(keep.sum())
    else:
        used = n_bits
    drop = f",drop_constant={drop_constant}"
    rows = []
    for split, packed, y in (
        ("train", train_packed, y_train),
        ("test", test_packed, y_test),
    ):
        clusters, inertia, n_iter = kmeans_packed(
            packed, used, n_clusters=n_clusters, n_init=kmeans_n_init, random_state=seed
        )
        setting = (
            f"n_clusters={n_clusters},n_init={kmeans_n_init},seed={seed}"
            f",n_iter={n_iter},solver=chunked-lloyd{drop}"
        )
        for metric, fn in (
            ("kmeans_purity", cluster_purity),
            ("kmeans_hungarian", hungarian_accuracy),
        ):
            rows.append(_row(split, metric, fn(y, clusters), setting, used))
    if not logreg:
        return rows
    lr = logreg_packed(
        train_packed, y_train, test_packed, y_test, used, max_iter=logreg_max_iter
    )
    setting = (
        f"scheme=multinomial,solver={lr['solver']},max_iter={logreg_max_iter}"
        f",n_iter={lr['n_iter']},converged={lr['converged']}{drop}"
    )
    rows.append(_row("test", "logreg", lr["accuracy"], setting, used))
    rows.append(_row("train", "logreg", lr["train_accuracy"], setting, used))
    return rows


def _row(split, metric, value, setting, used) -> dict:
    return {
        "split": split,
        "metric": metric,
        "value": float(value),
        "setting": setting,
        "n_bits_used": int(used),
    }


def _select_bits(packed, n_bits, keep, rows=4096) -> np.ndarray:
    """Repack the columns ``keep`` of packed codes, a chunk of rows at a time."""
    out = np.zeros((len(packed), _n_bytes(int(keep.sum()))), dtype=np.uint8)
    for start in range(0, len(packed), rows):
        bits = np.unpackbits(packed[start : start + rows], axis=1, count=n_bits)
        out[start : start + rows] = np.packbits(bits[:, keep], axis=1)
    return out
