"""Verification metrics against scikit-learn and against cases solved by hand."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from vfcross.evaluation.metrics import eer, roc_auc, roc_points


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
