"""The paper's claims that this package tests, and their verdicts from paired, identity-level intervals.

Each claim names two systems measured on the same test pairs (a and b), a
metric and, for "a is as good as b", an equivalence margin. Its verdict is
"holds", "contradicted" or "inconclusive", decided by
:func:`vfcross.reporting.verdicts.decide_across_seeds` on the paired
differences a - b of every training seed (:func:`vfcross.evaluation.seeds.paired_by_seed`):
a verdict that differs between two seeds is "inconclusive". The names of
the systems are the Table 6 variant names of the configuration and the two
backbone names below, so renaming a variant cannot silently drop its claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vfcross.config import FULL_MODEL, TABLE6_VARIANTS
from vfcross.reporting.verdicts import Claim, Verdict, decide_across_seeds

SINGLE_BACKBONE = "single-stream backbone"
DUAL_BACKBONE = "dual-stream backbone"
#: Equivalence margin of "single stream ≈ dual stream", in AUC (fraction): 2 points.
EQUIVALENCE_MARGIN = 0.02

_NO_FUSION, _CE_ONLY, _OPL_ONLY = (v for v in TABLE6_VARIANTS if v != FULL_MODEL)


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
          for i, variant in enumerate((_NO_FUSION, _CE_ONLY, _OPL_ONLY))],
        PaperClaim("ce_over_no_fusion", f"'{_CE_ONLY}' beats '{_NO_FUSION}'", "Table 6 order",
                   Claim(_CE_ONLY, _NO_FUSION, "AUC")),
        PaperClaim("no_fusion_over_opl", f"'{_NO_FUSION}' beats '{_OPL_ONLY}'", "Table 6 order",
                   Claim(_NO_FUSION, _OPL_ONLY, "AUC")),
    ]


def judge(claim: PaperClaim, paired: Sequence[Mapping], identities: int | None = None) -> Verdict:
    """The verdict of one claim from its per-seed paired differences (``paired_by_seed`` entries, AUC)."""
    return decide_across_seeds(claim.claim, [(p["difference"], p["ci"]) for p in paired],
                               seeds=[p["seed"] for p in paired], identities=identities)


def verdict_record(claim: PaperClaim, verdict: Verdict) -> dict:
    """What ``summary.json`` keeps of a verdict: the claim, where the paper makes it, the outcome and evidence."""
    return {"key": claim.key, "statement": claim.statement, "source": claim.source, **verdict.as_dict()}
