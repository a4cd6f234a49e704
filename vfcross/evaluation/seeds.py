"""Systems trained with several seeds, scored on the same pairs: seed spread, intervals and paired differences.

A *system* (a Table 6 variant, a backbone architecture) is trained once per
training seed; every trained copy is scored on the SAME verification pairs
(drawn once from the evaluation seed). Then

* :func:`seed_summary` gives a system's mean over seeds, the seed spread,
  and an identity-level interval of the seed-averaged metric (each
  bootstrap resample of test identities recomputes every seed's metric and
  averages them), so the interval speaks of new test identities and the
  spread of new training seeds, side by side;
* :func:`paired_decision` gives the paired difference of two systems as the
  mean over seeds of each seed's difference (seed s of one against seed s of
  the other; a system trained once, such as the backbone a fusion sits on,
  is paired with every seed of the other), with ONE interval that resamples
  test identities and counts the seed spread
  (:mod:`vfcross.evaluation.decision`). A claim's verdict is decided on it
  (:func:`vfcross.reporting.verdicts.decide`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vfcross.evaluation.bootstrap import cluster_bootstrap_values
from vfcross.evaluation.decision import Decision, seed_decision
from vfcross.metrics import eer, roc_auc
from vfcross.evaluation.protocols import (
    VerificationPairs,
    verification_pairs,
    verification_scores,
)

#: Verification metrics by name, and whether higher is better.
METRICS: dict[str, tuple[Callable[..., float], bool]] = {"auc": (roc_auc, True), "eer": (eer, False)}


@dataclass(frozen=True)
class SeedScores:
    """One verification list scored by every seed of every system.

    ``scores[system][i]`` are the cosine scores of the pairs by the model of
    training seed ``seeds[system][i]``; ``labels`` and ``clusters`` (each
    pair's voice identity, the bootstrap's unit) are shared by all.
    """

    restriction: str
    labels: np.ndarray
    clusters: np.ndarray
    scores: dict[str, list[np.ndarray]]
    seeds: dict[str, list[int]]

    def __len__(self) -> int:
        return len(self.labels)


def score_seeds(systems: Mapping[str, Mapping[int, np.ndarray]], table: pd.DataFrame, restriction: str = "random",
                n_pairs: int = 0, seed: int = 0, split: str = "test",
                pairs: VerificationPairs | None = None) -> SeedScores:
    """Draw one verification list (or take ``pairs``) and score it with every system's every seed.

    ``systems`` maps a system's name to {training seed: row vectors}, each
    vector array L2-normalised with one row per ``table`` row (v for voices,
    u for faces). ``pairs`` (e.g. an official list,
    ``protocols.verification("random").protocol`` of
    :mod:`vfcross.evaluation.registry`) replaces the generated list.
    """
    if not systems or any(not runs for runs in systems.values()):
        raise ValueError("every system needs at least one trained seed")
    if pairs is None:
        pairs = verification_pairs(table, restriction, n_pairs, seed, split)
    restriction = pairs.name
    identity = table["identity"].to_numpy(dtype=str)
    scores = {name: [verification_scores(pairs, runs[s]) for s in sorted(runs)] for name, runs in systems.items()}
    seeds = {name: sorted(runs) for name, runs in systems.items()}
    return SeedScores(restriction, pairs.labels, identity[pairs.voice], scores, seeds)


def seed_summary(scored: SeedScores, system: str, metric: str = "auc", n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict:
    """A system's metric per seed, their mean and spread, and one interval of the mean over seeds.

    The interval is built as a claim's (:func:`~vfcross.evaluation.decision.seed_decision`):
    mean ± t·SE with SE² = SE²(identity bootstrap of the seed mean) + SD²(seeds)/S,
    so it speaks of new test identities AND new training seeds (with one
    seed, of identities only). Returns ``{"mean", "sd" (over seeds; 0 for one
    seed), "min", "max", "per_seed": {seed: value}, "ci": [low, high] (cut to [0, 1]) or None,
    "se_identities", "note"?}``; the interval is None (with a note) where too
    few identities make it undefined.
    """
    fn, _ = METRICS[metric]
    values = [fn(s, scored.labels) for s in scored.scores[system]]
    out = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
           "min": float(np.min(values)), "max": float(np.max(values)),
           "per_seed": {int(s): float(v) for s, v in zip(scored.seeds[system], values)}}
    identities = np.unique(scored.clusters)
    try:
        replicates = np.stack([cluster_bootstrap_values(fn, scored.clusters, s, scored.labels, n_boot=n_boot,
                                                        seed=seed, identities=identities)
                               for s in scored.scores[system]], axis=1)
        decision = seed_decision([{"seed": s, "difference": v} for s, v in zip(scored.seeds[system], values)],
                                 replicates, len(identities))
    except ValueError as error:
        out["ci"], out["note"] = None, f"no identity-level interval ({error})"
        return out
    ci = decision.interval(level)
    out["ci"] = None if ci is None else [max(0.0, float(ci[0])), min(1.0, float(ci[1]))]  # AUC and EER lie in [0, 1]
    out["se_identities"] = decision.se_identities
    if ci is None:
        out["note"] = decision.note
    return out


def seed_summaries(scored: SeedScores, systems, n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, dict]]:
    """:func:`seed_summary` of every metric (AUC, EER) for each of ``systems``: ``{system: {metric: summary}}``."""
    return {system: {metric: seed_summary(scored, system, metric, n_boot, seed) for metric in METRICS}
            for system in systems}


def _matched(scored: SeedScores, a: str, b: str) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(seed, scores of a, scores of b) per seed: matched by value; a system with one seed pairs with every seed."""
    runs_a = dict(zip(scored.seeds[a], scored.scores[a]))
    runs_b = dict(zip(scored.seeds[b], scored.scores[b]))
    if len(runs_b) == 1:
        return [(s, runs_a[s], next(iter(runs_b.values()))) for s in runs_a]
    if len(runs_a) == 1:
        return [(s, next(iter(runs_a.values())), runs_b[s]) for s in runs_b]
    common = sorted(set(runs_a) & set(runs_b))
    if not common:
        raise ValueError(f"{a} (seeds {sorted(runs_a)}) and {b} (seeds {sorted(runs_b)}) share no training seed")
    return [(s, runs_a[s], runs_b[s]) for s in common]


def paired_decision(scored: SeedScores, a: str, b: str, metric: str = "auc", n_boot: int = 1000,
                    seed: int = 0) -> Decision:
    """The difference a - b as the mean over seeds of the paired difference, with one interval (a :class:`Decision`).

    Seeds are matched as :func:`_matched` says. Every seed's metric is
    recomputed on the same identity resamples (deterministic from ``seed``),
    so the identity part of the interval is paired; the seed spread of the
    per-seed differences is the other part (:func:`~vfcross.evaluation.decision.seed_decision`).
    """
    fn, _ = METRICS[metric]
    identities = np.unique(scored.clusters)
    cache: dict[int, np.ndarray] = {}

    def replicates(scores: np.ndarray) -> np.ndarray:
        if id(scores) not in cache:
            cache[id(scores)] = cluster_bootstrap_values(fn, scored.clusters, scores, scored.labels, n_boot=n_boot,
                                                         seed=seed, identities=identities)
        return cache[id(scores)]

    matched = _matched(scored, a, b)
    per_seed = []
    for s, scores_a, scores_b in matched:
        value_a, value_b = fn(scores_a, scored.labels), fn(scores_b, scored.labels)
        per_seed.append({"seed": int(s), "difference": value_a - value_b, "a": value_a, "b": value_b})
    values = np.stack([replicates(sa) - replicates(sb) for _, sa, sb in matched], axis=1)
    return seed_decision(per_seed, values, len(identities))


def selection_certainty(kept: Mapping[int, np.ndarray], last: Mapping[int, np.ndarray], table: pd.DataFrame,
                        split: str, eval_cfg) -> list[dict]:
    """How sure each seed's epoch selection was: the kept epoch's model against the last epoch's, on ``split``.

    ``kept[s]`` and ``last[s]`` are seed s's test-time vectors of the rows of
    ``split`` (in ``table``'s order) by its kept and its last epoch. Per seed:
    ``{"seed", "kept_auc", "kept_ci", "last_auc", "last_ci", "difference"
    (kept - last), "ci"}``, the AUCs over every voice-face pair with identity
    intervals and the difference paired on the same identity draws. The kept
    epoch is the one that maximised this very AUC, so on the validation split
    the kept AUC and the difference are optimistic: an interval of the
    difference that reaches 0 says the selection could not tell the kept epoch
    from the last one.
    """
    part = table[(table["split"] == split).fillna(False).to_numpy()].reset_index(drop=True)
    out = []
    for seed in sorted(kept):
        scored = score_seeds({"kept": {seed: kept[seed]}, "last": {seed: last[seed]}}, part, "random",
                             eval_cfg.n_pairs, eval_cfg.seed, split)
        decision = paired_decision(scored, "kept", "last", "auc", eval_cfg.n_boot, eval_cfg.seed)
        ci = decision.interval(0.95)
        row = {"seed": int(seed), "difference": decision.difference, "ci": None if ci is None else list(ci)}
        for name in ("kept", "last"):
            summary = seed_summary(scored, name, "auc", eval_cfg.n_boot, eval_cfg.seed)
            row[f"{name}_auc"], row[f"{name}_ci"] = summary["mean"], summary["ci"]
        out.append(row)
    return out
