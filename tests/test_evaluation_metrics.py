"""vfcross.metrics: verification, matching and retrieval metrics against scikit-learn and hand-solved cases."""

import itertools
import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from fakes import average_precisions
from vfcross.metrics import (
    eer,
    chance_mean_average_precision,
    matching_credits,
    retrieval_map,
    roc_auc,
    roc_points,
)


def matching_accuracy(similarities: np.ndarray) -> float:
    """Fraction of 1:N trials in which the true match (column 0) is picked, ties at random."""
    return float(matching_credits(similarities).mean())


def mean_of_average_precisions(per_query: np.ndarray) -> float:
    """Mean of per-query APs without the NaN ones (warning how many); ValueError when none remain."""
    per_query = np.asarray(per_query, dtype=np.float64)
    excluded = int(np.isnan(per_query).sum())
    if excluded == len(per_query):
        raise ValueError("no query has a relevant item in the gallery; mean average precision is undefined")
    if excluded:
        warnings.warn(f"{excluded} of {len(per_query)} queries have no relevant item in the gallery", stacklevel=2)
    return float(np.nanmean(per_query))


def mean_average_precision(similarity, query_labels, gallery_labels, chunk_size: int = 1024) -> float:
    """Mean over queries of :func:`average_precisions` (queries without a relevant item left out)."""
    return mean_of_average_precisions(average_precisions(similarity, query_labels, gallery_labels, chunk_size))


# --- verification: ROC, AUC, EER ---------------------------------------------------------------


@pytest.fixture(params=["random", "tied"])
def scored(request):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = rng.normal(size=500) + labels
    if request.param == "tied":
        scores = np.round(scores, 1)  # many exact ties, also across classes
    return scores, labels


def test_auc_matches_sklearn(scored):
    scores, labels = scored
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_the_epoch_selection_uses_these_metrics():
    from vfcross.backbone import embedding

    assert embedding.roc_auc is roc_auc  # the AUC that picks the kept epoch is the reported one


def test_roc_points_match_sklearn(scored):
    scores, labels = scored
    fpr, tpr, thr = roc_points(scores, labels)
    sk_fpr, sk_tpr, sk_thr = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thr[1:], sk_thr[1:])


def test_eer_by_hand():
    # Positives 0.9, 0.8, 0.3; negatives 0.7, 0.2, 0.1. Thresholding between 0.7 and 0.3
    # rejects one positive (FRR 1/3) and accepts one negative (FAR 1/3): EER = 1/3.
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])
    assert eer(scores, labels) == pytest.approx(1 / 3)


def test_eer_interpolates_between_roc_points():
    # One positive above one negative, one below: ROC (0,0) (0,.5) (.5,.5) (.5,1) (1,1) -> EER 0.5.
    assert eer(np.array([0.9, 0.5, 0.7, 0.1]), np.array([1, 1, 0, 0])) == pytest.approx(0.5)
    # Perfect separation and perfect inversion.
    assert eer(np.array([2.0, 1.0]), np.array([1, 0])) == pytest.approx(0.0)
    assert eer(np.array([1.0, 2.0]), np.array([1, 0])) == pytest.approx(1.0)


def test_eer_lies_on_sklearn_roc_crossing(scored):
    # On scikit-learn's ROC, find the segment where FNR - FPR changes sign: the EER must lie
    # within that segment's FPR range and within its FNR range.
    scores, labels = scored
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    gap = (1 - tpr) - fpr
    i = int(np.flatnonzero(gap <= 0)[0])
    value = eer(scores, labels)
    assert fpr[i - 1] - 1e-12 <= value <= fpr[i] + 1e-12
    assert 1 - tpr[i] - 1e-12 <= value <= 1 - tpr[i - 1] + 1e-12


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_auc(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ValueError, match="0 or 1"):
        eer(np.array([0.1, 0.2]), np.array([1, 2]))
    with pytest.raises(ValueError, match="length"):
        roc_auc(np.array([0.1]), np.array([1, 0]))
    with pytest.raises(ValueError, match="finite"):
        roc_auc(np.array([np.nan, 0.2]), np.array([1, 0]))


# --- retrieval: reference and problems -----------------------------------------------------------


def sklearn_aps(similarity, query_labels, gallery_labels):
    """Reference: scikit-learn's AP per query, NaN where no gallery item is relevant."""
    return np.array(
        [
            average_precision_score(gallery_labels == label, row) if (gallery_labels == label).any() else np.nan
            for label, row in zip(query_labels, similarity)
        ]
    )


@pytest.fixture(params=["random", "tied"])
def retrieval_problem(request):
    rng = np.random.default_rng(5)
    query_labels = rng.integers(0, 15, 80)
    gallery_labels = rng.integers(0, 15, 250)
    similarity = rng.normal(size=(80, 250)) + (query_labels[:, None] == gallery_labels[None, :])
    if request.param == "tied":
        similarity = np.round(similarity, 1)  # many ties, within and across relevance
    return similarity, query_labels, gallery_labels


# --- matching ---------------------------------------------------------------------------------


def test_matching_accuracy_by_hand_with_ties():
    similarities = np.array(
        [
            [0.9, 0.1, 0.2],  # true match strictly best: 1
            [0.1, 0.9, 0.2],  # impostor best: 0
            [0.5, 0.5, 0.2],  # true match tied with one impostor: 1/2
            [0.7, 0.7, 0.7],  # three-way tie: 1/3
            [0.3, 0.8, 0.8],  # impostors tied above the true match: 0
        ]
    )
    np.testing.assert_allclose(matching_credits(similarities), [1, 0, 1 / 2, 1 / 3, 0])
    assert matching_accuracy(similarities) == pytest.approx((1 + 0.5 + 1 / 3) / 5)


def test_matching_accuracy_is_argmax_rate_without_ties():
    rng = np.random.default_rng(0)
    similarities = rng.normal(size=(1000, 6))
    assert matching_accuracy(similarities) == pytest.approx(np.mean(similarities.argmax(axis=1) == 0))


def test_matching_accuracy_equals_random_tie_breaking_on_average():
    rng = np.random.default_rng(1)
    similarities = rng.integers(0, 3, size=(4000, 4)).astype(float)  # ties everywhere
    jitter = rng.random((200, *similarities.shape)) * 1e-3  # random tie-breaking, 200 times
    simulated = np.mean((similarities + jitter).argmax(axis=2) == 0)
    assert matching_accuracy(similarities) == pytest.approx(simulated, abs=0.005)


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((4, 1)), np.zeros((0, 3)), np.array([[1.0, np.nan]])])
def test_matching_accuracy_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        matching_accuracy(bad)


# --- average precision ------------------------------------------------------------------------


def test_average_precisions_match_sklearn(retrieval_problem):
    similarity, query_labels, gallery_labels = retrieval_problem
    ours = average_precisions(similarity, query_labels, gallery_labels)
    np.testing.assert_allclose(ours, sklearn_aps(similarity, query_labels, gallery_labels), rtol=0, atol=1e-12)
    expected = np.mean(sklearn_aps(similarity, query_labels, gallery_labels))
    assert mean_average_precision(similarity, query_labels, gallery_labels) == pytest.approx(expected, abs=1e-12)


def test_average_precision_tie_by_hand():
    # Relevant scores 0.9 and 0.5 (tied with an irrelevant item): at 0.9 precision 1, recall 1/2;
    # at 0.5 the tied pair enters at once, precision 2/3, recall 1 -> AP = 1/2 + 1/2 * 2/3.
    similarity = np.array([[0.9, 0.5, 0.5, 0.1]])
    ap = average_precisions(similarity, ["a"], np.array(["a", "a", "b", "b"]))
    assert ap[0] == pytest.approx(0.5 + 0.5 * 2 / 3)


@pytest.mark.parametrize("chunk_size", [1, 7, 10_000])
def test_average_precisions_independent_of_chunking(retrieval_problem, chunk_size):
    similarity, query_labels, gallery_labels = retrieval_problem
    np.testing.assert_array_equal(
        average_precisions(similarity, query_labels, gallery_labels, chunk_size=chunk_size),
        average_precisions(similarity, query_labels, gallery_labels),
    )


def test_queries_without_relevant_items_are_excluded_with_warning():
    similarity = np.array([[0.9, 0.1], [0.8, 0.2], [0.5, 0.4]])  # APs 1, 1/2, none
    query_labels, gallery_labels = np.array([1, 2, 3]), np.array([1, 2])
    aps = average_precisions(similarity, query_labels, gallery_labels)
    assert np.isnan(aps[2]) and not np.isnan(aps[:2]).any()
    with pytest.warns(UserWarning, match="1 of 3 queries"):
        assert mean_average_precision(similarity, query_labels, gallery_labels) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="no query"):
        mean_average_precision(similarity[2:], query_labels[2:], gallery_labels)


def test_average_precisions_validate_input():
    with pytest.raises(ValueError, match="shape"):
        average_precisions(np.zeros((2, 3)), [1, 2], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        average_precisions(np.array([[np.inf, 0.0]]), [1], [1, 2])


def test_retrieval_map_equals_dense_computation():
    rng = np.random.default_rng(2)
    query_labels, gallery_labels = rng.integers(0, 15, 80), rng.integers(0, 15, 250)
    queries, gallery = rng.normal(size=(80, 8)), rng.normal(size=(250, 8))
    dense = sklearn_aps(queries @ gallery.T, query_labels, gallery_labels)
    ours = retrieval_map(queries, gallery, query_labels, gallery_labels, chunk_size=9)
    np.testing.assert_allclose(ours, dense, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_retrieval_map_20k_by_20k_stays_within_memory():
    n, identities, dim = 20_000, 1_000, 16
    rng = np.random.default_rng(0)
    queries, gallery = (rng.normal(size=(n, dim)) for _ in range(2))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    query_labels, gallery_labels = rng.integers(0, identities, n), rng.integers(0, identities, n)

    tracemalloc.start()
    try:
        aps = retrieval_map(queries, gallery, query_labels, gallery_labels)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_matrix = n * n * 8  # 3.2 GB of float64
    assert peak < 600e6 < full_matrix, f"peak {peak / 1e6:.0f} MB"
    assert aps.shape == (n,)

    sample = rng.choice(n, 40, replace=False)
    dense = sklearn_aps(queries[sample] @ gallery.T, query_labels[sample], gallery_labels)
    np.testing.assert_allclose(aps[sample], dense, rtol=0, atol=1e-12)


def test_mean_of_average_precisions_without_nan_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mean_of_average_precisions(np.array([0.5, 1.0])) == 0.75


# --- chance level of retrieval ------------------------------------------------------------------------


def test_chance_average_precision_equals_the_mean_over_all_rankings():
    for gallery in range(1, 7):
        for relevant in range(1, gallery + 1):
            aps = []
            for ranking in itertools.permutations(range(gallery)):
                is_relevant = np.array(ranking) < relevant
                precision = np.cumsum(is_relevant) / np.arange(1, gallery + 1)
                aps.append(precision[is_relevant].mean())
            gallery_labels = np.r_[np.zeros(relevant), np.ones(gallery - relevant)]
            assert chance_mean_average_precision([0], gallery_labels) == pytest.approx(np.mean(aps), abs=1e-12)


def test_chance_map_of_a_gallery_matches_random_rankings():
    rng = np.random.default_rng(7)
    query_labels = np.r_[rng.integers(0, 12, 40), 99]  # the last query has no relevant item: left out
    gallery_labels = rng.integers(0, 12, 60)
    expected = chance_mean_average_precision(query_labels, gallery_labels)
    draws = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(400):
            draws.append(mean_average_precision(rng.random((41, 60)), query_labels, gallery_labels))
    assert abs(np.mean(draws) - expected) < 4 * np.std(draws) / np.sqrt(len(draws))
    assert 0.1 < expected < 0.3  # about 5 relevant items among 60
    with pytest.raises(ValueError, match="no query"):
        chance_mean_average_precision(np.array([1]), np.array([2, 3]))


# --- weights: a row of weight w counts as w copies of it ---------------------------------------------


def repeated(weights, *arrays):
    """The arrays with row i repeated weights[i] times (the brute-force reference of a weighted metric)."""
    rows = np.repeat(np.arange(len(weights)), weights)
    return tuple(np.asarray(a)[rows] for a in arrays)


@pytest.mark.parametrize("metric", [roc_auc, eer])
def test_integer_weights_equal_repeated_rows(scored, metric):
    scores, labels = scored
    weights = np.random.default_rng(1).integers(0, 4, len(scores))  # zeros leave rows out
    assert metric(scores, labels, sample_weight=weights) == pytest.approx(
        metric(*repeated(weights, scores, labels)), abs=1e-12)


def test_weighted_roc_points_equal_repeated_rows_and_sklearn(scored):
    scores, labels = scored
    weights = np.random.default_rng(2).integers(0, 4, len(scores))
    fpr, tpr, thr = roc_points(scores, labels, sample_weight=weights)
    ref_fpr, ref_tpr, ref_thr = roc_points(*repeated(weights, scores, labels))
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    np.testing.assert_array_equal(thr, ref_thr)
    real = np.random.default_rng(3).uniform(0.1, 3, len(scores))  # non-integer weights: scikit-learn's meaning
    assert roc_auc(scores, labels, sample_weight=real) == pytest.approx(
        roc_auc_score(labels, scores, sample_weight=real), abs=1e-12)


def test_unit_weights_change_nothing(scored):
    scores, labels = scored
    ones = np.ones(len(scores))
    assert roc_auc(scores, labels, sample_weight=ones) == roc_auc(scores, labels)
    assert eer(scores, labels, sample_weight=ones) == eer(scores, labels)


def test_bad_weights_are_rejected():
    scores, labels = np.array([0.1, 0.9, 0.5]), np.array([0, 1, 1])
    with pytest.raises(ValueError, match="differ in length"):
        roc_auc(scores, labels, sample_weight=np.ones(2))
    with pytest.raises(ValueError, match="non-negative"):
        roc_auc(scores, labels, sample_weight=np.array([1, -1, 1]))
    with pytest.raises(ValueError, match="both positive and negative"):  # the only negative has weight 0
        eer(scores, labels, sample_weight=np.array([0, 1, 1]))


@pytest.mark.parametrize("metric", ["auc", "eer"])
def test_identity_replicates_equal_the_metric_with_weights(scored, metric):
    from vfcross.scores import ListScore, _IdentityEER

    scores, labels = scored
    function = {"auc": roc_auc, "eer": eer}[metric]
    codes = np.random.default_rng(5).integers(1, 40, len(scores))  # each pair's identity
    codes[np.flatnonzero(labels == 1)[:5]] = 0  # identity 0 has positive pairs only
    counts = np.random.default_rng(7).integers(0, 3, (30, 40)).astype(float)  # zeros leave identities (and ties) out
    counts[0] = np.arange(40) == 0  # a resample of identity 0 alone has no negative: undefined
    got = ListScore.of(scores, labels, codes).replicates(metric, counts)
    assert np.isnan(got[0])
    expected = [function(scores, labels, sample_weight=c[codes]) for c in counts[1:]]
    np.testing.assert_allclose(got[1:], expected, rtol=0, atol=1e-12)
    if metric == "eer":  # a coarse grid: the crossing is found within segments of many tie groups
        np.testing.assert_allclose(_IdentityEER(scores, labels.astype(bool), codes, 40, grid=7)(counts[1:]), expected,
                                   atol=1e-12)
    else:  # and scikit-learn's weighted AUC, ties included
        expected = [roc_auc_score(labels, scores, sample_weight=c[codes]) for c in counts[1:]]
        np.testing.assert_allclose(got[1:], expected, rtol=0, atol=1e-12)
