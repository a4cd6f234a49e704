"""The whole evaluation of one set of embeddings, and paired comparisons of two, as plain JSON-ready data.

:func:`evaluate` scores every protocol of the registry
(:mod:`.registry`: generated from one split of a manifest-like table, or
the official VoxCeleb1 lists) with the row embeddings and returns every
number of the paper's Tables 2-5 with an identity-level (cluster bootstrap)
confidence interval, plus the ROC points the figures need and the chance
level of retrieval mAP for the actual gallery. Every result says which
protocol it used and how many of its rows were scored.
:func:`evaluate_protocols` does the same from an
:class:`~vfcross.config.EvalConfig`, picking generated or official
protocols from its ``lists`` setting. :func:`compare` scores two systems on
the same verification pairs and gives the paired difference of their AUC
and EER with an identity-level interval: what a claim "a is better than b"
or "a is as good as b" is decided on (:mod:`vfcross.reporting.verdicts`).
All metric values are fractions in [0, 1].

Each protocol is scored by the scorer its registry entry names
(:data:`SCORERS`). A verification pair belongs to its voice identity, a
matching trial to its probe identity, a retrieval query to its query
identity; why (a simulation of the spread across test sets) is said in
:mod:`.bootstrap`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vfcross.config import EvalConfig
from vfcross.evaluation.bootstrap import (
    cluster_bootstrap_ci,
    paired_cluster_bootstrap_ci,
    weighted_mean,
)
from vfcross.metrics import (
    chance_mean_average_precision,
    eer,
    matching_credits,
    roc_auc,
    roc_points,
)
from vfcross.evaluation.protocols import (
    MatchingTrials,
    RetrievalTask,
    VerificationPairs,
    matching_similarities,
    retrieval_average_precisions,
    split_identities,
    verification_pairs,
    verification_scores,
)
from vfcross.evaluation.registry import (
    GROUPED,
    MAX_N,
    REGISTRY,
    Made,
    Protocols,
    generated_protocols,
    protocol_rows,
    protocols_for,
)

#: Most points kept of the ROC curve for plotting.
ROC_POINTS = 200
#: Confidence level of every interval.
LEVEL = 0.95
#: How the intervals are made, as stated in the results' settings.
INTERVAL = "identity cluster bootstrap"


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


def identity_ci(
    what: str, notes: list[str], statistic: Callable[..., float], clusters: np.ndarray, *arrays: np.ndarray,
    n_boot: int, seed: int, single: str = "all its units belong to one identity",
) -> list[float] | None:
    """Identity-level interval of ``statistic`` as a JSON list.

    None, with the reason appended to ``notes``, where all ``clusters`` are
    one identity (``single`` says so in the note) or the statistic is
    undefined on too many resamples (too few identities: e.g. a resample
    drawing one identity three times holds no negative pair).
    """
    if len(np.unique(clusters)) < 2:
        notes.append(f"{what}: no identity-level interval ({single})")
        return None
    try:
        return list(cluster_bootstrap_ci(statistic, clusters, *arrays, n_boot=n_boot, level=LEVEL, seed=seed))
    except ValueError as error:
        notes.append(f"{what}: no identity-level interval ({error}); too few identities")
        return None


@dataclass(frozen=True)
class Setting:
    """What every scorer reads: the embeddings, the table and the bootstrap settings."""

    vectors: np.ndarray
    table: pd.DataFrame
    seed: int
    n_boot: int
    split: str


#: A scorer: (a made protocol, the setting, the title for notes) -> (its result, notes).
Scorer = Callable[[Made, Setting, str], tuple[dict, list[str]]]


def _score_verification(made: Made, s: Setting, title: str) -> tuple[dict, list[str]]:
    """Table 2: EER and AUC of a verification list, each with an identity-level interval."""
    pairs = _scored(made.protocol, s.vectors, s.table)
    notes: list[str] = []
    arrays = (pairs.clusters, pairs.scores, pairs.labels)
    return {
        "eer": eer(pairs.scores, pairs.labels),
        "eer_ci": identity_ci(f"{title} EER", notes, eer, *arrays, n_boot=s.n_boot, seed=s.seed),
        "auc": roc_auc(pairs.scores, pairs.labels),
        "auc_ci": identity_ci(f"{title} AUC", notes, roc_auc, *arrays, n_boot=s.n_boot, seed=s.seed),
        "pairs": len(pairs),
    }, notes


def _score_roc(made: Made, s: Setting, title: str) -> tuple[dict, list[str]]:
    """The ROC curve of a verification list (at most :data:`ROC_POINTS` exact points)."""
    pairs = _scored(made.protocol, s.vectors, s.table)
    return downsample_curve(*roc_points(pairs.scores, pairs.labels)[:2]), []


def _score_auc(made: Made, s: Setting, title: str) -> tuple[dict, list[str]]:
    """Table 3: AUC of a restricted verification list with its identity-level interval."""
    pairs = _scored(made.protocol, s.vectors, s.table)
    notes: list[str] = []
    return {
        "auc": roc_auc(pairs.scores, pairs.labels),
        "ci": identity_ci(title, notes, roc_auc, pairs.clusters, pairs.scores, pairs.labels, n_boot=s.n_boot, seed=s.seed),
        "pairs": len(pairs),
    }, notes


def _score_matching(made: Made, s: Setting, title: str) -> tuple[dict, list[str]]:
    """Table 4: accuracy for N = 2 .. the trials' N on one set of nested trials (clusters: probes).

    A note when generated trials stop short of 1:10 (a small split).
    """
    trials: MatchingTrials = made.protocol
    notes: list[str] = []
    if not made.official and trials.max_n < MAX_N and trials.direction == "v2f":
        notes.append(f"matching: split {s.split!r} has only {trials.max_n} identities, so N goes up to "
                     f"{trials.max_n}, not {MAX_N}")
    similarities = matching_similarities(trials, s.vectors)
    probes = _identities(s.table)[trials.probes]
    result = {}
    for n in range(2, trials.max_n + 1):
        credits = matching_credits(similarities[:, :n])
        result[str(n)] = {
            "accuracy": float(credits.mean()),
            "ci": identity_ci(f"{title} N={n}", notes, weighted_mean, probes, credits, n_boot=s.n_boot, seed=s.seed),
            "trials": len(trials),
        }
    return result, notes


def _score_retrieval(made: Made, s: Setting, title: str) -> tuple[dict, list[str]]:
    """Table 5: mAP of ranking the gallery, a CI over query identities, and its chance level.

    Queries without any item of their identity in the gallery have no
    average precision: they are counted (``excluded_queries``) and left out.
    """
    task: RetrievalTask = made.protocol
    notes: list[str] = []
    per_query = retrieval_average_precisions(task, s.vectors, s.table)
    scored = ~np.isnan(per_query)
    if not scored.any():
        raise ValueError("no query has an item of its identity in the gallery")
    identity = _identities(s.table)
    if not scored.all():
        notes.append(f"{title}: {int((~scored).sum())} of {len(per_query)} queries have no item of their identity "
                     "in the gallery and are left out")
    return {
        "map": float(np.mean(per_query[scored])),
        "ci": identity_ci(title, notes, weighted_mean, identity[task.queries][scored], per_query[scored],
                  n_boot=s.n_boot, seed=s.seed),
        "chance": chance_mean_average_precision(identity[task.queries], identity[task.gallery]),
        "queries": int(scored.sum()),
        "excluded_queries": int((~scored).sum()),
        "gallery": len(task.gallery),
    }, notes


#: How each registry entry is scored (:attr:`vfcross.evaluation.registry.Spec.metric` -> scorer).
SCORERS: dict[str, Scorer] = {
    "verification": _score_verification,
    "roc": _score_roc,
    "auc": _score_auc,
    "matching": _score_matching,
    "retrieval": _score_retrieval,
}


def provenance(made: Made) -> dict:
    """What a result says about its protocol: ``{"protocol": label, "coverage": {"rows", "scored", "missing"}}``."""
    return {"protocol": made.label, "coverage": made.counts()}


def _score(made: Made, s: Setting, metric: str, title: str) -> tuple[dict, list[str]]:
    """One protocol's result with its provenance; ``{"note", ...}`` where nothing can be scored."""
    if not made.scorable:
        return {"note": made.note, **provenance(made)}, [f"{title}: {made.note}"]
    try:
        result, notes = SCORERS[metric](made, s, title)
    except ValueError as error:
        return {"note": str(error), **provenance(made)}, [f"{title}: {error}"]
    notes = [*made.notes, *notes]
    if metric == "matching":  # one entry per N, each saying where its trials came from
        return {n: {**entry, **provenance(made)} for n, entry in result.items()}, notes
    return {**result, **provenance(made)}, notes


def _put(result: dict, key: tuple[str, ...], value: dict) -> None:
    """Set ``result[key[0]][key[1]]... = value``, making the intermediate dictionaries."""
    for part in key[:-1]:
        result = result.setdefault(part, {})
    result[key[-1]] = value


def evaluate(
    vectors: np.ndarray,
    table: pd.DataFrame,
    seed: int = 0,
    n_pairs: int = 0,
    n_trials: int = 2000,
    n_boot: int = 1000,
    split: str = "test",
    protocols: Protocols | None = None,
) -> dict:
    """Every evaluation of the paper on ``table``'s embeddings, as JSON-ready data.

    ``vectors`` holds one L2-normalised embedding per table row (v for the
    voice rows, u for the face rows; the caller decides). ``protocols``
    (:mod:`.registry`) are the generated protocols of the ``split`` rows
    when not given (every voice-face pair of each verification list, or
    ``n_pairs`` sampled without replacement; ``n_trials``
    matching trials per direction, deterministic from ``seed``); pass
    :func:`~vfcross.evaluation.registry.protocols_for`'s to score the
    official lists. Returns::

        {"verification": {"eer", "eer_ci", "auc", "auc_ci", "pairs", "protocol", "coverage"},
         "roc": {"fpr": [...], "tpr": [...], ...},           # <= 200 exact curve points
         "grouped_auc": {"G"|"N"|"A"|"GNA": {"auc", "ci", "pairs", "protocol", "coverage"}},
         "matching_vf": {"2": {"accuracy", "ci", "trials", "protocol", "coverage"}, ..., "10": ...},
         "matching_fv": {...},
         "grouped_matching": {"vf"|"fv": {"G"|"N"|"GN": {"2": {...}}}},   # official lists only
         "map": {"vf": {"map", "ci", "chance", "queries", "excluded_queries", "gallery", "protocol",
                        "coverage"}, "fv": {...}},
         "coverage": [{"protocol", "results", "rows", "scored", "missing", ...}, ...],
         "notes": [...], "settings": {..., "protocols", "interval", "identities"}}

    ``protocol`` says where a result's rows came from (``"generated (seed
    0)"``, ``"official: veriflist_test_G_unseenunheard.txt"``) and
    ``coverage`` how many of its list's rows were scored (every drawn row,
    for generated protocols). A protocol with nothing to score (a
    restriction impossible on this data, an official list none of whose
    rows has all its files in the table) gives ``{"note", "protocol",
    "coverage"}`` instead of numbers, and the note is repeated in "notes".
    Official matching lists are 1:2, so their results hold N = 2 only;
    generated matching goes up to N = 10, or the number of split
    identities when fewer (said in "notes").

    Intervals are 95% percentile intervals of an identity cluster bootstrap
    (:mod:`.bootstrap`): test identities are resampled, so they say what
    another set of test identities would give. ``map.*.chance`` is the mAP a
    random ranking of this gallery is expected to reach. An interval that
    cannot be made (too few identities: the statistic is undefined on more
    than 5% of the resamples) is None, with the reason in "notes".
    """
    vectors = _check_vectors(vectors, table)
    if protocols is None:
        protocols = generated_protocols(table, seed, n_pairs, n_trials, split)
    setting = Setting(vectors, table, seed, n_boot, split)
    result: dict = {}
    notes: list[str] = []
    for spec in REGISTRY:
        made = protocols.get(spec.key)
        if made is None:
            continue
        entry, entry_notes = _score(made, setting, spec.metric, spec.title)
        _put(result, spec.key, entry)
        notes += [n for n in entry_notes if n not in notes]
    settings = {
        "protocols": protocols.source,
        "seed": seed,
        "split": split,
        "n_pairs": n_pairs,
        "n_trials": n_trials,
        "n_boot": n_boot,
        "level": LEVEL,
        "interval": INTERVAL,
        "identities": _population(protocols, table, split),
    }
    if protocols.folder:
        settings["lists"] = protocols.folder
    return {**result, "coverage": protocols.coverage(), "notes": notes, "settings": settings}


def _population(protocols: Protocols, table: pd.DataFrame, split: str) -> int:
    """How many identities the protocols draw on: the split's (generated), or those of the scored rows (official)."""
    if not protocols.folder:
        return len(split_identities(table, split))
    identity = _identities(table)
    rows = [np.asarray(r).ravel() for m in protocols.made.values() if m.scorable for r in protocol_rows(m.protocol)]
    return len(set(identity[np.concatenate(rows)].tolist())) if rows else 0


def evaluate_protocols(
    vectors: np.ndarray, table: pd.DataFrame, cfg: EvalConfig, protocols: Protocols | None = None,
    root: str | os.PathLike | None = None,
) -> dict:
    """:func:`evaluate` with the protocols ``cfg`` asks for: the official lists of ``cfg.lists``, else generated.

    ``protocols`` (from :func:`~vfcross.evaluation.registry.protocols_for`)
    saves making them again when several systems are scored on the same
    table; ``root`` is the dataset (where ``vox1_meta.csv`` may be, and what
    tells a file absent from the dataset apart from one not in ``table``).
    Write the list rows left out with ``protocols.write_missing(folder)``.
    """
    if protocols is None:
        protocols = protocols_for(table, cfg, root)
    return evaluate(vectors, table, cfg.seed, cfg.n_pairs, cfg.n_trials, cfg.n_boot, cfg.split, protocols)


def compare(
    vectors_a: np.ndarray,
    vectors_b: np.ndarray,
    table: pd.DataFrame,
    seed: int = 0,
    n_pairs: int = 0,
    n_boot: int = 1000,
    split: str = "test",
    lists: tuple[str, ...] = ("random", *GROUPED),
    protocols: Protocols | None = None,
) -> dict:
    """Paired comparison of two systems' verification on the same pairs: a - b with identity-level CIs.

    ``vectors_a`` and ``vectors_b`` embed the same ``table`` rows (e.g. the
    single- and the dual-stream backbone). Each list of ``lists`` is taken
    once from ``protocols`` (by default generated as :func:`evaluate` draws
    them, from ``seed``; or the official lists, see
    :func:`~vfcross.evaluation.registry.protocols_for`) and scored by both;
    each bootstrap resample of test identities scores both systems, and the
    interval is taken on the difference, so what the two share (which
    identities happen to be in the test set) cancels. Returns::

        {"verification": {"random"|"G"|...: {"auc": {...}, "eer": {...}, "pairs", "protocol", "coverage"}
                          or {"note", "protocol", "coverage"}},
         "notes": [...], "settings": {..., "protocols", "difference": "a - b", "interval", "identities"}}

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
    if protocols is None:
        protocols = generated_protocols(table, seed, n_pairs, split=split, kinds=("verification",))
    result: dict[str, dict] = {}
    for restriction in lists:
        made = protocols.verification(restriction)
        if made is None or not made.scorable:
            result[restriction] = {"note": made.note if made else "no such list", **(provenance(made) if made else {})}
            continue
        a, b = _scored(made.protocol, vectors_a, table), _scored(made.protocol, vectors_b, table)
        entry: dict = {}
        for name, metric in (("auc", roc_auc), ("eer", eer)):
            try:
                entry[name] = paired_cluster_bootstrap_ci(
                    metric, a.clusters, (a.scores, a.labels), (b.scores, b.labels), n_boot=n_boot, level=LEVEL,
                    seed=seed,
                ).as_dict()
            except ValueError as error:
                entry[name] = {"note": f"no identity-level interval ({error}); too few identities"}
        result[restriction] = {**entry, "pairs": len(a), **provenance(made)}
    settings = {
        "protocols": protocols.source,
        "seed": seed,
        "split": split,
        "n_pairs": n_pairs,
        "n_boot": n_boot,
        "level": LEVEL,
        "difference": "a - b",
        "interval": f"paired {INTERVAL}",
        "identities": _population(protocols, table, split),
    }
    notes = [f"verification {name}: {entry['note']}" for name, entry in result.items() if "note" in entry]
    notes += [
        f"verification {name} {metric}: {value['note']}"
        for name, entry in result.items()
        for metric, value in entry.items()
        if isinstance(value, dict) and "note" in value
    ]
    return {"verification": result, "notes": notes, "settings": settings}


# --- the identities a model may be scored on ---------------------------------------------------


def trained_identities_note(trained_on: Mapping[str, Mapping[str, list[str]] | None], scored: Iterable[str],
                            what: str) -> str:
    """One line when identities to be ``scored`` may be ones the model's runs trained or validated on, else "".

    ``trained_on`` maps each run of the model (``"backbone"``, ``"fusion"``)
    to the identities its record lists by split (train and val: training and
    epoch selection; :func:`vfcross.training.recorded_identities`), or None
    where the run records none (trained by an older vfcross), which leaves
    nothing checked and says so. The line names ``what``, how many scored
    identities were trained on and the first five of them.
    """
    scored = set(map(str, scored))
    unrecorded = [run for run, splits in trained_on.items() if splits is None] if trained_on else ["backbone", "fusion"]
    if unrecorded:
        return (f"{what}: the record of its {' and '.join(unrecorded)} run{'s' * (len(unrecorded) > 1)} lists no "
                f"identities (made by an older vfcross), so none of the {len(scored)} identities to score is known to "
                "be unseen")
    seen = {name for splits in trained_on.values() for names in splits.values() for name in names}
    overlap = sorted(seen & scored)
    if not overlap:
        return ""
    first = ", ".join(overlap[:5]) + (", ..." if len(overlap) > 5 else "")
    return (f"{what} was trained or validated on {len(overlap)} of the {len(scored)} identities to score ({first}): "
            "its numbers are not those of unseen identities")
