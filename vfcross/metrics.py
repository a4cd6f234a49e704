"""Metrics of cross-modal verification, matching and retrieval.

A higher score means "more likely the same person"; label 1 means the same identity; results are fractions in
[0, 1]. Ties are handled as scikit-learn does (verification, retrieval); in 1:N matching a tie at the maximum
earns its expected credit under random tie-breaking.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma


def _check_binary(scores: np.ndarray, labels: np.ndarray,
                  sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked (scores, boolean labels, float weights); rows of weight 0 dropped, weights 1 when none are given. A
    weight is a row's multiplicity: integer weights give exactly the result of repeating the rows."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in length: {scores.shape} vs {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    labels = labels.astype(bool)
    if sample_weight is None:
        weights = np.ones(len(scores))
    else:
        weights = np.asarray(sample_weight, dtype=np.float64).ravel()
        if weights.shape != scores.shape:
            raise ValueError(f"sample_weight and scores differ in length: {weights.shape} vs {scores.shape}")
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("sample_weight must be finite and non-negative")
        kept = weights > 0
        scores, labels, weights = scores[kept], labels[kept], weights[kept]
    if labels.all() or not labels.any():
        raise ValueError("need both positive and negative pairs")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return scores, labels, weights


def _tie_groups(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct score, in increasing order: the score, the positive weight and the negative weight."""
    order = np.argsort(scores, kind="mergesort")
    s, y, w = scores[order], labels[order], weights[order]
    group = np.r_[0, np.cumsum(s[1:] != s[:-1])]
    n_groups = int(group[-1]) + 1
    positive = np.bincount(group, weights=np.where(y, w, 0.0), minlength=n_groups)
    negative = np.bincount(group, weights=np.where(y, 0.0, w), minlength=n_groups)
    first = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]
    return s[first], positive, negative


def roc_auc(scores: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """P(score of a positive > score of a negative), ties half: scikit-learn's ``roc_auc_score``, with weights."""
    scores, labels, weights = _check_binary(scores, labels, sample_weight)
    _, positive, negative = _tie_groups(scores, labels, weights)
    below = np.cumsum(negative) - negative  # negative weight strictly below each tie group
    return float(np.dot(positive, below + negative / 2) / (positive.sum() * negative.sum()))


def roc_points(scores: np.ndarray, labels: np.ndarray,
               sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold from (0, 0) to (1, 1), and the thresholds. As
    ``sklearn.metrics.roc_curve(drop_intermediate=False)``; thresholds decrease from ``inf``."""
    scores, labels, weights = _check_binary(scores, labels, sample_weight)
    values, positive, negative = _tie_groups(scores, labels, weights)
    tps, fps = np.cumsum(positive[::-1]), np.cumsum(negative[::-1])
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]], np.r_[np.inf, values[::-1]]


def eer(scores: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Equal error rate: where the line between the two ROC points that bracket FPR = 1 - TPR crosses it."""
    fpr, tpr, _ = roc_points(scores, labels, sample_weight)
    return _interpolated_eer(fpr, tpr)


def _interpolated_eer(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Where ROC points (in order of falling threshold, the first before it) cross FPR = 1 - TPR, interpolated."""
    gap = (1 - tpr) - fpr  # decreases towards -1 at (1, 1)
    i = int(np.flatnonzero(gap <= 0)[0])
    if gap[i] == 0:
        return float(fpr[i])
    t = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def matching_credits(similarities: np.ndarray) -> np.ndarray:
    """Per-trial credit of a 1:N matching decision (column 0 is the true match): 1 when it alone is highest,
    1/(number tied) when it ties at the maximum, else 0 (the expected accuracy of random tie-breaking)."""
    s = np.asarray(similarities, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] < 2:
        raise ValueError(f"similarities must have shape (trials >= 1, N >= 2), got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("similarities must be finite")
    at_max = s == s.max(axis=1, keepdims=True)
    return at_max[:, 0] / at_max.sum(axis=1)


def _label_codes(query_labels: np.ndarray, gallery_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of query and gallery labels in one shared vocabulary."""
    query_labels, gallery_labels = np.asarray(query_labels).ravel(), np.asarray(gallery_labels).ravel()
    _, codes = np.unique(np.concatenate([query_labels, gallery_labels]), return_inverse=True)
    codes = codes.astype(np.int32)
    return codes[: len(query_labels)], codes[len(query_labels) :]


def _chunk_average_precisions(similarity: np.ndarray, query_codes: np.ndarray, gallery_codes: np.ndarray) -> np.ndarray:
    """Average precision of each row of a similarity chunk (NaN without a relevant item), as scikit-learn's. AP is the
    mean, over the relevant items, of the precision at the threshold of each one's score, so only their scores and
    each sorted row are needed. Sorts ``similarity`` in place (callers pass a fresh chunk)."""
    if not np.isfinite(similarity).all():
        raise ValueError("similarities must be finite")
    rows, cols = np.nonzero(query_codes[:, np.newaxis] == gallery_codes[np.newaxis, :])
    relevant_scores = similarity[rows, cols]
    similarity.sort(axis=1)
    bounds = np.searchsorted(rows, np.arange(len(similarity) + 1))
    n_gallery = similarity.shape[1]
    result = np.full(len(similarity), np.nan)
    for row in np.flatnonzero(np.diff(bounds)):
        scores = relevant_scores[bounds[row] : bounds[row + 1]]
        at_or_above = n_gallery - np.searchsorted(similarity[row], scores, side="left")
        relevant_at_or_above = len(scores) - np.searchsorted(np.sort(scores), scores, side="left")
        result[row] = np.mean(relevant_at_or_above / at_or_above)
    return result


def _chunked_average_precisions(chunk, query_codes: np.ndarray, gallery_codes: np.ndarray,
                                chunk_size: int) -> np.ndarray:
    """Per-query AP, ``chunk_size`` queries at a time; ``chunk(start, stop)`` makes a fresh similarity chunk."""
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    parts = [_chunk_average_precisions(chunk(start, start + chunk_size), query_codes[start:start + chunk_size],
                                       gallery_codes) for start in range(0, len(query_codes), chunk_size)]
    return np.concatenate(parts) if parts else np.empty(0)


def chance_mean_average_precision(query_labels: np.ndarray, gallery_labels: np.ndarray) -> float:
    """Mean average precision a random ranking of this gallery is expected to reach: the chance level beside a
    measured mAP, leaving out queries without a relevant item as it does (ValueError if none has one). With R
    relevant among G, E[AP] = (R - 1)/(G - 1) + (1 - (R - 1)/(G - 1)) * H_G / G (H_G the G-th harmonic number)."""
    query_codes, gallery_codes = _label_codes(query_labels, gallery_labels)
    if len(gallery_codes) == 0:
        raise ValueError("the gallery is empty")
    per_label = np.bincount(gallery_codes, minlength=int(max(query_codes.max(initial=-1), gallery_codes.max())) + 1)
    r, g = per_label[query_codes].astype(np.float64), len(gallery_codes)
    share = (r - 1) / (g - 1) if g > 1 else np.ones_like(r)
    chance = np.where(r > 0, share + (1 - share) * (digamma(g + 1) + np.euler_gamma) / g, np.nan)
    if np.isnan(chance).all():
        raise ValueError("no query has a relevant item in the gallery; mean average precision is undefined")
    return float(np.nanmean(chance))


def retrieval_map(query_vectors: np.ndarray, gallery_vectors: np.ndarray, query_labels: np.ndarray,
                  gallery_labels: np.ndarray, chunk_size: int = 1024) -> np.ndarray:
    """Per-query average precision of ranking a gallery by dot-product similarity (NaN: no relevant item). Computed
    ``chunk_size`` queries at a time, so a 20k x 20k problem never holds the full matrix."""
    query_vectors, gallery_vectors = np.asarray(query_vectors), np.asarray(gallery_vectors)
    if query_vectors.ndim != 2 or gallery_vectors.ndim != 2 or query_vectors.shape[1] != gallery_vectors.shape[1]:
        raise ValueError(f"query and gallery vectors must be (n, d) with the same d, got {query_vectors.shape} and "
                         f"{gallery_vectors.shape}")
    query_codes, gallery_codes = _label_codes(query_labels, gallery_labels)
    if len(query_codes) != len(query_vectors) or len(gallery_codes) != len(gallery_vectors):
        raise ValueError("labels must have one entry per vector")
    return _chunked_average_precisions(lambda start, stop: query_vectors[start:stop] @ gallery_vectors.T,
                                       query_codes, gallery_codes, chunk_size)
