"""Verdicts on the paper's claims, from ONE decision interval per claim and the smallest gain that matters.

A claim compares system a with system b on one metric (a fraction in
[0, 1], e.g. AUC or EER). Its difference a - b is the mean over training
seeds of the paired difference, with one interval that resamples test
identities and counts the seed spread (:class:`vfcross.evaluation.intervals.Decision`,
made by :func:`vfcross.evaluation.intervals.paired_decision`); this module only
applies the rules to it:

* superiority, "a is better than b" (better = higher for AUC, lower for
  EER), on the 95% interval of the gain: **holds** if it lies above 0;
  **contradicted** if it lies below 0, or if it holds 0 and its upper end is
  below δ, the smallest gain that matters ("no gain of ≥ δ points"); else
  **inconclusive**. A gain shown above 0 but below δ (δ = the gain the paper
  reports, say) holds, and says "a gain, but no gain of ≥ δ points";
* equivalence, "a ≈ b within ±m", two one-sided tests on the 90% interval:
  **holds** if it lies inside (-m, m), **contradicted** if it lies wholly
  outside (at or beyond +m, or at or below -m), else **inconclusive**.

Every verdict states its interval, the number of test identities and seeds,
δ or m with its reason, and the smallest difference the design could have
detected (:meth:`~vfcross.evaluation.intervals.Decision.mde`, 80% power): an
inconclusive verdict says how far the design is from deciding. With one
seed the seed spread is not measured, and the verdict says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vfcross.evaluation.intervals import POWER, Decision

HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
#: The widest decision interval (half-width, AUC as a fraction) a default run aims for: a verdict whose
#: interval is wider says how many seeds would bring it there.
GOAL_HALF_WIDTH = 0.015
#: Levels of the decision interval: two-sided 95% for superiority, 90% (two one-sided 5% tests) for equivalence.
SUPERIORITY_LEVEL, EQUIVALENCE_LEVEL = 0.95, 0.90


def _points(value: float, signed: bool = True, decimals: int = 1) -> str:
    """A difference of fractions in percentage points, e.g. '+1.2'."""
    return f"{100 * value:{'+' if signed else ''}.{decimals}f}"


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
    def level(self) -> float:
        """The level of the interval the claim is decided on."""
        return SUPERIORITY_LEVEL if self.margin is None else EQUIVALENCE_LEVEL

    @property
    def text(self) -> str:
        """The claim in words, e.g. 'single stream ≈ dual stream on AUC (within ±2.0 points)'."""
        if self.margin is None:
            direction = "higher" if self.higher_is_better else "lower"
            return f"{self.a} better than {self.b} on {self.metric} ({direction} is better)"
        return f"{self.a} ≈ {self.b} on {self.metric} (within ±{_points(self.margin, signed=False)} points)"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a claim, its decision interval, δ (or the margin) with its reason, and the design's power.

    ``difference`` is the mean over seeds of a - b, ``ci`` its ``level``
    interval (None where none could be made), ``delta`` the smallest gain
    that matters (superiority) or the margin (equivalence), ``mde`` the
    smallest difference the design detects at 80% power.
    """

    claim: Claim
    outcome: str
    explanation: str
    decision: Decision
    ci: tuple[float, float] | None
    delta: float | None
    reason: str
    mde: float | None

    @property
    def difference(self) -> float:
        """The mean over seeds of the paired difference a - b."""
        return self.decision.difference

    def figure_rows(self) -> list[dict]:
        """Rows of :func:`vfcross.reporting.figures.paired_differences_figure`, in AUC points.

        The claim's decision interval (coloured by the verdict, with δ or the
        equivalence margin), then one dot per seed's own difference.
        """
        label = f"{self.claim.a} − {self.claim.b}"
        low, high = (None, None) if self.ci is None else (100 * self.ci[0], 100 * self.ci[1])
        delta = None if self.delta is None else 100 * self.delta
        equivalence = self.claim.margin is not None
        return [{"label": label, "estimate": 100 * self.difference, "low": low, "high": high, "verdict": self.outcome,
                 "margin": delta if equivalence else None, "delta": None if equivalence else delta},
                *({"label": label, "estimate": 100 * p["difference"], "low": None, "high": None, "seed": p["seed"]}
                  for p in self.decision.per_seed)]

    def as_dict(self) -> dict:
        """JSON-ready form (for ``reports/summary.json``)."""
        d = self.decision
        return {"claim": self.claim.text, "kind": self.claim.kind, "a": self.claim.a, "b": self.claim.b,
                "metric": self.claim.metric, "margin": self.delta, "margin_reason": self.reason,
                "verdict": self.outcome, "explanation": self.explanation, "difference": d.difference,
                "ci": None if self.ci is None else list(self.ci), "level": self.claim.level, "mde": self.mde,
                "identities": d.identities, "seeds": [p["seed"] for p in d.per_seed], "seed_sd": d.seed_sd,
                "per_seed": [{"seed": p["seed"], "difference": p["difference"]} for p in d.per_seed]}


def _superiority(claim: Claim, low: float, high: float, delta: float | None) -> tuple[str, str]:
    """Outcome of 'a better than b' from the interval of a - b, and the reason when δ decides it."""
    gain_low, gain_high = (low, high) if claim.higher_is_better else (-high, -low)
    if gain_low > 0:  # a gain exists; say so too when it is smaller than δ (e.g. the paper's own gain)
        small = delta is not None and gain_high < delta
        return HOLDS, f"a gain, but no gain of ≥ {_points(delta, signed=False)} points" if small else ""
    if gain_high < 0:
        return CONTRADICTED, ""
    if delta is not None and gain_high < delta:
        return CONTRADICTED, f"no gain of ≥ {_points(delta, signed=False)} points"
    return INCONCLUSIVE, ""


def _equivalence(margin: float, low: float, high: float) -> str:
    """Outcome of 'a ≈ b within ±margin' from the 90% interval of a - b."""
    if -margin < low and high < margin:
        return HOLDS
    if low >= margin or high <= -margin:
        return CONTRADICTED
    return INCONCLUSIVE


def _design(claim: Claim, decision: Decision, delta: float | None, mde: float | None) -> str:
    """Identities, seeds, the seed spread, the smallest detectable difference and what deciding would take."""
    seeds = decision.seeds
    spread = ("seed spread not measured: 1 seed" if decision.seed_sd is None else
              f"{seeds} seeds, seed SD {_points(decision.seed_sd, signed=False)} points")
    parts = [f"{decision.identities} test identities", spread]
    half = decision.half_width(claim.level)
    if half is not None and half > GOAL_HALF_WIDTH:
        seeds_needed = decision.seeds_for(GOAL_HALF_WIDTH, claim.level)
        # two decimals: at one, a half-width just above the goal reads "1.5 points, above the goal of 1.5"
        parts.append(f"half-width {_points(half, signed=False, decimals=2)} points, above the goal of "
                     f"{_points(GOAL_HALF_WIDTH, signed=False)}: "
                     + (f"≈ {seeds_needed} seeds would reach it" if seeds_needed else
                        "its seed spread is not measured" if decision.seed_sd is None else
                        "more test identities needed as well as seeds"))
    if mde is not None:
        what = "smallest margin it could show (80% power, no true difference)" if claim.margin else \
            f"smallest gain it detects ({POWER:.0%} power)"
        parts.append(f"{what} {_points(mde, signed=False)} points")
        if delta is not None and mde > delta:
            needed = decision.identities_for(delta, claim.level, equivalence=claim.margin is not None)
            parts.append(f"≈ {needed} test identities would reach {_points(delta, signed=False)}" if needed else
                         f"more seeds needed to reach {_points(delta, signed=False)}")
    return "; ".join(parts)


def decide(claim: Claim, decision: Decision, delta: float | None = None, reason: str = "") -> Verdict:
    """The verdict on ``claim`` from its decision (a - b over seeds); ``delta``: the smallest gain that matters.

    An equivalence claim's δ is its margin. ``reason`` says why δ is what it
    is and enters the explanation. No interval (too few identities) gives
    "inconclusive".
    """
    delta = claim.margin if claim.margin is not None else delta
    if delta is not None and not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"the smallest gain that matters must be a positive fraction, got {delta}")
    ci = decision.interval(claim.level)
    mde = decision.mde(claim.level, equivalence=claim.margin is not None)
    why = ""
    if ci is None:
        outcome, evidence = INCONCLUSIVE, decision.note or "no interval could be made"
    else:
        outcome, why = (_superiority(claim, *ci, delta) if claim.margin is None else
                        (_equivalence(claim.margin, *ci), ""))
        evidence = f"{claim.level:.0%} CI [{_points(ci[0])}, {_points(ci[1])}]"
    per_seed = ", ".join(_points(p["difference"]) for p in decision.per_seed)
    delta_text = "" if delta is None else f"; δ = {_points(delta, signed=False)} points"
    delta_text += f" ({reason})" if delta is not None and reason else ""
    explanation = (f"{claim.text}: {claim.metric}({claim.a}) - {claim.metric}({claim.b}) = "
                   f"{_points(decision.difference)} points (mean over seeds: {per_seed}), {evidence} "
                   f"({_design(claim, decision, delta, mde)}){delta_text}: {outcome}" + (f" ({why})" if why else ""))
    return Verdict(claim, outcome, explanation, decision, ci, delta, reason, mde)
