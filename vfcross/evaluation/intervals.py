"""Identity-level intervals: one resampling of test identities for every interval, paired difference and decision.

Resample b draws the m test identities with replacement (the b-th ``rng.integers(0, m, m)`` of
``default_rng(seed)``, identities sorted), so one seed gives every statistic the same draws. A unit (pair, trial,
query) belongs to one identity and counts as often as it is drawn. A paired difference is taken on the same draws;
a claim's decision adds the seed spread, SE² = SE²(identities) + SD²(seeds)/S. Evidence: docs/statistics.md.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from vfcross.scores import ListScore, SeedScores

#: Most resamples a statistic may be undefined on (as a fraction) before its interval is refused.
MAX_FAILED = 0.05
#: Confidence level of every reported interval; power at which the smallest detectable difference is stated.
LEVEL, POWER = 0.95, 0.8


def identity_draws(n_identities: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_identities) counts of how often each identity is drawn in each resample."""
    if n_identities < 1 or n_boot < 1:
        raise ValueError(f"need n_identities >= 1 and n_boot >= 1, got {n_identities} and {n_boot}")
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n_identities, n_identities), minlength=n_identities)
                     for _ in range(n_boot)])


def weighted_mean(values: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Mean of ``values`` each counted ``sample_weight`` times: matching accuracy and mAP under resampling."""
    values = np.asarray(values, dtype=np.float64).ravel()
    weights = np.ones(len(values)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).ravel()
    if np.isnan(values).any():
        raise ValueError("values hold NaN; leave undefined units out before averaging")
    if not weights.sum() > 0:
        raise ValueError("the total weight is 0: no unit to average")
    return float(np.dot(weights, values) / weights.sum())


def cluster_values(statistic: Callable[..., float], clusters: np.ndarray, *arrays: np.ndarray, n_boot: int = 1000,
                   seed: int = 0, identities: np.ndarray | None = None) -> np.ndarray:
    """``statistic(*arrays, sample_weight=w)`` on each identity resample, ``w`` each unit's multiplicity, ``clusters``
    each unit's identity among ``identities`` (default: those seen); NaN where it raises ValueError (one class)."""
    clusters = np.asarray(clusters)
    universe = np.unique(clusters) if identities is None else np.unique(np.asarray(identities))
    codes = np.searchsorted(universe, clusters)
    if not len(clusters) or (universe[np.minimum(codes, len(universe) - 1)] != clusters).any():
        raise ValueError("clusters must be a non-empty array of labels among the given identities")
    if any(len(a) != len(clusters) for a in arrays):
        raise ValueError(f"arrays must have one row per unit ({len(clusters)}), got {[len(a) for a in arrays]}")
    out = []
    for counts in identity_draws(len(universe), n_boot, seed):
        try:
            out.append(float(statistic(*arrays, sample_weight=counts[codes].astype(np.float64))))
        except ValueError:
            out.append(np.nan)
    return np.array(out)


def percentiles(values: np.ndarray, level: float = LEVEL, what: str = "identity bootstrap") -> tuple[float, float]:
    """Percentile interval of the defined values; ValueError when more than :data:`MAX_FAILED` are undefined."""
    failures = int(np.isnan(values).sum())
    if failures > MAX_FAILED * len(values):
        raise ValueError(f"{what}: the statistic failed on {failures} of {len(values)} bootstrap resamples "
                         "(more than 5%)")
    low, high = np.percentile(values[~np.isnan(values)], [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def interval(values: Callable[[], np.ndarray], what: str, notes: list[str], n_identities: int,
             single: str = "all its units belong to one identity") -> list[float] | None:
    """The 95% interval of the replicates ``values()`` as a JSON list; None, with the reason in ``notes``, where the
    units hold one identity or the statistic is undefined on too many resamples (too few identities)."""
    if n_identities < 2:
        notes.append(f"{what}: no identity-level interval ({single})")
        return None
    try:
        return list(percentiles(values(), LEVEL, "cluster bootstrap"))
    except ValueError as error:
        notes.append(f"{what}: no identity-level interval ({error}); too few identities")
        return None


def list_interval(score: ListScore, metric: str, what: str, notes: list[str], n_boot: int, seed: int,
                  single: str = "all its units belong to one identity") -> list[float] | None:
    """:func:`interval` of one verification list's ``metric`` ("auc" or "eer")."""
    draws = lambda: score.replicates(metric, identity_draws(len(score.identities), n_boot, seed))
    return interval(draws, what, notes, len(score.identities), single)


def paired(a: ListScore, b: ListScore, metric: str, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, 2) replicates of a and b on the same draws of the identities of both (NaN rows where either is)."""
    universe = np.union1d(a.identities, b.identities)
    draws = identity_draws(len(universe), n_boot, seed)
    values = np.stack([s.replicates(metric, draws, universe) for s in (a, b)], axis=1)
    values[np.isnan(values).any(axis=1)] = np.nan
    return values


def paired_interval(a: ListScore, b: ListScore, metric: str, n_boot: int, seed: int) -> dict:
    """a - b on one list scored by two systems, with the 95% intervals of the difference and of each."""
    values = paired(a, b, metric, n_boot, seed)
    ci = lambda v: list(percentiles(v, LEVEL, "paired cluster bootstrap"))
    return {"difference": a.value(metric) - b.value(metric), "ci": ci(values[:, 0] - values[:, 1]),
            "a": a.value(metric), "a_ci": ci(values[:, 0]), "b": b.value(metric), "b_ci": ci(values[:, 1]),
            "level": LEVEL, "n_boot": n_boot, "failures": int(np.isnan(values[:, 0]).sum()),
            "identities": len(np.union1d(a.identities, b.identities))}


def contrast(score: ListScore, base: ListScore, n_boot: int = 1000, seed: int = 0) -> dict:
    """One system's AUC on a list minus its AUC on ``base`` (same test identities): difference, 95% and 90% CIs."""
    values = paired(score, base, "auc", n_boot, seed)
    differences = values[:, 0] - values[:, 1]
    try:
        cis = {key: list(percentiles(differences, level)) for key, level in (("ci", 0.95), ("ci_90", 0.90))}
    except ValueError:
        return {"note": f"no identity-level interval: undefined on {int(np.isnan(differences).sum())} of {n_boot} "
                        "resamples"}
    return {"difference": score.auc - base.auc, "identities": len(np.union1d(score.identities, base.identities)), **cis}


@dataclass(frozen=True)
class Decision:
    """A claim's difference a - b: mean over seeds, its standard error and its parts; ``per_seed`` holds ``{"seed",
    "difference", "a", "b"}``, ``seed_sd`` is None with one seed, ``note`` says why there is no interval (no ``se``)."""

    difference: float
    se: float | None
    se_identities: float | None
    seed_sd: float | None
    df: float
    identities: int
    per_seed: tuple[dict, ...]
    note: str = ""

    @property
    def seeds(self) -> int:
        return len(self.per_seed)

    def _t(self, p: float) -> float:
        return float(stats.t.ppf(p, self.df))

    def half_width(self, level: float) -> float | None:
        return None if self.se is None else self._t(0.5 + level / 2) * self.se

    def interval(self, level: float) -> tuple[float, float] | None:
        """difference ± t·SE at two-sided ``level`` (None without an SE)."""
        half = self.half_width(level)
        return None if half is None else (self.difference - half, self.difference + half)

    def mde(self, level: float, equivalence: bool = False, power: float = POWER) -> float | None:
        """Smallest difference detected with ``power`` (superiority), or smallest margin shown (equivalence, TOST)."""
        if self.se is None:
            return None
        return (self._t(0.5 + level / 2) + self._t(0.5 + power / 2 if equivalence else power)) * self.se

    def identities_for(self, target: float, level: float, equivalence: bool = False) -> int | None:
        """Test identities that would bring :meth:`mde` to ``target`` at these seeds (None: the seed part alone is
        too large); the identity variance scales as 1/identities."""
        mde = self.mde(level, equivalence)
        if mde is None or not target > 0:
            return None
        if mde <= target:
            return self.identities
        room = (target * self.se / mde) ** 2 - (self.seed_sd or 0.0) ** 2 / self.seeds
        return None if room <= 0 else math.ceil(self.identities * self.se_identities ** 2 / room)

    def seeds_for(self, half_width: float, level: float, most: int = 100) -> int | None:
        """Seeds that would bring the half-width to ``half_width`` with the measured spread (None: unknown spread,
        or ``most`` seeds would not do)."""
        if self.se is None or self.seed_sd is None:
            return None
        for s in range(2, most + 1):
            parts = [(self.se_identities ** 2, self.identities - 1), (self.seed_sd ** 2 / s, s - 1)]
            if float(stats.t.ppf(0.5 + level / 2, _satterthwaite(parts))) * math.sqrt(sum(v for v, _ in parts)) \
                    <= half_width:
                return s
        return None


def _satterthwaite(parts: Sequence[tuple[float, float]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of variances, each (variance, its df)."""
    total = sum(v for v, _ in parts)
    denominator = sum(v * v / df for v, df in parts if df > 0)
    return float(total * total / denominator) if denominator > 0 else float(max(df for _, df in parts))


def seed_decision(per_seed: Sequence[Mapping], replicates: np.ndarray, identities: int) -> Decision:
    """The decision from per-seed differences and their replicates (n_boot, seeds) on the same identity draws; a
    resample undefined for any seed is skipped, more than 5% skipped gives no interval (``note`` says why)."""
    per_seed = tuple(dict(p) for p in per_seed)
    if not per_seed or np.ndim(replicates) != 2 or np.shape(replicates)[1] != len(per_seed):
        raise ValueError(f"replicates must be (n_boot, {len(per_seed)} seeds), got shape {np.shape(replicates)}")
    if identities < 2:
        raise ValueError(f"a decision needs at least 2 test identities, got {identities}")
    differences = np.array([p["difference"] for p in per_seed], dtype=float)
    s = len(differences)
    seed_sd = float(np.std(differences, ddof=1)) if s > 1 else None
    mean = float(differences.mean())
    means = np.asarray(replicates, dtype=float).mean(axis=1)
    failed = int(np.isnan(means).sum())
    if failed > MAX_FAILED * len(means) or len(means) - failed < 2:
        return Decision(mean, None, None, seed_sd, identities - 1, identities, per_seed,
                        note=f"no identity-level interval: the difference is undefined on {failed} of "
                             f"{len(means)} identity resamples (too few identities)")
    se_identities = float(np.std(means[~np.isnan(means)], ddof=1))
    parts = [(se_identities ** 2, identities - 1)] + ([(seed_sd ** 2 / s, s - 1)] if seed_sd is not None else [])
    return Decision(mean, math.sqrt(sum(v for v, _ in parts)), se_identities, seed_sd, _satterthwaite(parts),
                    identities, per_seed)


def seed_summary(scored: SeedScores, system: str, metric: str = "auc", n_boot: int = 1000, seed: int = 0,
                 level: float = LEVEL) -> dict:
    """A system's metric per seed, their mean and SD, and one interval of the mean over seeds built as a claim's
    (identities and seeds; identities only with one seed). The interval is cut to [0, 1]."""
    runs = scored.scores[system]
    values = [s.value(metric) for s in runs]
    out = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
           "min": float(np.min(values)), "max": float(np.max(values)),
           "per_seed": {int(s): float(v) for s, v in zip(scored.seeds[system], values)}}
    draws = identity_draws(len(scored.identities), n_boot, seed)
    try:
        replicates = np.stack([s.replicates(metric, draws, scored.identities) for s in runs], axis=1)
        decision = seed_decision([{"seed": s, "difference": v} for s, v in zip(scored.seeds[system], values)],
                                 replicates, len(scored.identities))
    except ValueError as error:
        out["ci"], out["note"] = None, f"no identity-level interval ({error})"
        return out
    ci = decision.interval(level)
    out["ci"] = None if ci is None else [max(0.0, float(ci[0])), min(1.0, float(ci[1]))]
    out["se_identities"] = decision.se_identities
    if ci is None:
        out["note"] = decision.note
    return out


def paired_decision(scored: SeedScores, a: str, b: str, metric: str = "auc", n_boot: int = 1000,
                    seed: int = 0) -> Decision:
    """a - b as the mean over seeds of the paired difference (seed s of a against seed s of b; a system with one
    seed pairs with every seed of the other), with one interval of identities and seeds."""
    runs_a, runs_b = (dict(zip(scored.seeds[x], scored.scores[x])) for x in (a, b))
    run = lambda runs, s: next(iter(runs.values())) if len(runs) == 1 else runs[s]
    common = runs_a if len(runs_b) == 1 else runs_b if len(runs_a) == 1 else sorted(set(runs_a) & set(runs_b))
    if not common:
        raise ValueError(f"{a} (seeds {sorted(runs_a)}) and {b} (seeds {sorted(runs_b)}) share no training seed")
    matched = [(s, run(runs_a, s), run(runs_b, s)) for s in common]
    draws = identity_draws(len(scored.identities), n_boot, seed)
    replicates = functools.cache(lambda score: score.replicates(metric, draws, scored.identities))
    per_seed = [{"seed": int(s), "difference": sa.value(metric) - sb.value(metric), "a": sa.value(metric),
                 "b": sb.value(metric)} for s, sa, sb in matched]
    values = np.stack([replicates(sa) - replicates(sb) for _, sa, sb in matched], axis=1)
    return seed_decision(per_seed, values, len(scored.identities))


# --- Readings of intervals: the decision rules the reports state (reporting formats them, decides nothing) ---
HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
#: Half-width of the band around 50% inside which a G-negative AUC interval reads "gender only" (evidence of
#: absence): under half the smallest G-negative gain a method of Table 3 reports.
CHANCE_BAND = 0.05
#: An input-level probe this far above the backbone's says the embedding lost what its input carries.
PROBE_LOSS = 0.15


def inside(ci: Sequence[float] | None, centre: float, band: float) -> bool:
    """Whether an interval lies strictly inside centre ± band."""
    return ci is not None and centre - band < ci[0] and ci[1] < centre + band


def side(ci: Sequence[float] | None, centre: float = 0.0) -> str:
    """'above' or 'below' where an interval lies wholly beyond ``centre``, else 'across' ('none' without one)."""
    return "none" if ci is None else "above" if ci[0] > centre else "below" if ci[1] < centre else "across"


def gender_reading(ci: Sequence[float] | None) -> str:
    """A G-negative AUC interval: 'gender only' inside 50% ± :data:`CHANCE_BAND`, else its side of 50%."""
    return "gender only" if inside(ci, 0.5, CHANCE_BAND) else side(ci, 0.5)


def contrast_reading(contrast: Mapping, margin: float) -> str:
    """A restricted list's AUC minus the random list's: 'close' (90% interval inside ±margin), else the side of 0
    its 95% interval lies on."""
    return "close" if inside(contrast["ci_90"], 0.0, margin) else side(contrast["ci"])


def superiority(low: float, high: float, higher_is_better: bool = True, delta: float | None = None) -> tuple[str, bool]:
    """'a better than b' from the interval of a - b: holds above 0; contradicted below 0, or across 0 with its top
    below δ (the smallest gain that matters); else inconclusive. Also whether δ qualifies the outcome."""
    low, high = (low, high) if higher_is_better else (-high, -low)
    small = delta is not None and high < delta
    if low > 0:
        return HOLDS, small
    if high < 0:
        return CONTRADICTED, False
    return (CONTRADICTED, True) if small else (INCONCLUSIVE, False)


def equivalence(low: float, high: float, margin: float) -> str:
    """'a ≈ b within ±margin' (two one-sided tests on the 90% interval): holds inside, contradicted wholly outside."""
    if inside((low, high), 0.0, margin):
        return HOLDS
    return CONTRADICTED if low >= margin or high <= -margin else INCONCLUSIVE


def lost_in_learning(probes: Sequence[Mapping], modality: str) -> list[tuple[str, float, float]]:
    """(attribute, input-level score, backbone score) where the input probe beats the backbone's by more than
    :data:`PROBE_LOSS`."""
    score = {(p["modality"], p["representation"], p["attribute"]): p["score"] for p in probes}
    return [(a, value, score[(m, "backbone", a)]) for (m, r, a), value in score.items()
            if m == modality and r == "input features" and (m, "backbone", a) in score
            and value - score[(m, "backbone", a)] > PROBE_LOSS]
