"""The whole evaluation of one set of embeddings, as plain JSON-ready data.

:func:`evaluate` draws the generated protocols of :mod:`.protocols` on one
split of a manifest-like table, scores them with the row embeddings and
returns every number of the paper's Tables 2-5 with a percentile bootstrap
confidence interval, plus the ROC points the figures need. All metric
values are fractions in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vfcross.evaluation.metrics import (
    bootstrap_ci,
    eer,
    matching_credits,
    mean_of_average_precisions,
    roc_auc,
    roc_points,
)
from vfcross.evaluation.protocols import (
    matching_similarities,
    matching_trials,
    retrieval_average_precisions,
    retrieval_task,
    split_identities,
    verification_pairs,
    verification_scores,
)

#: Restrictions of the grouped verification (paper Table 3).
GROUPED = ("G", "N", "A", "GNA")
#: Largest gallery of the 1:N matching (paper Table 4: N = 2 .. 10).
MAX_N = 10
#: Most points kept of the ROC curve for plotting.
ROC_POINTS = 200


def _interval(values: tuple[float, float]) -> list[float]:
    """A confidence interval as a JSON list."""
    return [float(values[0]), float(values[1])]


def _check_vectors(vectors: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    """Row embeddings: one finite, L2-normalised row per table row (cosine = dot product)."""
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) != len(table):
        raise ValueError(f"vectors must have one row per table row ({len(table)}), got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ValueError("vectors must be finite")
    if not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3):
        raise ValueError("vectors must be L2-normalised (cosine similarity is their dot product)")
    return vectors


def downsample_curve(fpr: np.ndarray, tpr: np.ndarray, max_points: int = ROC_POINTS) -> dict[str, list[float]]:
    """At most ``max_points`` ROC points, evenly spaced along the thresholds, first and last kept.

    The points are exact points of the curve (no interpolation), which keeps
    both the ROC and the DET plot faithful at the resolution of a figure.
    """
    keep = np.unique(np.round(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr)))).astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}


def verify(
    vectors: np.ndarray, table: pd.DataFrame, n_pairs: int, seed: int, n_boot: int, split: str
) -> tuple[dict, dict]:
    """EER and AUC of random-negative verification with CIs, and the downsampled ROC."""
    pairs = verification_pairs(table, "random", n_pairs, seed, split)
    scores = verification_scores(pairs, vectors)
    fpr, tpr, _ = roc_points(scores, pairs.labels)
    result = {
        "eer": eer(scores, pairs.labels),
        "eer_ci": _interval(bootstrap_ci(eer, scores, pairs.labels, n_boot=n_boot, seed=seed)),
        "auc": roc_auc(scores, pairs.labels),
        "auc_ci": _interval(bootstrap_ci(roc_auc, scores, pairs.labels, n_boot=n_boot, seed=seed)),
        "pairs": len(pairs),
    }
    return result, downsample_curve(fpr, tpr)


def _grouped_auc(
    vectors: np.ndarray, table: pd.DataFrame, n_pairs: int, seed: int, n_boot: int, split: str
) -> dict[str, dict]:
    """AUC with negatives restricted to the same gender/nationality/age; a note where impossible."""
    result: dict[str, dict] = {}
    for restriction in GROUPED:
        try:
            pairs = verification_pairs(table, restriction, n_pairs, seed, split)
        except ValueError as error:
            result[restriction] = {"note": str(error)}
            continue
        scores = verification_scores(pairs, vectors)
        result[restriction] = {
            "auc": roc_auc(scores, pairs.labels),
            "ci": _interval(bootstrap_ci(roc_auc, scores, pairs.labels, n_boot=n_boot, seed=seed)),
            "pairs": len(pairs),
        }
    return result


def _matching(
    vectors: np.ndarray,
    table: pd.DataFrame,
    direction: str,
    max_n: int,
    n_trials: int,
    seed: int,
    n_boot: int,
    split: str,
) -> dict[str, dict]:
    """1:N matching accuracy with CIs for N = 2 .. max_n on one set of nested trials."""
    trials = matching_trials(table, direction, n_trials, seed, max_n, split)
    similarities = matching_similarities(trials, vectors)
    result = {}
    for n in range(2, max_n + 1):
        credits = matching_credits(similarities[:, :n])
        result[str(n)] = {
            "accuracy": float(credits.mean()),
            "ci": _interval(bootstrap_ci(np.mean, credits, n_boot=n_boot, seed=seed)),
        }
    return result


def _retrieval(vectors: np.ndarray, table: pd.DataFrame, direction: str, seed: int, n_boot: int, split: str) -> dict:
    """mAP of ranking the whole other-modality gallery, with a CI over queries."""
    per_query = retrieval_average_precisions(retrieval_task(table, direction, split), vectors, table)
    value = mean_of_average_precisions(per_query)
    scored = per_query[~np.isnan(per_query)]
    return {
        "map": value,
        "ci": _interval(bootstrap_ci(np.mean, scored, n_boot=n_boot, seed=seed)),
        "queries": len(scored),
    }


def evaluate(
    vectors: np.ndarray,
    table: pd.DataFrame,
    seed: int = 0,
    n_pairs: int = 10_000,
    n_trials: int = 2000,
    n_boot: int = 1000,
    split: str = "test",
) -> dict:
    """Every evaluation of the paper on the ``split`` rows of ``table``, as JSON-ready data.

    ``vectors`` holds one L2-normalised embedding per table row (v for the
    voice rows, u for the face rows; the caller decides). Returns::

        {"verification": {"eer", "eer_ci", "auc", "auc_ci", "pairs"},
         "roc": {"fpr": [...], "tpr": [...]},               # <= 200 exact curve points
         "grouped_auc": {"G"|"N"|"A"|"GNA": {"auc", "ci", "pairs"} or {"note"}},
         "matching_vf": {"2": {"accuracy", "ci"}, ..., "10": ...}, "matching_fv": {...},
         "map": {"vf": {"map", "ci", "queries"}, "fv": {...}},
         "notes": [...], "settings": {...}}

    Intervals are 95% percentile bootstrap CIs over pairs, trials or
    queries. A grouped restriction that is impossible on this data carries
    a "note" instead of numbers; when the split has fewer than 10 identities
    the matching goes up to N = number of identities, said in "notes".
    Deterministic from ``seed``.
    """
    vectors = _check_vectors(vectors, table)
    notes: list[str] = []
    verification, roc = verify(vectors, table, n_pairs, seed, n_boot, split)
    grouped = _grouped_auc(vectors, table, n_pairs, seed, n_boot, split)
    notes += [f"grouped AUC {name}: {entry['note']}" for name, entry in grouped.items() if "note" in entry]
    max_n = min(MAX_N, len(split_identities(table, split)))
    if max_n < MAX_N:
        notes.append(f"matching: split {split!r} has only {max_n} identities, so N goes up to {max_n}, not {MAX_N}")
    matching = {
        key: _matching(vectors, table, direction, max_n, n_trials, seed, n_boot, split) if max_n >= 2 else {}
        for key, direction in (("matching_vf", "v2f"), ("matching_fv", "f2v"))
    }
    retrieval = {
        key: _retrieval(vectors, table, direction, seed, n_boot, split)
        for key, direction in (("vf", "v2f"), ("fv", "f2v"))
    }
    settings = {"seed": seed, "split": split, "n_pairs": n_pairs, "n_trials": n_trials, "n_boot": n_boot, "level": 0.95}
    return {
        "verification": verification,
        "roc": roc,
        "grouped_auc": grouped,
        **matching,
        "map": retrieval,
        "notes": notes,
        "settings": settings,
    }
