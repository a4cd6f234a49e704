"""Metrics of cross-modal verification, matching and retrieval.

Conventions (fixed by DESIGN.md): a higher score means "more likely the same
person"; label 1 means the same identity; results are fractions in [0, 1].
Ties are handled as scikit-learn does.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _check_binary(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert verification scores and 0/1 labels."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in length: {scores.shape} vs {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("need both positive and negative pairs")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return scores, labels


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting half.

    Computed from average ranks (Mann-Whitney U), which equals scikit-learn's
    trapezoidal ``roc_auc_score`` including its treatment of tied scores.
    """
    scores, labels = _check_binary(scores, labels)
    ranks = rankdata(scores)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1).

    Tied scores form one step, as in ``sklearn.metrics.roc_curve`` with
    ``drop_intermediate=False``; thresholds are returned in decreasing order
    (the first is ``inf``).
    """
    scores, labels = _check_binary(scores, labels)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    fpr = np.r_[0.0, fps / (~labels).sum()]
    tpr = np.r_[0.0, tps / labels.sum()]
    return fpr, tpr, np.r_[np.inf, s[last_of_tie]]


def eer(scores: np.ndarray, labels: np.ndarray) -> float:
    """Equal error rate: where the false-acceptance rate equals the false-rejection rate.

    The ROC is a step curve between thresholds; the EER is taken where the
    straight line between the two ROC points that bracket FPR = 1 - TPR
    crosses it (linear interpolation, as is usual in speaker verification).
    """
    fpr, tpr, _ = roc_points(scores, labels)
    fnr = 1 - tpr
    gap = fnr - fpr  # decreases from 1 at (0, 0) to -1 at (1, 1)
    i = int(np.flatnonzero(gap <= 0)[0])
    if gap[i] == 0:
        return float(fpr[i])
    t = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))
