"""Matching, retrieval and bootstrap metrics against scikit-learn and hand-solved cases."""

import itertools
import time
import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from vfcross.evaluation.metrics import (
    average_precisions,
    bootstrap_ci,
    chance_average_precision,
    chance_mean_average_precision,
    matching_accuracy,
    matching_credits,
    mean_average_precision,
    mean_of_average_precisions,
    retrieval_map,
    roc_auc,
)


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
        start = time.perf_counter()
        aps = retrieval_map(queries, gallery, query_labels, gallery_labels)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_matrix = n * n * 8  # 3.2 GB of float64
    assert peak < 600e6 < full_matrix, f"peak {peak / 1e6:.0f} MB"
    assert aps.shape == (n,) and elapsed < 120

    sample = rng.choice(n, 40, replace=False)
    dense = sklearn_aps(queries[sample] @ gallery.T, query_labels[sample], gallery_labels)
    np.testing.assert_allclose(aps[sample], dense, rtol=0, atol=1e-12)


# --- bootstrap ------------------------------------------------------------------------------------


def test_bootstrap_ci_contains_estimate_and_narrows_with_data():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=100), rng.normal(size=10_000)
    low_s, high_s = bootstrap_ci(np.mean, small, n_boot=500)
    low_l, high_l = bootstrap_ci(np.mean, large, n_boot=500)
    assert low_s <= small.mean() <= high_s and low_l <= large.mean() <= high_l
    assert (high_l - low_l) < (high_s - low_s) / 5  # ~ 1/sqrt(100) times as wide
    assert high_s - low_s == pytest.approx(2 * 1.96 / np.sqrt(100), rel=0.25)


def test_bootstrap_ci_resamples_paired_rows_and_is_deterministic():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400)
    scores = rng.normal(size=400) + labels
    first = bootstrap_ci(roc_auc, scores, labels, n_boot=200, seed=3)
    assert first == bootstrap_ci(roc_auc, scores, labels, n_boot=200, seed=3)
    assert first != bootstrap_ci(roc_auc, scores, labels, n_boot=200, seed=4)
    assert first[0] <= roc_auc_score(labels, scores) <= first[1]


def test_bootstrap_ci_skips_a_few_failures_but_not_many():
    calls = {"n": 0}

    def sometimes_fails(every):
        def statistic(values):
            calls["n"] += 1
            if calls["n"] % every == 0:
                raise ValueError("one class only")
            return float(values.mean())

        return statistic

    values = np.arange(50.0)
    low, high = bootstrap_ci(sometimes_fails(50), values, n_boot=400)  # 2% fail: skipped
    assert low < values.mean() < high
    with pytest.raises(ValueError, match="failed on 40 of 400"):
        bootstrap_ci(sometimes_fails(10), values, n_boot=400)  # 10% fail


def test_bootstrap_ci_validates_input():
    with pytest.raises(ValueError, match="equally long"):
        bootstrap_ci(roc_auc, np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(np.mean, np.zeros(3), level=1.5)


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
            assert chance_average_precision(relevant, gallery) == pytest.approx(np.mean(aps), abs=1e-12)
    assert np.isnan(chance_average_precision(0, 5))
    with pytest.raises(ValueError, match="n_relevant"):
        chance_average_precision(6, 5)


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
