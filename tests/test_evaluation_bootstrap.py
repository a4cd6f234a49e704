"""The identity-level (cluster) bootstrap against a brute-force reference that materialises each resample."""

import numpy as np
import pytest

from vfcross.evaluation.bootstrap import (
    Clusters,
    cluster_bootstrap_ci,
    cluster_bootstrap_values,
    identity_draws,
    paired_cluster_bootstrap_ci,
    weighted_mean,
)
from vfcross.metrics import bootstrap_ci, eer, roc_auc

IDENTITIES = np.array(["a", "b", "c", "d", "e", "f"])


def verification_case(seed=0, n=60):
    """Pairs over six identities: (voice identity, face identity), tied scores of two systems, labels."""
    rng = np.random.default_rng(seed)
    voice = rng.choice(IDENTITIES, n)
    labels = rng.integers(0, 2, n)
    others = np.array([rng.choice(IDENTITIES[IDENTITIES != v]) for v in voice])
    face = np.where(labels == 1, voice, others)
    score_a = np.round(rng.normal(size=n) + labels, 1)  # ties within and across classes
    score_b = np.round(rng.normal(size=n) + 0.5 * labels, 1)
    return voice, face, score_a, score_b, labels


def replayed_draws(n_boot, seed):
    """The identities drawn by each resample, replaying the documented generator calls."""
    rng = np.random.default_rng(seed)
    m = len(IDENTITIES)
    return [IDENTITIES[rng.integers(0, m, m)] for _ in range(n_boot)]


def brute_force(statistic, rows_of_resample, n_boot, seed, *arrays):
    """The statistic on each resample's rows, materialised by hand; NaN where it is undefined."""
    values = []
    for drawn in replayed_draws(n_boot, seed):
        rows = rows_of_resample(drawn)
        try:
            values.append(statistic(*(a[rows] for a in arrays)))
        except ValueError:
            values.append(np.nan)
    return np.array(values)


def anchor_rows(voice):
    """Each drawn identity brings all pairs of which it is the voice, once per draw."""
    return lambda drawn: np.concatenate([np.flatnonzero(voice == identity) for identity in drawn])


def two_sided_rows(voice, face):
    """Every draw is a distinct copy: a positive comes once per copy of its identity, a negative once per
    (copy of its voice identity, copy of its face identity)."""
    def rows(drawn):
        out = []
        for unit, (v, f) in enumerate(zip(voice, face)):
            copies = (drawn == v).sum() if v == f else (drawn == v).sum() * (drawn == f).sum()
            out += [unit] * int(copies)
        return np.array(out, dtype=int)
    return rows


@pytest.mark.parametrize("statistic", [roc_auc, eer])
def test_anchor_clusters_equal_materialised_resamples(statistic):
    voice, _, scores, _, labels = verification_case()
    expected = brute_force(statistic, anchor_rows(voice), 150, 4, scores, labels)
    got = cluster_bootstrap_values(statistic, voice, scores, labels, n_boot=150, seed=4)
    np.testing.assert_allclose(got, expected, atol=1e-12, equal_nan=True)
    assert np.isfinite(got).mean() > 0.5  # the comparison is not vacuous


@pytest.mark.parametrize("statistic", [roc_auc, eer])
def test_two_sided_clusters_equal_materialised_resamples(statistic):
    voice, face, scores, _, labels = verification_case(seed=1)
    expected = brute_force(statistic, two_sided_rows(voice, face), 150, 5, scores, labels)
    got = cluster_bootstrap_values(statistic, np.c_[voice, face], scores, labels, n_boot=150, seed=5)
    np.testing.assert_allclose(got, expected, atol=1e-12, equal_nan=True)
    materialised = cluster_bootstrap_values(statistic, np.c_[voice, face], scores, labels, n_boot=150, seed=5,
                                            materialise=True)
    np.testing.assert_allclose(materialised, expected, atol=1e-12, equal_nan=True)


def test_unit_weights_count_each_distinct_identity_once():
    groups = Clusters.of(np.array([["a", "a"], ["a", "b"], ["b", "c"], ["c", "a"]]))
    np.testing.assert_array_equal(groups.identities, ["a", "b", "c"])
    np.testing.assert_array_equal(groups.weights(np.array([2, 0, 1])), [2, 0, 0, 2])
    np.testing.assert_array_equal(groups.weights(np.array([2, 3, 1])), [2, 6, 3, 2])


def test_identity_draws_replay_the_documented_generator():
    draws = identity_draws(len(IDENTITIES), 20, seed=9)
    expected = [np.bincount(np.searchsorted(IDENTITIES, d), minlength=6) for d in replayed_draws(20, 9)]
    np.testing.assert_array_equal(draws, expected)
    assert (draws.sum(axis=1) == len(IDENTITIES)).all()


def test_ci_is_the_percentile_interval_and_is_deterministic():
    voice, face, scores, _, labels = verification_case(seed=2, n=200)
    values = cluster_bootstrap_values(roc_auc, np.c_[voice, face], scores, labels, n_boot=300, seed=3)
    assert np.isfinite(values).all()
    ci = cluster_bootstrap_ci(roc_auc, np.c_[voice, face], scores, labels, n_boot=300, seed=3)
    assert ci == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])))
    assert ci == cluster_bootstrap_ci(roc_auc, np.c_[voice, face], scores, labels, n_boot=300, seed=3)
    assert ci != cluster_bootstrap_ci(roc_auc, np.c_[voice, face], scores, labels, n_boot=300, seed=4)


def test_paired_interval_is_the_interval_of_per_resample_differences():
    voice, face, score_a, score_b, labels = verification_case(seed=3, n=300)
    clusters = np.c_[voice, face]
    a = cluster_bootstrap_values(roc_auc, clusters, score_a, labels, n_boot=400, seed=8)
    b = cluster_bootstrap_values(roc_auc, clusters, score_b, labels, n_boot=400, seed=8)
    assert np.isfinite(a).all() and np.isfinite(b).all()
    paired = paired_cluster_bootstrap_ci(roc_auc, clusters, (score_a, labels), (score_b, labels), n_boot=400, seed=8)
    assert paired.difference == pytest.approx(roc_auc(score_a, labels) - roc_auc(score_b, labels))
    assert paired.ci == pytest.approx(tuple(np.percentile(a - b, [2.5, 97.5])))
    assert paired.a_ci == cluster_bootstrap_ci(roc_auc, clusters, score_a, labels, n_boot=400, seed=8)
    assert paired.b_ci == cluster_bootstrap_ci(roc_auc, clusters, score_b, labels, n_boot=400, seed=8)
    assert (paired.failures, paired.identities, paired.n_boot) == (0, 6, 400)
    assert paired.as_dict()["ci"] == list(paired.ci)


def test_paired_interval_is_narrower_than_either_when_systems_share_the_identity_effect():
    rng = np.random.default_rng(0)
    voice = rng.integers(0, 40, 4000)
    labels = rng.integers(0, 2, 4000)
    hardness = rng.normal(size=40)[voice]  # what the test identities do to every system alike
    score_a = labels + hardness * (2 * labels - 1) + 0.3 * rng.normal(size=4000)
    score_b = score_a + 0.3 * rng.normal(size=4000)
    paired = paired_cluster_bootstrap_ci(roc_auc, voice, (score_a, labels), (score_b, labels), n_boot=300)
    widths = [ci[1] - ci[0] for ci in (paired.ci, paired.a_ci, paired.b_ci)]
    assert widths[0] < 0.5 * min(widths[1:])


def test_identity_intervals_are_wider_than_pair_intervals_when_identities_matter():
    rng = np.random.default_rng(1)
    voice = rng.integers(0, 30, 3000)
    labels = rng.integers(0, 2, 3000)
    scores = labels + rng.normal(size=30)[voice] * (2 * labels - 1) + 0.5 * rng.normal(size=3000)
    identity = cluster_bootstrap_ci(roc_auc, voice, scores, labels, n_boot=300)
    pairs = bootstrap_ci(roc_auc, scores, labels, n_boot=300)
    assert identity[1] - identity[0] > 2 * (pairs[1] - pairs[0])


def test_undefined_resamples_are_skipped_up_to_five_percent():
    values = np.arange(30.0)
    clusters = np.arange(30)

    def fails_when_first_identity_drawn(times):
        def statistic(x, sample_weight=None):
            if sample_weight is not None and sample_weight[0] >= times:
                raise ValueError("undefined")
            return weighted_mean(x, sample_weight)
        return statistic

    draws = identity_draws(30, 400, seed=0)
    rare = fails_when_first_identity_drawn(4)  # about 2% of resamples
    assert 0 < (draws[:, 0] >= 4).sum() <= 20
    kept = [weighted_mean(values, w) for w in draws if w[0] < 4]
    ci = cluster_bootstrap_ci(rare, clusters, values, n_boot=400, seed=0)
    assert ci == pytest.approx(tuple(np.percentile(kept, [2.5, 97.5])))
    paired = paired_cluster_bootstrap_ci(rare, clusters, (values,), (values[::-1],), n_boot=400, seed=0)
    assert paired.failures == (draws[:, 0] >= 4).sum()
    with pytest.raises(ValueError, match="more than 5%"):
        cluster_bootstrap_ci(fails_when_first_identity_drawn(2), clusters, values, n_boot=400, seed=0)


def test_weighted_mean():
    assert weighted_mean(np.array([1.0, 3.0]), np.array([3, 1])) == pytest.approx(1.5)
    assert weighted_mean(np.array([1.0, 3.0])) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="total weight is 0"):
        weighted_mean(np.array([1.0, 3.0]), np.array([0, 0]))
    with pytest.raises(ValueError, match="NaN"):
        weighted_mean(np.array([1.0, np.nan]))


def test_bad_inputs_are_rejected():
    voice, _, scores, _, labels = verification_case()
    with pytest.raises(ValueError, match="one row per unit"):
        cluster_bootstrap_ci(roc_auc, voice[:-1], scores, labels)
    with pytest.raises(ValueError, match="one row per unit"):
        paired_cluster_bootstrap_ci(roc_auc, voice, (scores, labels), (scores[:-1], labels[:-1]))
    with pytest.raises(ValueError, match="non-empty"):
        cluster_bootstrap_ci(weighted_mean, np.array([]), np.array([]))
    with pytest.raises(ValueError, match="at least one array"):
        cluster_bootstrap_ci(weighted_mean, voice)
    with pytest.raises(ValueError, match="not among the given identities"):
        cluster_bootstrap_ci(roc_auc, voice, scores, labels, identities=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="level"):
        cluster_bootstrap_ci(roc_auc, voice, scores, labels, level=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        paired_cluster_bootstrap_ci(roc_auc, voice, (scores, labels), (scores, labels), n_boot=0)
