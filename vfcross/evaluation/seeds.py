"""Systems trained with several seeds, scored on the same pairs: seed spread, intervals and paired differences.

A *system* (a Table 6 variant, a backbone architecture) is trained once per
training seed; every trained copy is scored on the SAME verification pairs
(drawn once from the evaluation seed). Then

* :func:`seed_summary` gives a system's mean over seeds, the seed spread,
  and an identity-level interval of the seed-averaged metric (each
  bootstrap resample of test identities recomputes every seed's metric and
  averages them), so the interval speaks of new test identities and the
  spread of new training seeds, side by side;
* :func:`paired_by_seed` gives, for each seed, the paired difference of two
  systems with its identity-level interval (seed s of one against seed s of
  the other; a system trained once, such as the backbone a fusion sits on,
  is paired with every seed of the other). A claim's verdict is decided on
  these (:func:`vfcross.reporting.verdicts.decide_across_seeds`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vfcross.evaluation.bootstrap import (
    cluster_bootstrap_ci,
    paired_cluster_bootstrap_ci,
)
from vfcross.evaluation.metrics import eer, roc_auc, weighted
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
                n_pairs: int = 10_000, seed: int = 0, split: str = "test",
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

    Its ``prepare(labels, *per_seed)`` gives the bootstrap a fast weighted
    version (each seed's scores sorted once; see
    :func:`vfcross.evaluation.metrics.weighted`).
    """
    def statistic(labels: np.ndarray, *per_seed: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        return float(np.mean([metric(s, labels, sample_weight=sample_weight) for s in per_seed]))

    def prepare(labels: np.ndarray, *per_seed: np.ndarray) -> Callable[[np.ndarray], float]:
        fast = [weighted(metric, s, labels) for s in per_seed]
        return lambda sample_weight: float(np.mean([f(sample_weight) for f in fast]))

    statistic.prepare = prepare
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


def paired_by_seed(scored: SeedScores, a: str, b: str, metric: str = "auc", n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95) -> list[dict]:
    """Per training seed, the paired difference a - b with its identity-level interval.

    Seeds are matched by value where both systems have them; a system with
    a single seed is paired with every seed of the other. Each entry is
    ``{"seed", "difference", "ci" (None when undefined), "a", "b"}``.
    """
    fn, _ = METRICS[metric]
    runs_a = dict(zip(scored.seeds[a], scored.scores[a]))
    runs_b = dict(zip(scored.seeds[b], scored.scores[b]))
    if len(runs_b) == 1:
        matched = [(s, runs_a[s], next(iter(runs_b.values()))) for s in runs_a]
    elif len(runs_a) == 1:
        matched = [(s, next(iter(runs_a.values())), runs_b[s]) for s in runs_b]
    else:
        common = sorted(set(runs_a) & set(runs_b))
        if not common:
            raise ValueError(f"{a} (seeds {sorted(runs_a)}) and {b} (seeds {sorted(runs_b)}) share no training seed")
        matched = [(s, runs_a[s], runs_b[s]) for s in common]
    out = []
    for s, scores_a, scores_b in matched:
        try:
            paired = paired_cluster_bootstrap_ci(fn, scored.clusters, (scores_a, scored.labels),
                                                 (scores_b, scored.labels), n_boot=n_boot, level=level, seed=seed)
            out.append({"seed": int(s), "difference": paired.difference, "ci": list(paired.ci), "a": paired.a,
                        "b": paired.b})
        except ValueError as error:
            a_value, b_value = fn(scores_a, scored.labels), fn(scores_b, scored.labels)
            out.append({"seed": int(s), "difference": a_value - b_value, "ci": None, "a": a_value, "b": b_value,
                        "note": f"no identity-level interval ({error})"})
    return out


@dataclass(frozen=True)
class SplitComparison:
    """Fusion models (one per seed) against their backbone on one split: paired AUC differences per seed."""

    split: str
    identities: int
    rows: list[dict]
    histograms: dict[str, tuple[np.ndarray, np.ndarray]]
    note: str = ""

    def describe(self) -> str:
        """One line per seed: fusion AUC, backbone AUC, the paired difference and its interval."""
        if self.note:
            return self.note
        lines = [f"{self.split} identities: {self.identities}"]
        for r in self.rows:
            ci = "no interval" if r["ci"] is None else f"[{100 * r['ci'][0]:+.1f}, {100 * r['ci'][1]:+.1f}]"
            lines.append(f"seed {r['seed']}: fusion AUC {100 * r['a']:.1f}% vs backbone {100 * r['b']:.1f}%: "
                         f"{100 * r['difference']:+.1f} points, 95% CI {ci}")
        return "\n".join(lines)

    def table(self) -> pd.DataFrame:
        """The per-seed rows as a table (AUCs and differences in %)."""
        rows = [{"seed": r["seed"], "fusion AUC %": round(100 * r["a"], 2), "backbone AUC %": round(100 * r["b"], 2),
                 "difference (points)": round(100 * r["difference"], 2),
                 "95% CI": "n/a" if r["ci"] is None else f"[{100 * r['ci'][0]:+.1f}, {100 * r['ci'][1]:+.1f}]"}
                for r in self.rows]
        return pd.DataFrame(rows)


def compare_on_split(models: Mapping[int, object], embeddings, split: str, eval_cfg) -> SplitComparison:
    """Fusion models (training seed -> model) against the backbone embeddings they sit on, on one split.

    Verification pairs of ``split`` are drawn once (``eval_cfg.seed``,
    ``eval_cfg.n_pairs``) and scored by the backbone's own embeddings and by
    every seed's test-time u/v; differences are paired and intervals
    identity-level (``eval_cfg.n_boot`` resamples). A split without two
    identities gives an empty comparison with a note.
    """
    table = embeddings.table.reset_index(drop=True)
    rows = (table["split"] == split).fillna(False).to_numpy()
    part = table[rows].reset_index(drop=True)
    if part["identity"].nunique() < 2:
        return SplitComparison(split, int(part["identity"].nunique()), [], {},
                               note=f"no comparison on the {split} split: it has fewer than two identities")
    vectors = embeddings.vectors[rows]
    systems = {"fusion": {seed: project(model, vectors, part) for seed, model in models.items()},
               "backbone": {0: vectors}}
    scored = score_seeds(systems, part, "random", eval_cfg.n_pairs, eval_cfg.seed, split)
    paired = paired_by_seed(scored, "fusion", "backbone", "auc", eval_cfg.n_boot, eval_cfg.seed)
    first = min(models)
    histograms = {"backbone": (scored.scores["backbone"][0], scored.labels),
                  f"fusion + FOP (seed {first})": (scored.scores["fusion"][0], scored.labels)}
    return SplitComparison(split, int(part["identity"].nunique()), paired, histograms)
