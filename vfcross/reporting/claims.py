"""The paper's claims this package tests: two systems measured on the same test pairs, a metric and, for "a is as
good as b", an equivalence margin. Systems are named by the Table 6 variant keys of the configuration and the two
backbone names below (never by table positions); :func:`smallest_gain` gives δ, :func:`judge` the verdict."""

from __future__ import annotations

from dataclasses import dataclass

from vfcross.config import CE_ONLY, FULL_MODEL, NO_FUSION, OPL_ONLY, TABLE6_VARIANTS
from vfcross.evaluation.intervals import Decision
from vfcross.reporting.reported import paper
from vfcross.reporting.verdicts import Claim, Verdict, decide

SINGLE_BACKBONE = "single-stream backbone"
DUAL_BACKBONE = "dual-stream backbone"
#: Equivalence margin of "single stream ≈ dual stream", in AUC (fraction): 2 points.
EQUIVALENCE_MARGIN = 0.02
#: Why 2 points: the smallest gap the paper's comparisons treat as one (DIMNet apart, level with its method).
MARGIN_REASON = "2 AUC points: Table 2's peers sit 1.9-4.0 points below the paper's method"


@dataclass(frozen=True)
class PaperClaim:
    """A claim of the paper, where it is made, and the test of it."""

    key: str
    statement: str
    source: str
    claim: Claim


def paper_claims(margin: float = EQUIVALENCE_MARGIN) -> list[PaperClaim]:
    """The paper's claims tested on every run (all on verification AUC, random negatives)."""
    return [
        PaperClaim("single_vs_dual", "one shared network is as good as two modality-specific ones, at half the "
                   "parameters", "the method's premise (single vs dual stream)",
                   Claim(SINGLE_BACKBONE, DUAL_BACKBONE, "AUC", margin=margin)),
        PaperClaim("fusion_over_backbone", "fusion + FOP improves on the single-stream embedding alone",
                   "Table 6 / method", Claim(FULL_MODEL, SINGLE_BACKBONE, "AUC")),
        *[PaperClaim(f"full_over_{i}", f"the full model beats '{variant}'", "Table 6",
                     Claim(FULL_MODEL, variant, "AUC"))
          for i, variant in enumerate((NO_FUSION, CE_ONLY, OPL_ONLY))],
        PaperClaim("ce_over_no_fusion", f"'{CE_ONLY}' beats '{NO_FUSION}'", "Table 6 order",
                   Claim(CE_ONLY, NO_FUSION, "AUC")),
        PaperClaim("no_fusion_over_opl", f"'{NO_FUSION}' beats '{OPL_ONLY}'", "Table 6 order",
                   Claim(NO_FUSION, OPL_ONLY, "AUC")),
    ]


def smallest_gain(claim: PaperClaim) -> tuple[float, str]:
    """δ of a claim and why: the gain Table 6 reports for its two rows, else :data:`EQUIVALENCE_MARGIN` (an
    equivalence claim's δ is its margin)."""
    a, b = claim.claim.a, claim.claim.b
    if claim.claim.margin is None and a in TABLE6_VARIANTS and b in TABLE6_VARIANTS:
        ours, theirs = paper("table6", a)["AUC"], paper("table6", b)["AUC"]
        if ours > theirs:
            return (ours - theirs) / 100, f"the gain Table 6 reports, {ours} vs {theirs}"
    return claim.claim.margin or EQUIVALENCE_MARGIN, MARGIN_REASON


def judge(claim: PaperClaim, decision: Decision) -> Verdict:
    """The verdict of one claim from its decision (:func:`~vfcross.evaluation.intervals.paired_decision`, AUC)."""
    return decide(claim.claim, decision, *smallest_gain(claim))


def verdict_record(claim: PaperClaim, verdict: Verdict) -> dict:
    """What ``summary.json`` keeps of a verdict: the claim, where the paper makes it, the outcome and evidence."""
    return {"key": claim.key, "statement": claim.statement, "source": claim.source, **verdict.as_dict()}
