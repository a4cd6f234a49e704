"""The whole evaluation of one set of embeddings, and paired comparisons of two, as plain JSON-ready data.

:func:`evaluate` draws the generated protocols of :mod:`.protocols` on one
split of a manifest-like table, scores them with the row embeddings and
returns every number of the paper's Tables 2-5 with an identity-level
(cluster bootstrap) confidence interval, plus the ROC points the figures
need and the chance level of retrieval mAP for the actual gallery.
:func:`compare` scores two systems on the same protocol pairs and gives the
paired difference of their verification AUC and EER with an identity-level
interval: what a claim "a is better than b" or "a is as good as b" is
decided on (:mod:`vfcross.reporting.verdicts`). All metric values are
fractions in [0, 1].

Each part of :func:`evaluate`'s result is one entry of :data:`SECTIONS` (its
key -> the function computing it), so adding a protocol touches that one
place. A verification pair belongs to its voice identity, a matching trial
to its probe identity, a retrieval query to its query identity; why (a
simulation of the spread across test sets) is said in :mod:`.bootstrap`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np
import pandas as pd

from vfcross.evaluation.bootstrap import cluster_bootstrap_ci, paired_cluster_bootstrap_ci, weighted_mean
from vfcross.evaluation.metrics import (
    chance_mean_average_precision,
    eer,
    matching_credits,
    mean_of_average_precisions,
    roc_auc,
    roc_points,
)
from vfcross.evaluation.protocols import (
    VerificationPairs,
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
#: Confidence level of every interval.
LEVEL = 0.95
#: How the intervals are made, as stated in the results' settings.
INTERVAL = "identity cluster bootstrap"


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


def _identities(table: pd.DataFrame) -> np.ndarray:
    """Each table row's identity as a string array (the bootstrap's cluster labels)."""
    return table["identity"].to_numpy(dtype=str)


def downsample_curve(fpr: np.ndarray, tpr: np.ndarray, max_points: int = ROC_POINTS) -> dict[str, list[float]]:
    """At most ``max_points`` ROC points, evenly spaced along the thresholds, first and last kept.

    The points are exact points of the curve (no interpolation), which keeps
    both the ROC and the DET plot faithful at the resolution of a figure.
    """
    keep = np.unique(np.round(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr)))).astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}


@dataclass(frozen=True)
class ScoredPairs:
    """One verification list scored by one system: cosine scores, labels and each pair's two identities."""

    scores: np.ndarray
    labels: np.ndarray
    voice_identities: np.ndarray
    face_identities: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def clusters(self) -> np.ndarray:
        """The identity each pair belongs to in the bootstrap: its voice's (see :mod:`.bootstrap`)."""
        return self.voice_identities


def scored_pairs(
    vectors: np.ndarray, table: pd.DataFrame, restriction: str, n_pairs: int, seed: int, split: str
) -> ScoredPairs:
    """Draw the ``restriction`` verification list (deterministic from ``seed``) and score it with ``vectors``.

    ValueError where the list cannot be drawn on this data (see
    :func:`~vfcross.evaluation.protocols.verification_pairs`).
    """
    return _scored(verification_pairs(table, restriction, n_pairs, seed, split), vectors, table)


def _scored(pairs: VerificationPairs, vectors: np.ndarray, table: pd.DataFrame) -> ScoredPairs:
    """``pairs`` scored with ``vectors``, with each pair's voice and face identity."""
    identity = _identities(table)
    return ScoredPairs(verification_scores(pairs, vectors), pairs.labels, identity[pairs.voice], identity[pairs.face])


def _ci(
    what: str, notes: list[str], statistic: Callable[..., float], clusters: np.ndarray, *arrays: np.ndarray,
    n_boot: int, seed: int,
) -> list[float] | None:
    """Identity-level interval of ``statistic`` as a JSON list.

    None, with the reason appended to ``notes``, where the statistic is
    undefined on too many resamples (too few identities: e.g. a resample
    drawing one identity three times holds no negative pair).
    """
    try:
        return _interval(cluster_bootstrap_ci(statistic, clusters, *arrays, n_boot=n_boot, level=LEVEL, seed=seed))
    except ValueError as error:
        notes.append(f"{what}: no identity-level interval ({error}); too few identities")
        return None


def _verify(
    vectors: np.ndarray, table: pd.DataFrame, n_pairs: int, seed: int, n_boot: int, split: str
) -> tuple[dict, dict, list[str]]:
    """:func:`verify`, with the notes on intervals that could not be made."""
    pairs = scored_pairs(vectors, table, "random", n_pairs, seed, split)
    fpr, tpr, _ = roc_points(pairs.scores, pairs.labels)
    notes: list[str] = []
    arrays = (pairs.clusters, pairs.scores, pairs.labels)
    result = {
        "eer": eer(pairs.scores, pairs.labels),
        "eer_ci": _ci("verification EER", notes, eer, *arrays, n_boot=n_boot, seed=seed),
        "auc": roc_auc(pairs.scores, pairs.labels),
        "auc_ci": _ci("verification AUC", notes, roc_auc, *arrays, n_boot=n_boot, seed=seed),
        "pairs": len(pairs),
    }
    return result, downsample_curve(fpr, tpr), notes


def verify(
    vectors: np.ndarray, table: pd.DataFrame, n_pairs: int, seed: int, n_boot: int, split: str
) -> tuple[dict, dict]:
    """EER and AUC of random-negative verification with identity-level CIs, and the downsampled ROC.

    An interval that cannot be made (too few identities) is None, with a warning saying why.
    """
    result, roc, notes = _verify(vectors, table, n_pairs, seed, n_boot, split)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return result, roc


@dataclass(frozen=True)
class Setting:
    """What every section of :func:`evaluate` reads: the embeddings, the table and the protocol sizes."""

    vectors: np.ndarray
    table: pd.DataFrame
    seed: int
    n_pairs: int
    n_trials: int
    n_boot: int
    split: str

    @property
    def max_n(self) -> int:
        """Largest 1:N matching gallery this split supports (at most :data:`MAX_N`)."""
        return min(MAX_N, len(split_identities(self.table, self.split)))


def _verification_section(s: Setting) -> tuple[dict, list[str]]:
    """Table 2: EER and AUC on random negatives."""
    result, _, notes = _verify(s.vectors, s.table, s.n_pairs, s.seed, s.n_boot, s.split)
    return result, notes


def _roc_section(s: Setting) -> tuple[dict, list[str]]:
    """The ROC curve of the random-negative list (the same pairs as the verification section)."""
    pairs = scored_pairs(s.vectors, s.table, "random", s.n_pairs, s.seed, s.split)
    return downsample_curve(*roc_points(pairs.scores, pairs.labels)[:2]), []


def _grouped_section(s: Setting) -> tuple[dict, list[str]]:
    """Table 3: AUC with negatives restricted to the same gender/nationality/age; a note where impossible."""
    result: dict[str, dict] = {}
    notes: list[str] = []
    for restriction in GROUPED:
        try:
            pairs = scored_pairs(s.vectors, s.table, restriction, s.n_pairs, s.seed, s.split)
        except ValueError as error:
            result[restriction] = {"note": str(error)}
            notes.append(f"grouped AUC {restriction}: {error}")
            continue
        result[restriction] = {
            "auc": roc_auc(pairs.scores, pairs.labels),
            "ci": _ci(f"grouped AUC {restriction}", notes, roc_auc, pairs.clusters, pairs.scores, pairs.labels,
                      n_boot=s.n_boot, seed=s.seed),
            "pairs": len(pairs),
        }
    return result, notes


def _matching_section(s: Setting, direction: str) -> tuple[dict, list[str]]:
    """Table 4 in one direction: accuracy for N = 2 .. max_n on one set of nested trials (clusters: probes).

    With v2f, a note when the split is too small for 1:10 matching.
    """
    notes: list[str] = []
    if s.max_n < MAX_N and direction == "v2f":
        notes.append(
            f"matching: split {s.split!r} has only {s.max_n} identities, so N goes up to {s.max_n}, not {MAX_N}"
        )
    if s.max_n < 2:
        return {}, notes
    trials = matching_trials(s.table, direction, s.n_trials, s.seed, s.max_n, s.split)
    similarities = matching_similarities(trials, s.vectors)
    probes = _identities(s.table)[trials.probes]
    result = {}
    for n in range(2, s.max_n + 1):
        credits = matching_credits(similarities[:, :n])
        result[str(n)] = {
            "accuracy": float(credits.mean()),
            "ci": _ci(f"matching {direction} N={n}", notes, weighted_mean, probes, credits, n_boot=s.n_boot,
                      seed=s.seed),
        }
    return result, notes


def _retrieval(s: Setting, direction: str, notes: list[str]) -> dict:
    """mAP of ranking the whole other-modality gallery, a CI over query identities, and its chance level."""
    task = retrieval_task(s.table, direction, s.split)
    per_query = retrieval_average_precisions(task, s.vectors, s.table)
    value = mean_of_average_precisions(per_query)
    identity = _identities(s.table)
    scored = ~np.isnan(per_query)
    return {
        "map": value,
        "ci": _ci(f"retrieval {direction}", notes, weighted_mean, identity[task.queries][scored], per_query[scored],
                  n_boot=s.n_boot, seed=s.seed),
        "chance": chance_mean_average_precision(identity[task.queries], identity[task.gallery]),
        "queries": int(scored.sum()),
    }


def _retrieval_section(s: Setting) -> tuple[dict, list[str]]:
    """Table 5: retrieval mAP in both directions."""
    notes: list[str] = []
    return {key: _retrieval(s, direction, notes) for key, direction in (("vf", "v2f"), ("fv", "f2v"))}, notes


#: The parts of :func:`evaluate`'s result: key -> function of the :class:`Setting` giving (part, notes).
#: Adding a protocol is adding an entry here.
SECTIONS: dict[str, Callable[[Setting], tuple[dict, list[str]]]] = {
    "verification": _verification_section,
    "roc": _roc_section,
    "grouped_auc": _grouped_section,
    "matching_vf": lambda s: _matching_section(s, "v2f"),
    "matching_fv": lambda s: _matching_section(s, "f2v"),
    "map": _retrieval_section,
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
         "map": {"vf": {"map", "ci", "chance", "queries"}, "fv": {...}},
         "notes": [...], "settings": {..., "interval", "identities"}}

    Intervals are 95% percentile intervals of an identity cluster bootstrap
    (:mod:`.bootstrap`): test identities are resampled, so they say what
    another set of test identities would give. ``map.*.chance`` is the mAP a
    random ranking of this gallery is expected to reach. An interval that
    cannot be made (too few identities: the statistic is undefined on more
    than 5% of the resamples) is None, with the reason in "notes". A grouped
    restriction that is impossible on this data carries a "note" instead of
    numbers; when the split has fewer than 10 identities the matching goes up
    to N = number of identities, said in "notes". Deterministic from ``seed``.
    """
    setting = Setting(_check_vectors(vectors, table), table, seed, n_pairs, n_trials, n_boot, split)
    result, notes = {}, []
    for key, section in SECTIONS.items():
        result[key], section_notes = section(setting)
        notes += section_notes
    settings = {
        "seed": seed,
        "split": split,
        "n_pairs": n_pairs,
        "n_trials": n_trials,
        "n_boot": n_boot,
        "level": LEVEL,
        "interval": INTERVAL,
        "identities": len(split_identities(table, split)),
    }
    return {**result, "notes": notes, "settings": settings}


def compare(
    vectors_a: np.ndarray,
    vectors_b: np.ndarray,
    table: pd.DataFrame,
    seed: int = 0,
    n_pairs: int = 10_000,
    n_boot: int = 1000,
    split: str = "test",
    lists: tuple[str, ...] = ("random", *GROUPED),
) -> dict:
    """Paired comparison of two systems' verification on the same pairs: a - b with identity-level CIs.

    ``vectors_a`` and ``vectors_b`` embed the same ``table`` rows (e.g. the
    single- and the dual-stream backbone). Each list of ``lists`` is drawn
    once (as :func:`evaluate` draws it, from ``seed``) and scored by both;
    each bootstrap resample of test identities scores both systems, and the
    interval is taken on the difference, so what the two share (which
    identities happen to be in the test set) cancels. Returns::

        {"verification": {"random"|"G"|...: {"auc": {...}, "eer": {...}, "pairs"} or {"note"}},
         "notes": [...], "settings": {..., "difference": "a - b", "interval", "identities"}}

    where each metric entry is :meth:`PairedInterval.as_dict
    <vfcross.evaluation.bootstrap.PairedInterval.as_dict>` (``difference``,
    ``ci``, ``a``, ``a_ci``, ``b``, ``b_ci``, ...), or ``{"note"}`` where too
    few identities make the interval undefined (also said in "notes"). For
    AUC a positive difference favours a; for EER a negative one does.
    """
    vectors_a, vectors_b = _check_vectors(vectors_a, table), _check_vectors(vectors_b, table)
    unknown = set(lists) - {"random", *GROUPED}
    if unknown:
        raise ValueError(f"lists must be among {('random', *GROUPED)}, got {sorted(unknown)}")
    result: dict[str, dict] = {}
    for restriction in lists:
        try:
            pairs = verification_pairs(table, restriction, n_pairs, seed, split)
        except ValueError as error:
            result[restriction] = {"note": str(error)}
            continue
        a, b = _scored(pairs, vectors_a, table), _scored(pairs, vectors_b, table)
        entry: dict = {}
        for name, metric in (("auc", roc_auc), ("eer", eer)):
            try:
                entry[name] = paired_cluster_bootstrap_ci(
                    metric, a.clusters, (a.scores, a.labels), (b.scores, b.labels), n_boot=n_boot, level=LEVEL,
                    seed=seed,
                ).as_dict()
            except ValueError as error:
                entry[name] = {"note": f"no identity-level interval ({error}); too few identities"}
        result[restriction] = {**entry, "pairs": len(a)}
    settings = {
        "seed": seed,
        "split": split,
        "n_pairs": n_pairs,
        "n_boot": n_boot,
        "level": LEVEL,
        "difference": "a - b",
        "interval": f"paired {INTERVAL}",
        "identities": len(split_identities(table, split)),
    }
    notes = [f"verification {name}: {entry['note']}" for name, entry in result.items() if "note" in entry]
    notes += [
        f"verification {name} {metric}: {value['note']}"
        for name, entry in result.items()
        for metric, value in entry.items()
        if isinstance(value, dict) and "note" in value
    ]
    return {"verification": result, "notes": notes, "settings": settings}
