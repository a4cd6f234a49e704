"""Verdicts on the paper's claims, from ONE decision interval per claim (a - b, mean over training seeds, over test
identities and seeds: :func:`vfcross.evaluation.intervals.paired_decision`) and the smallest gain that matters.

The rules that read the interval live in :mod:`vfcross.evaluation.intervals`; this module states each verdict,
its design and the smallest difference it could detect."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import jinja2

from vfcross.evaluation.intervals import CONTRADICTED, HOLDS, INCONCLUSIVE, POWER, Decision, equivalence, superiority

__all__ = ["CONTRADICTED", "HOLDS", "INCONCLUSIVE", "Claim", "Verdict", "decide"]
#: The widest decision interval (half-width, AUC as a fraction) a default run aims for: a verdict whose
#: interval is wider says how many seeds would bring it there.
GOAL_HALF_WIDTH = 0.015
#: Levels of the decision interval: two-sided 95% for superiority, 90% (two one-sided 5% tests) for equivalence.
SUPERIORITY_LEVEL, EQUIVALENCE_LEVEL = 0.95, 0.90


@dataclass(frozen=True)
class Claim:
    """A claim about systems ``a`` and ``b`` on ``metric`` (``higher_is_better`` its direction): superiority, or
    with ``margin`` (a fraction) the equivalence "a ≈ b within ±margin"."""

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
        return f"{self.a} ≈ {self.b} on {self.metric} (within ±{100 * self.margin:.1f} points)"


@dataclass(frozen=True)
class Verdict:
    """A claim's outcome, its decision interval ``ci`` (None where none could be made), δ or the margin with its
    reason, and ``mde``, the smallest difference the design detects at 80% power."""

    claim: Claim
    outcome: str
    explanation: str
    decision: Decision
    ci: tuple[float, float] | None
    delta: float | None
    reason: str
    mde: float | None

    def figure_rows(self) -> list[dict]:
        """Rows of :func:`~vfcross.reporting.figures.paired_differences_figure` in AUC points: the decision interval,
        then one dot per seed."""
        label = f"{self.claim.a} − {self.claim.b}"
        low, high = (None, None) if self.ci is None else (100 * self.ci[0], 100 * self.ci[1])
        delta = None if self.delta is None else 100 * self.delta
        equivalence = self.claim.margin is not None
        return [{"label": label, "estimate": 100 * self.decision.difference, "low": low, "high": high,
                 "verdict": self.outcome, "margin": delta if equivalence else None,
                 "delta": None if equivalence else delta},
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


_ENV = jinja2.Environment()
_ENV.filters.update(p=lambda x: f"{100 * x:+.1f}", u=lambda x: f"{100 * x:.1f}")
#: The explanation of a verdict, filled from its fields (see :func:`decide`); the template's lines join unbroken.
EXPLANATION = _ENV.from_string("".join(Path(__file__).with_name("verdict.tmpl").read_text().splitlines()))


def decide(claim: Claim, decision: Decision, delta: float | None = None, reason: str = "") -> Verdict:
    """The verdict on ``claim`` from its decision (a - b over seeds); ``delta``: the smallest gain that matters
    (an equivalence claim's is its margin), ``reason`` why. No interval gives "inconclusive"."""
    delta = claim.margin if claim.margin is not None else delta
    if delta is not None and not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"the smallest gain that matters must be a positive fraction, got {delta}")
    ci, equivalent = decision.interval(claim.level), claim.margin is not None
    mde = decision.mde(claim.level, equivalence=equivalent)
    qualified = False
    if ci is None:
        outcome = INCONCLUSIVE
    elif equivalent:
        outcome = equivalence(*ci, claim.margin)
    else:
        outcome, qualified = superiority(*ci, claim.higher_is_better, delta)
    half = decision.half_width(claim.level)
    half = half if half is not None and half > GOAL_HALF_WIDTH else None
    explanation = EXPLANATION.render(
        text=claim.text, metric=claim.metric, a=claim.a, b=claim.b, difference=decision.difference,
        per_seed=[p["difference"] for p in decision.per_seed], ci=ci, level=claim.level,
        note=decision.note or "no interval could be made", identities=decision.identities, seeds=decision.seeds,
        seed_sd=decision.seed_sd, half=half, goal=GOAL_HALF_WIDTH, power=POWER, equivalent=equivalent, mde=mde,
        seeds_needed=half and decision.seeds_for(GOAL_HALF_WIDTH, claim.level), delta=delta, reason=reason,
        needed=delta and mde and mde > delta and decision.identities_for(delta, claim.level, equivalence=equivalent),
        outcome=outcome, qualified=qualified)
    return Verdict(claim, outcome, explanation, decision, ci, delta, reason, mde)
