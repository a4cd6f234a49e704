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

from vfcross.evaluation.bootstrap import cluster_bootstrap_ci, cluster_bootstrap_values
from vfcross.evaluation.decision import Decision, seed_decision
from vfcross.evaluation.metrics import by_identity, eer, roc_auc
from vfcross.evaluation.protocols import (
    VerificationPairs,
    verification_pairs,
    verification_scores,
)
from vfcross.fusion.task import project

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


def _seed_mean(metric: Callable[..., float]) -> Callable[..., float]:
    """A statistic ``(labels, *scores_per_seed) -> mean over seeds of metric``, for the bootstrap.

    Its ``by_identity(codes, m, labels, *per_seed)`` gives the bootstrap the
    batched version (each seed's metric from identity counts; see
    :func:`vfcross.evaluation.metrics.by_identity`).
    """
    def statistic(labels: np.ndarray, *per_seed: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        return float(np.mean([metric(s, labels, sample_weight=sample_weight) for s in per_seed]))

    def prepared(codes: np.ndarray, m: int, labels: np.ndarray, *per_seed: np.ndarray) -> Callable:
        fast = [by_identity(metric, codes, m, s, labels) for s in per_seed]
        return lambda counts: np.mean([f(counts) for f in fast], axis=0)

    statistic.by_identity = prepared
    return statistic


def seed_summary(scored: SeedScores, system: str, metric: str = "auc", n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict:
    """A system's metric per seed, their mean and spread, and an identity-level interval of the mean.

    Returns ``{"mean", "sd" (over seeds; 0 for one seed), "min", "max",
    "per_seed": {seed: value}, "ci": [low, high] or None, "note"?}``; the
    interval is None (with a note) where too few identities make it
    undefined.
    """
    fn, _ = METRICS[metric]
    values = [fn(s, scored.labels) for s in scored.scores[system]]
    out = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
           "min": float(np.min(values)), "max": float(np.max(values)),
           "per_seed": {int(s): float(v) for s, v in zip(scored.seeds[system], values)}}
    try:
        out["ci"] = list(cluster_bootstrap_ci(_seed_mean(fn), scored.clusters, scored.labels,
                                              *scored.scores[system], n_boot=n_boot, level=level, seed=seed))
    except ValueError as error:
        out["ci"], out["note"] = None, f"no identity-level interval ({error})"
    return out


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


@dataclass(frozen=True)
class SplitComparison:
    """Fusion models (one per seed) against their backbone on one split: the paired AUC difference over seeds.

    ``decision`` is None (with ``note``) where the split has too few identities.
    """

    split: str
    identities: int
    decision: Decision | None
    histograms: dict[str, tuple[np.ndarray, np.ndarray]]
    note: str = ""

    @property
    def rows(self) -> list[dict]:
        """Per seed: ``{"seed", "difference", "a" (fusion AUC), "b" (backbone AUC)}``."""
        return [] if self.decision is None else list(self.decision.per_seed)

    def ci(self, level: float = 0.95) -> tuple[float, float] | None:
        """The interval of the mean difference over seeds (None where none could be made)."""
        return None if self.decision is None else self.decision.interval(level)

    def describe(self) -> str:
        """One line per seed (fusion AUC, backbone AUC, difference), then the mean difference and its interval."""
        if self.note:
            return self.note
        lines = [f"{self.split} identities: {self.identities}"]
        lines += [f"seed {r['seed']}: fusion AUC {100 * r['a']:.1f}% vs backbone {100 * r['b']:.1f}%: "
                  f"{100 * r['difference']:+.1f} points" for r in self.rows]
        ci = self.ci()
        lines.append(f"mean over {len(self.rows)} seeds: {100 * self.decision.difference:+.1f} points, 95% CI "
                     + ("n/a" if ci is None else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]")
                     + (" (seed spread not measured: 1 seed)" if len(self.rows) == 1 else ""))
        return "\n".join(lines)

    def table(self) -> pd.DataFrame:
        """The per-seed rows as a table (AUCs and differences in %)."""
        return pd.DataFrame([{"seed": r["seed"], "fusion AUC %": round(100 * r["a"], 2),
                              "backbone AUC %": round(100 * r["b"], 2),
                              "difference (points)": round(100 * r["difference"], 2)} for r in self.rows])


def compare_on_split(models: Mapping[int, object], embeddings, split: str, eval_cfg) -> SplitComparison:
    """Fusion models (training seed -> model) against the backbone embeddings they sit on, on one split.

    Verification pairs of ``split`` are drawn once (``eval_cfg.seed``,
    ``eval_cfg.n_pairs``) and scored by the backbone's own embeddings and by
    every seed's test-time u/v; the difference is paired, averaged over
    seeds, and its interval counts identities (``eval_cfg.n_boot``
    resamples) and the seed spread (:func:`paired_decision`). A split without two
    identities gives an empty comparison with a note.
    """
    table = embeddings.table.reset_index(drop=True)
    rows = (table["split"] == split).fillna(False).to_numpy()
    part = table[rows].reset_index(drop=True)
    if part["identity"].nunique() < 2:
        return SplitComparison(split, int(part["identity"].nunique()), None, {},
                               note=f"no comparison on the {split} split: it has fewer than two identities")
    vectors = embeddings.vectors[rows]
    systems = {"fusion": {seed: project(model, vectors, part) for seed, model in models.items()},
               "backbone": {0: vectors}}
    scored = score_seeds(systems, part, "random", eval_cfg.n_pairs, eval_cfg.seed, split)
    decision = paired_decision(scored, "fusion", "backbone", "auc", eval_cfg.n_boot, eval_cfg.seed)
    first = min(models)
    histograms = {"backbone": (scored.scores["backbone"][0], scored.labels),
                  f"fusion + FOP (seed {first})": (scored.scores["fusion"][0], scored.labels)}
    return SplitComparison(split, int(part["identity"].nunique()), decision, histograms)
