"""The whole evaluation of one set of embeddings, paired comparisons of two, and systems scored over seeds.

:func:`evaluate` scores every protocol of the registry (:mod:`.protocols`) into every number of the paper's Tables
2-5 with identity-level intervals (:mod:`.intervals`), as JSON-ready data naming each result's protocol and coverage;
:func:`compare` gives paired differences of two systems; :func:`score_seeds` scores every training seed of systems.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from vfcross.config import EvalConfig
from vfcross.evaluation.intervals import (LEVEL, contrast, interval, list_interval, paired_decision, paired_interval,
                                          seed_summary, weighted_mean, cluster_values)
from vfcross.evaluation.protocols import (GROUPED, MAX_N, REGISTRY, Made, Protocols, generated_protocols,
                                          protocols_for, split_identities, verification_pairs)
from vfcross.scores import ListScore, SeedScores
from vfcross.metrics import chance_mean_average_precision, matching_credits

#: Most points kept of the ROC curve for plotting; how the intervals are made, as the settings state it.
ROC_POINTS, INTERVAL = 200, "identity cluster bootstrap"


def check_vectors(vectors: np.ndarray, table: pd.DataFrame) -> np.ndarray:
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
    """At most ``max_points`` exact ROC points, evenly spaced along the thresholds, first and last kept."""
    keep = np.unique(np.round(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr)))).astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}


def provenance(made: Made) -> dict:
    """What a result says of its protocol: ``{"protocol": label, "coverage": {"rows", "scored", "missing"}}``."""
    return {"protocol": made.label, "coverage": made.counts()}


def _verification(score: ListScore, title: str, n_boot: int, seed: int, notes: list[str], eer: bool = True) -> dict:
    """AUC (and EER) of a scored list with identity-level intervals; the EER bound where it was binned."""
    out = {"eer": score.eer, "eer_ci": list_interval(score, "eer", f"{title} EER", notes, n_boot, seed)} if eer else {}
    auc_ci = list_interval(score, "auc", f"{title} AUC" if eer else title, notes, n_boot, seed)
    out.update({"auc": score.auc, "auc_ci" if eer else "ci": auc_ci, "pairs": len(score)})
    if score.eer_bound:
        out["eer_ci_bound"] = score.eer_bound
        notes.append(f"{title}: EER intervals read from score histograms, each resample within "
                     f"{score.eer_bound:.1e} of its exact EER")
    return out


def _score(made: Made, spec, vectors: np.ndarray, table: pd.DataFrame, cfg: EvalConfig,
           score_list) -> tuple[dict, list[str]]:
    """One protocol's result (per the spec's metric) and its notes; ``score_list`` scores each list once."""
    notes: list[str] = []
    identity = table["identity"].to_numpy(dtype=str)
    if spec.kind == "verification":
        score = score_list(made.protocol)
        if spec.metric == "roc":
            return downsample_curve(*score.roc()), notes
        return _verification(score, spec.title, cfg.n_boot, cfg.seed, notes, eer=spec.metric == "verification"), notes
    if spec.kind == "matching":
        trials = made.protocol
        if not made.label.startswith("official") and trials.max_n < MAX_N and trials.direction == "v2f":
            notes.append(f"matching: split {cfg.split!r} has only {trials.max_n} identities, so N goes up to "
                         f"{trials.max_n}, not {MAX_N}")
        similarities, probes = trials.similarities(vectors), identity[trials.probes]
        result = {}
        for n in range(2, trials.max_n + 1):
            credits = matching_credits(similarities[:, :n])
            values = lambda c=credits: cluster_values(weighted_mean, probes, c, n_boot=cfg.n_boot, seed=cfg.seed)
            result[str(n)] = {"accuracy": float(credits.mean()),
                              "ci": interval(values, f"{spec.title} N={n}", notes, len(np.unique(probes))),
                              "trials": len(trials)}
        return result, notes
    task = made.protocol
    per_query = task.average_precisions(vectors, table, cfg.memory_gb)
    ok = ~np.isnan(per_query)
    if not ok.any():
        raise ValueError("no query has an item of its identity in the gallery")
    if not ok.all():
        notes.append(f"{spec.title}: {int((~ok).sum())} of {len(per_query)} queries have no item of their identity "
                     "in the gallery and are left out")
    queries = identity[task.queries][ok]
    values = lambda: cluster_values(weighted_mean, queries, per_query[ok], n_boot=cfg.n_boot, seed=cfg.seed)
    return {"map": float(np.mean(per_query[ok])), "ci": interval(values, spec.title, notes, len(np.unique(queries))),
            "chance": chance_mean_average_precision(identity[task.queries], identity[task.gallery]),
            "queries": int(ok.sum()), "excluded_queries": int((~ok).sum()), "gallery": len(task.gallery)}, notes


def evaluate(vectors: np.ndarray, table: pd.DataFrame, cfg: EvalConfig | None = None,
             protocols: Protocols | None = None, root: str | os.PathLike | None = None) -> dict:
    """Every evaluation of the paper on ``table``'s embeddings (v for voice rows, u for face rows), as JSON data:
    one entry per registry key, each with its ``protocol`` and ``coverage`` (``{"note"}`` where nothing could be
    scored), then ``coverage``, ``notes``, ``settings``. ``protocols`` default to those ``cfg`` asks for, ``root``
    being the dataset (its meta table; a file absent from it is told apart from one not in ``table``)."""
    cfg = cfg or EvalConfig()
    vectors = check_vectors(vectors, table)
    protocols = protocols or protocols_for(table, cfg, root)
    result: dict = {}
    notes: list[str] = []
    score_list = functools.cache(lambda pairs: pairs.score(table, vectors, memory_gb=cfg.memory_gb))
    for spec in REGISTRY:
        made = protocols.get(spec.key)
        if made is None:
            continue
        try:
            if not made.scorable:
                raise ValueError(made.note)
            entry, entry_notes = _score(made, spec, vectors, table, cfg, score_list)
            entry_notes = [*made.notes, *entry_notes]
            if spec.metric == "matching":  # one entry per N, each naming its trials' source
                entry = {n: {**value, **provenance(made)} for n, value in entry.items()}
            else:
                entry = {**entry, **provenance(made)}
        except ValueError as error:
            entry, entry_notes = {"note": str(error), **provenance(made)}, [f"{spec.title}: {error}"]
        node = result
        for part in spec.key[:-1]:  # result[key[0]][key[1]]... = entry
            node = node.setdefault(part, {})
        node[spec.key[-1]] = entry
        notes += [n for n in entry_notes if n not in notes]
    settings = {"protocols": protocols.source, "seed": cfg.seed, "split": cfg.split, "n_pairs": cfg.n_pairs,
                "n_trials": cfg.n_trials, "n_boot": cfg.n_boot, "level": LEVEL, "interval": INTERVAL,
                "identities": _population(protocols, table, cfg.split)}
    if protocols.folder:
        settings["lists"] = protocols.folder
    return {**result, "coverage": protocols.coverage(), "notes": notes, "settings": settings}


def _population(protocols: Protocols, table: pd.DataFrame, split: str) -> int:
    """Identities the protocols draw on: the split's (generated), or those of the scored rows (official)."""
    if not protocols.folder:
        return len(split_identities(table, split))
    rows = [np.ravel(getattr(m.protocol, name)) for m in protocols.made.values() if m.scorable
            for name in ("voice", "face", "probes", "candidates", "queries", "gallery") if hasattr(m.protocol, name)]
    return len(set(table["identity"].to_numpy(dtype=str)[np.concatenate(rows)])) if rows else 0


def compare(vectors_a: np.ndarray, vectors_b: np.ndarray, table: pd.DataFrame, cfg: EvalConfig | None = None,
            protocols: Protocols | None = None) -> dict:
    """Paired comparison of two systems' verification on the same lists: a - b, each resample of identities scoring
    both (:func:`~.intervals.paired_interval`). ``{"verification": {list: {"auc", "eer", "pairs", "protocol",
    "coverage"}}, "notes", "settings"}``; for AUC a positive difference favours a, for EER a negative one."""
    cfg = cfg or EvalConfig()
    vectors_a, vectors_b = check_vectors(vectors_a, table), check_vectors(vectors_b, table)
    protocols = protocols or (protocols_for(table, cfg) if cfg.lists else generated_protocols(
        table, cfg.seed, cfg.n_pairs, split=cfg.split, kinds=("verification",)))
    result, notes = {}, []
    for restriction in ("random", *GROUPED):
        made = protocols.verification(restriction)
        if made is None or not made.scorable:
            result[restriction] = {"note": made.note if made else "no such list", **(provenance(made) if made else {})}
            notes.append(f"verification {restriction}: {result[restriction]['note']}")
            continue
        a, b = (made.protocol.score(table, v, memory_gb=cfg.memory_gb) for v in (vectors_a, vectors_b))
        entry: dict = {}
        for metric in ("auc", "eer"):
            try:
                entry[metric] = paired_interval(a, b, metric, cfg.n_boot, cfg.seed)
            except ValueError as error:
                entry[metric] = {"note": f"no identity-level interval ({error}); too few identities"}
                notes.append(f"verification {restriction} {metric}: {entry[metric]['note']}")
        result[restriction] = {**entry, "pairs": len(a), **provenance(made)}
    settings = {"protocols": protocols.source, "seed": cfg.seed, "split": cfg.split, "n_pairs": cfg.n_pairs,
                "n_boot": cfg.n_boot, "level": LEVEL, "difference": "a - b", "interval": f"paired {INTERVAL}",
                "identities": _population(protocols, table, cfg.split)}
    return {"verification": result, "notes": notes, "settings": settings}


def list_contrasts(vectors: np.ndarray, table: pd.DataFrame, protocols: Protocols, lists: Iterable[str] = ("N", "A"),
                   n_boot: int = 1000, seed: int = 0, memory_gb: float = 2.0) -> dict[str, dict]:
    """Per restricted list, one system's AUC on it minus its AUC on the random list, paired on the same identity
    draws (:func:`~vfcross.evaluation.intervals.contrast`), or ``{"note"}`` where one cannot be scored."""
    base, out = protocols.verification("random"), {}
    for name in lists:
        made = protocols.verification(name)
        if base is None or made is None or not (base.scorable and made.scorable):
            out[name] = {"note": f"no contrast of the {name} list with the random list: one of them cannot be scored"}
        else:
            out[name] = contrast(*(m.protocol.score(table, vectors, memory_gb=memory_gb) for m in (made, base)),
                                 n_boot, seed)
    return out


def score_seeds(systems: Mapping[str, Mapping[int, np.ndarray]], table: pd.DataFrame, restriction: str = "random",
                n_pairs: int = 0, seed: int = 0, split: str = "test", pairs=None, memory_gb: float = 2.0) -> SeedScores:
    """One verification list (drawn from ``seed``, or ``pairs``, e.g. an official list's protocol) scored by every
    seed of every system; ``systems`` maps a name to {training seed: row vectors of ``table``}."""
    if not systems or any(not runs for runs in systems.values()):
        raise ValueError("every system needs at least one trained seed")
    pairs = pairs if pairs is not None else verification_pairs(table, restriction, n_pairs, seed, split)
    scores = {name: [pairs.score(table, runs[s], memory_gb=memory_gb) for s in sorted(runs)]
              for name, runs in systems.items()}
    first = next(iter(scores.values()))[0]
    return SeedScores(pairs.name, first.identities, scores, {name: sorted(runs) for name, runs in systems.items()})


def seed_summaries(scored: SeedScores, systems, n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, dict]]:
    """:func:`~vfcross.evaluation.intervals.seed_summary` of AUC and EER for each of ``systems``."""
    return {system: {metric: seed_summary(scored, system, metric, n_boot, seed) for metric in ("auc", "eer")}
            for system in systems}


def selection_certainty(kept: Mapping[int, np.ndarray], last: Mapping[int, np.ndarray], table: pd.DataFrame,
                        split: str, eval_cfg: EvalConfig) -> list[dict]:
    """Per seed, its kept epoch's model against its last epoch's on ``split`` (vectors of that split's rows in
    ``table``'s order): both AUCs with intervals and the paired difference. The kept epoch maximised this very
    AUC on the validation split, so there an interval reaching 0 says the selection could not tell them apart."""
    part = table[(table["split"] == split).fillna(False).to_numpy()].reset_index(drop=True)
    out = []
    for seed in sorted(kept):
        scored = score_seeds({"kept": {seed: kept[seed]}, "last": {seed: last[seed]}}, part, "random",
                             eval_cfg.n_pairs, eval_cfg.seed, split, memory_gb=eval_cfg.memory_gb)
        ci = paired_decision(scored, "kept", "last", "auc", eval_cfg.n_boot, eval_cfg.seed).interval(0.95)
        row = {"seed": int(seed), "difference": scored.scores["kept"][0].auc - scored.scores["last"][0].auc,
               "ci": None if ci is None else list(ci)}
        for name in ("kept", "last"):
            summary = seed_summary(scored, name, "auc", eval_cfg.n_boot, eval_cfg.seed)
            row[f"{name}_auc"], row[f"{name}_ci"] = summary["mean"], summary["ci"]
        out.append(row)
    return out


def trained_identities_note(trained_on: Mapping[str, Mapping[str, list[str]] | None], scored: Iterable[str],
                            what: str) -> str:
    """One line when identities to be ``scored`` may be ones the model's runs (backbone, fusion) trained or
    validated on, or when a run records none (made by an older vfcross); else ""."""
    scored = set(map(str, scored))
    unrecorded = [run for run, splits in trained_on.items() if splits is None] if trained_on else ["backbone", "fusion"]
    if unrecorded:
        return (f"{what}: the record of its {' and '.join(unrecorded)} run{'s' * (len(unrecorded) > 1)} lists no "
                f"identities (made by an older vfcross), so none of the {len(scored)} identities to score is known to "
                "be unseen")
    overlap = sorted({name for splits in trained_on.values() for names in splits.values() for name in names} & scored)
    if not overlap:
        return ""
    return (f"{what} was trained or validated on {len(overlap)} of the {len(scored)} identities to score "
            f"({', '.join(overlap[:5]) + (', ...' if len(overlap) > 5 else '')}): its numbers are not those of "
            "unseen identities")

