"""Metrics of cross-modal verification, matching and retrieval.

Conventions (public and fixed, as the README says): a higher score means "more likely the same
person"; label 1 means the same identity; results are fractions in [0, 1].
Tied scores are handled as scikit-learn does (verification, retrieval);
in 1:N matching a tie at the maximum earns its expected credit under random
tie-breaking.
"""

from __future__ import annotations

import warnings
import numpy as np
from scipy.special import digamma


def _check_binary(
    scores: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate verification scores, 0/1 labels and optional weights; rows of weight 0 are dropped.

    Returns (scores, boolean labels, float weights), with weights all 1 when
    none are given. A weight is a row's multiplicity: integer weights give
    exactly the result of repeating each row that many times.
    """
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
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting half.

    Equals scikit-learn's trapezoidal ``roc_auc_score`` including its
    treatment of tied scores (the Mann-Whitney U statistic). With
    ``sample_weight`` each row counts that many times (integer weights give
    exactly the AUC of the rows repeated); rows of weight 0 are left out.
    """
    scores, labels, weights = _check_binary(scores, labels, sample_weight)
    _, positive, negative = _tie_groups(scores, labels, weights)
    below = np.cumsum(negative) - negative  # negative weight strictly below each tie group
    return float(np.dot(positive, below + negative / 2) / (positive.sum() * negative.sum()))


def roc_points(
    scores: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1).

    Tied scores form one step, as in ``sklearn.metrics.roc_curve`` with
    ``drop_intermediate=False``; thresholds are returned in decreasing order
    (the first is ``inf``). ``sample_weight`` as in :func:`roc_auc`.
    """
    scores, labels, weights = _check_binary(scores, labels, sample_weight)
    values, positive, negative = _tie_groups(scores, labels, weights)
    tps, fps = np.cumsum(positive[::-1]), np.cumsum(negative[::-1])
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    return fpr, tpr, np.r_[np.inf, values[::-1]]


def eer(scores: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Equal error rate: where the false-acceptance rate equals the false-rejection rate.

    The ROC is a step curve between thresholds; the EER is taken where the
    straight line between the two ROC points that bracket FPR = 1 - TPR
    crosses it (linear interpolation, as is usual in speaker verification).
    ``sample_weight`` as in :func:`roc_auc`.
    """
    fpr, tpr, _ = roc_points(scores, labels, sample_weight)
    return _interpolated_eer(fpr, tpr)


def _interpolated_eer(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Where the ROC points (in order of falling threshold) cross FPR = 1 - TPR, by linear interpolation.

    The first point must lie before the crossing (FPR < 1 - TPR).
    """
    gap = (1 - tpr) - fpr  # decreases towards -1 at (1, 1)
    i = int(np.flatnonzero(gap <= 0)[0])
    if gap[i] == 0:
        return float(fpr[i])
    t = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def matching_credits(similarities: np.ndarray) -> np.ndarray:
    """Per-trial credit of a 1:N matching decision; column 0 of each row is the true match.

    A trial scores 1 when the true match alone has the highest similarity.
    When several candidates tie at the maximum, it scores 1/(number tied) if
    the true match is among them and 0 otherwise: the expected accuracy of
    breaking the tie at random, so ties neither help nor hurt on average.
    """
    s = np.asarray(similarities, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] < 2:
        raise ValueError(f"similarities must have shape (trials >= 1, N >= 2), got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("similarities must be finite")
    at_max = s == s.max(axis=1, keepdims=True)
    return at_max[:, 0] / at_max.sum(axis=1)


def matching_accuracy(similarities: np.ndarray) -> float:
    """Fraction of 1:N trials in which the true match (column 0) is picked.

    Ties at the maximum earn 1/(number tied) when the true match is among
    them (expected accuracy under random tie-breaking); see
    :func:`matching_credits`.
    """
    return float(matching_credits(similarities).mean())


def _label_codes(query_labels: np.ndarray, gallery_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of query and gallery labels in one shared vocabulary."""
    query_labels, gallery_labels = np.asarray(query_labels).ravel(), np.asarray(gallery_labels).ravel()
    _, codes = np.unique(np.concatenate([query_labels, gallery_labels]), return_inverse=True)
    codes = codes.astype(np.int32)
    return codes[: len(query_labels)], codes[len(query_labels) :]


def _chunk_average_precisions(similarity: np.ndarray, query_codes: np.ndarray, gallery_codes: np.ndarray) -> np.ndarray:
    """Average precision of each row of a similarity chunk; NaN for rows without a relevant item.

    Equals ``sklearn.metrics.average_precision_score`` with its tie handling:
    with one threshold per distinct score, AP = sum_n (R_n - R_{n-1}) P_n,
    i.e. the mean, over the relevant items, of the precision at the
    threshold equal to each item's score, precision(t) = #relevant with
    score >= t / #items with score >= t. So only the relevant items' scores
    and, per row, the sorted scores are needed. ``similarity`` is SORTED IN
    PLACE (callers pass a fresh chunk), which keeps the temporaries to the
    chunk itself plus a boolean mask.
    """
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


def average_precisions(
    similarity: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray, chunk_size: int = 1024
) -> np.ndarray:
    """Average precision of every query (row of ``similarity``, queries x gallery).

    Row i is scored exactly as ``average_precision_score(gallery_labels ==
    query_labels[i], similarity[i])`` (tied scores form one threshold step).
    Queries with no relevant item in the gallery get NaN, where scikit-learn
    would give 0 with a warning; :func:`mean_of_average_precisions` excludes
    them. Rows are processed ``chunk_size`` at a time, so temporaries stay
    near ``chunk_size x gallery`` floats.
    """
    similarity = np.asarray(similarity)
    query_codes, gallery_codes = _label_codes(query_labels, gallery_labels)
    if similarity.ndim != 2 or similarity.shape != (len(query_codes), len(gallery_codes)):
        raise ValueError(
            f"similarity must have shape (queries, gallery) = ({len(query_codes)}, {len(gallery_codes)}), "
            f"got {similarity.shape}"
        )
    return _chunked_average_precisions(lambda start, stop: np.array(similarity[start:stop], dtype=np.float64),
                                       query_codes, gallery_codes, chunk_size)


def mean_of_average_precisions(per_query: np.ndarray) -> float:
    """Mean of per-query average precisions, leaving out the NaN ones (no relevant item).

    Warns with the number of queries left out; raises ValueError when none remain.
    """
    per_query = np.asarray(per_query, dtype=np.float64)
    excluded = int(np.isnan(per_query).sum())
    if excluded == len(per_query):
        raise ValueError("no query has a relevant item in the gallery; mean average precision is undefined")
    if excluded:
        warnings.warn(
            f"{excluded} of {len(per_query)} queries have no relevant item in the gallery and are "
            "excluded from the mean average precision",
            stacklevel=2,
        )
    return float(np.nanmean(per_query))


def mean_average_precision(
    similarity: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray, chunk_size: int = 1024
) -> float:
    """Mean over queries of :func:`average_precisions`; similarity is (queries x gallery).

    Queries without any relevant gallery item are excluded with a warning
    (scikit-learn would count them as 0); ValueError if none remain.
    """
    return mean_of_average_precisions(average_precisions(similarity, query_labels, gallery_labels, chunk_size))


def chance_average_precision(n_relevant: np.ndarray | int, gallery_size: np.ndarray | int) -> np.ndarray:
    """Expected average precision of a uniformly random ranking with R relevant items among G.

    E[AP] = (R - 1)/(G - 1) + (1 - (R - 1)/(G - 1)) * H_G / G, with H_G the
    G-th harmonic number (for G = 1: 1). Why: AP is the mean over relevant
    items of the precision at their rank k; the k - 1 items above a relevant
    one hold on average (k - 1)(R - 1)/(G - 1) relevant ones, and E[1/k] over
    a uniform rank is H_G / G. NaN where R = 0 (AP is undefined, as in
    :func:`average_precisions`). Works elementwise on arrays.
    """
    r = np.asarray(n_relevant, dtype=np.float64)
    g = np.asarray(gallery_size, dtype=np.float64)
    if (g < 1).any() or (r < 0).any() or (r > g).any() or (r != np.round(r)).any() or (g != np.round(g)).any():
        raise ValueError("need integers 0 <= n_relevant <= gallery_size with gallery_size >= 1")
    harmonic = digamma(g + 1) + np.euler_gamma
    share = np.divide(r - 1, g - 1, out=np.ones_like(r * g), where=g > 1)
    return np.where(r > 0, share + (1 - share) * harmonic / g, np.nan)


def chance_mean_average_precision(query_labels: np.ndarray, gallery_labels: np.ndarray) -> float:
    """Mean average precision that a random ranking of this gallery is expected to reach.

    The chance level to print beside a measured mAP: per query, the exact
    :func:`chance_average_precision` for its number of relevant items in the
    gallery (same label); queries without a relevant item are left out, as
    the measured mAP leaves them out (:func:`mean_of_average_precisions`
    warns about them). ValueError if no query has a relevant item.
    """
    query_codes, gallery_codes = _label_codes(query_labels, gallery_labels)
    if len(gallery_codes) == 0:
        raise ValueError("the gallery is empty")
    per_label = np.bincount(gallery_codes, minlength=int(max(query_codes.max(initial=-1), gallery_codes.max())) + 1)
    chance = chance_average_precision(per_label[query_codes], len(gallery_codes))
    if np.isnan(chance).all():
        raise ValueError("no query has a relevant item in the gallery; mean average precision is undefined")
    return float(np.nanmean(chance))


def retrieval_map(
    query_vectors: np.ndarray,
    gallery_vectors: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    chunk_size: int = 1024,
) -> np.ndarray:
    """Per-query average precision of ranking a gallery by dot-product similarity.

    The similarity (cosine when both sets are L2-normalised, as vfcross's
    embeddings are) is computed ``chunk_size`` queries at a time, so a
    20k x 20k problem never holds the full matrix: peak memory is about
    ``chunk_size x gallery`` floats of the vectors' dtype. NaN marks queries
    with no relevant item; summarise with :func:`mean_of_average_precisions`.
    """
    query_vectors, gallery_vectors = np.asarray(query_vectors), np.asarray(gallery_vectors)
    if query_vectors.ndim != 2 or gallery_vectors.ndim != 2 or query_vectors.shape[1] != gallery_vectors.shape[1]:
        raise ValueError(
            f"query and gallery vectors must be (n, d) with the same d, got {query_vectors.shape} and "
            f"{gallery_vectors.shape}"
        )
    query_codes, gallery_codes = _label_codes(query_labels, gallery_labels)
    if len(query_codes) != len(query_vectors) or len(gallery_codes) != len(gallery_vectors):
        raise ValueError("labels must have one entry per vector")
    return _chunked_average_precisions(lambda start, stop: query_vectors[start:stop] @ gallery_vectors.T,
                                       query_codes, gallery_codes, chunk_size)
