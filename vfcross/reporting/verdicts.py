"""Verdicts on the paper's claims, decided by the paired identity-level interval of a difference.

A claim compares system a with system b on one metric (a fraction in
[0, 1], e.g. AUC or EER), from the interval of a - b that
:func:`vfcross.evaluation.evaluate.compare` (or
:func:`~vfcross.evaluation.bootstrap.paired_cluster_bootstrap_ci`) gives:

* superiority, "a is better than b" (better = higher for AUC, lower for
  EER): **holds** if the interval lies entirely on the claimed side of 0,
  **contradicted** if entirely on the other side, else **inconclusive**;
* equivalence, "a ≈ b within a margin m": **holds** if the interval lies
  inside (-m, m), **contradicted** if it lies entirely outside it on one
  side (at or beyond +m, or at or below -m), else **inconclusive**.

Overlapping or separate intervals of the two systems decide nothing here:
only the interval of the difference does. Across training seeds
(:func:`decide_across_seeds`) the verdict is the one every seed gives, and
"inconclusive" where seeds disagree, so a verdict that would flip with the
seed is never reported as holding or contradicted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
OUTCOMES = (HOLDS, CONTRADICTED, INCONCLUSIVE)


def _points(value: float, signed: bool = True) -> str:
    """A difference of fractions in percentage points, e.g. '+1.2'."""
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


@dataclass(frozen=True)
class Claim:
    """A claim about systems ``a`` and ``b`` on ``metric``: superiority (no margin) or equivalence (a margin).

    ``higher_is_better`` gives the metric's direction (True for AUC, False for
    EER); ``margin`` (a fraction, e.g. 0.02 for 2 points) makes it the
    equivalence claim "a ≈ b within ±margin".
    """

    a: str
    b: str
    metric: str
    higher_is_better: bool = True
    margin: float | None = None

    def __post_init__(self) -> None:
        """Reject a margin that cannot define an equivalence region."""
        if self.margin is not None and not (math.isfinite(self.margin) and self.margin > 0):
            raise ValueError(f"an equivalence margin must be a positive fraction, got {self.margin}")

    @property
    def kind(self) -> str:
        """'superiority' or 'equivalence'."""
        return "superiority" if self.margin is None else "equivalence"

    @property
    def text(self) -> str:
        """The claim in words, e.g. 'single stream ≈ dual stream on AUC (within ±2.0 points)'."""
        if self.margin is None:
            direction = "higher" if self.higher_is_better else "lower"
            return f"{self.a} better than {self.b} on {self.metric} ({direction} is better)"
        return f"{self.a} ≈ {self.b} on {self.metric} (within ±{_points(self.margin, signed=False)} points)"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a claim with a one-line explanation of what was compared.

    For one seed ``difference`` and ``ci`` are the paired difference a - b
    and its interval (``ci`` None where no interval could be made); for
    several seeds (:func:`decide_across_seeds`) ``difference`` is the mean
    over seeds, ``ci`` is None and ``per_seed`` holds each seed's verdict.
    """

    claim: Claim
    outcome: str
    explanation: str
    difference: float | None
    ci: tuple[float, float] | None
    level: float
    seeds: tuple[int, ...] = ()
    per_seed: tuple[Verdict, ...] = field(default=())

    def as_dict(self) -> dict:
        """JSON-ready form (for ``reports/summary.json``)."""
        return {
            "claim": self.claim.text,
            "kind": self.claim.kind,
            "a": self.claim.a,
            "b": self.claim.b,
            "metric": self.claim.metric,
            "margin": self.claim.margin,
            "verdict": self.outcome,
            "explanation": self.explanation,
            "difference": self.difference,
            "ci": None if self.ci is None else list(self.ci),
            "level": self.level,
            "seeds": list(self.seeds),
            "per_seed": [v.as_dict() for v in self.per_seed],
        }


def _check_interval(difference: float, ci: Sequence[float] | None) -> tuple[float, float] | None:
    """The interval as a checked (low, high) pair, or None."""
    if not math.isfinite(difference):
        raise ValueError(f"the difference must be finite, got {difference}")
    if ci is None:
        return None
    if len(ci) != 2 or not all(math.isfinite(x) for x in ci) or ci[0] > ci[1]:
        raise ValueError(f"ci must be a finite (low, high) pair with low <= high, got {ci}")
    return float(ci[0]), float(ci[1])


def _superiority(claim: Claim, low: float, high: float) -> str:
    """Outcome of 'a better than b' from the interval of a - b."""
    better_side, worse_side = (low > 0, high < 0) if claim.higher_is_better else (high < 0, low > 0)
    return HOLDS if better_side else CONTRADICTED if worse_side else INCONCLUSIVE


def _equivalence(margin: float, low: float, high: float) -> str:
    """Outcome of 'a ≈ b within ±margin' from the interval of a - b."""
    if -margin < low and high < margin:
        return HOLDS
    if low >= margin or high <= -margin:
        return CONTRADICTED
    return INCONCLUSIVE


def decide(
    claim: Claim,
    difference: float,
    ci: Sequence[float] | None,
    level: float = 0.95,
    identities: int | None = None,
    seed: int | None = None,
) -> Verdict:
    """The verdict on ``claim`` from the paired difference a - b and its interval (fractions).

    ``identities`` (test identities resampled) and ``seed`` (the training
    seed) only enter the explanation. ``ci`` None (no interval could be
    made, e.g. too few identities) gives "inconclusive".
    """
    interval = _check_interval(difference, ci)
    if interval is None:
        outcome = INCONCLUSIVE
        evidence = "no identity-level interval could be made"
    else:
        low, high = interval
        outcome = _superiority(claim, low, high) if claim.margin is None else _equivalence(claim.margin, low, high)
        evidence = f"{level:.0%} CI [{_points(low)}, {_points(high)}]"
    context = ["paired, identity-level"]
    if identities:
        context.append(f"{identities} test identities")
    if seed is not None:
        context.append(f"seed {seed}")
    explanation = (
        f"{claim.text}: {claim.metric}({claim.a}) - {claim.metric}({claim.b}) = {_points(difference)} points, "
        f"{evidence} ({'; '.join(context)}): {outcome}"
    )
    return Verdict(claim, outcome, explanation, float(difference), interval, level,
                   seeds=() if seed is None else (seed,))


def decide_across_seeds(
    claim: Claim,
    intervals: Sequence[tuple[float, Sequence[float] | None]],
    seeds: Sequence[int] | None = None,
    level: float = 0.95,
    identities: int | None = None,
) -> Verdict:
    """The verdict over several training seeds: the common verdict if all agree, else "inconclusive".

    ``intervals`` holds one (difference a - b, interval) per seed, ``seeds``
    the seeds' values (default 0, 1, ...). A single seed gives that seed's
    verdict; a verdict that differs between any two seeds comes out
    inconclusive.
    """
    if not intervals:
        raise ValueError("decide_across_seeds needs at least one seed's interval")
    seeds = tuple(range(len(intervals))) if seeds is None else tuple(int(s) for s in seeds)
    if len(seeds) != len(intervals) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and one per interval, got {list(seeds)} for {len(intervals)}")
    per_seed = tuple(decide(claim, d, ci, level, identities, seed) for (d, ci), seed in zip(intervals, seeds))
    outcomes = [v.outcome for v in per_seed]
    outcome = outcomes[0] if len(set(outcomes)) == 1 else INCONCLUSIVE
    mean = sum(v.difference for v in per_seed) / len(per_seed)
    agreement = "every seed agrees" if len(set(outcomes)) == 1 else "the seeds disagree"
    listing = "; ".join(
        f"seed {v.seeds[0]}: {_points(v.difference)}"
        + (f" [{_points(v.ci[0])}, {_points(v.ci[1])}]" if v.ci else " [no interval]")
        + f" {v.outcome}"
        for v in per_seed
    )
    explanation = (
        f"{claim.text}: {claim.metric}({claim.a}) - {claim.metric}({claim.b}) over {len(seeds)} training seeds "
        f"(paired {level:.0%} identity-level CIs{f', {identities} test identities' if identities else ''}; "
        f"mean {_points(mean)} points): {listing}; {agreement}: {outcome}"
    )
    return Verdict(claim, outcome, explanation, mean, None, level, seeds=seeds, per_seed=per_seed)
