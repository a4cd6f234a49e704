"""The paper's claims: their systems are the configured names, and verdicts come from every seed's paired interval."""

import pytest

from vfcross.config import FULL_MODEL, TABLE6_VARIANTS
from vfcross.reporting.claims import DUAL_BACKBONE, SINGLE_BACKBONE, judge, paper_claims, verdict_record


def test_every_claim_names_systems_that_notebook_05_trains():
    known = set(TABLE6_VARIANTS) | {SINGLE_BACKBONE, DUAL_BACKBONE}
    claims = paper_claims()
    assert all(c.claim.a in known and c.claim.b in known for c in claims)
    assert len({c.key for c in claims}) == len(claims)
    # the full model is compared with every other Table 6 row
    assert {c.claim.b for c in claims if c.claim.a == FULL_MODEL} >= set(TABLE6_VARIANTS) - {FULL_MODEL}
    equivalence = [c for c in claims if c.claim.margin is not None]
    assert [(c.claim.a, c.claim.b) for c in equivalence] == [(SINGLE_BACKBONE, DUAL_BACKBONE)]


def _claim(key):
    return next(c for c in paper_claims() if c.key == key)


@pytest.mark.parametrize("intervals, outcome", [
    ([(0.03, [0.01, 0.05]), (0.02, [0.005, 0.04])], "holds"),
    ([(-0.03, [-0.05, -0.01]), (-0.02, [-0.04, -0.005])], "contradicted"),
    ([(0.03, [0.01, 0.05]), (0.01, [-0.01, 0.03])], "inconclusive"),  # would flip between seeds
    ([(0.03, [0.01, 0.05]), (0.03, None)], "inconclusive"),  # a seed without an interval decides nothing
])
def test_superiority_verdict_needs_every_seed(intervals, outcome):
    paired = [{"seed": s, "difference": d, "ci": ci} for s, (d, ci) in enumerate(intervals)]
    verdict = judge(_claim("fusion_over_backbone"), paired, identities=60)
    assert verdict.outcome == outcome
    record = verdict_record(_claim("fusion_over_backbone"), verdict)
    assert record["verdict"] == outcome and record["seeds"] == [0, 1] and "60 test identities" in record["explanation"]


def test_equivalence_verdict_uses_the_margin():
    claim = _claim("single_vs_dual")
    assert judge(claim, [{"seed": 0, "difference": 0.005, "ci": [-0.015, 0.018]}]).outcome == "holds"
    assert judge(claim, [{"seed": 0, "difference": 0.005, "ci": [-0.03, 0.018]}]).outcome == "inconclusive"
    assert judge(claim, [{"seed": 0, "difference": -0.05, "ci": [-0.07, -0.03]}]).outcome == "contradicted"
