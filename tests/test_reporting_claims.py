"""The paper's claims: their systems are the configured names, and verdicts come from one decision interval and δ."""

import importlib.util
import sys
from statistics import NormalDist

import pytest

from vfcross import config
from vfcross.config import CE_ONLY, FULL_MODEL, NO_FUSION, OPL_ONLY, TABLE6_VARIANTS
from vfcross.reporting import claims as claims_module
from vfcross.evaluation.intervals import Decision
from vfcross.reporting.claims import (
    DUAL_BACKBONE,
    EQUIVALENCE_MARGIN,
    MARGIN_REASON,
    SINGLE_BACKBONE,
    judge,
    paper_claims,
    smallest_gain,
    verdict_record,
)

#: What each claim compares (a, b), by the systems' names: the paper's Table 6 and its premise.
COMPARED = {
    "single_vs_dual": (SINGLE_BACKBONE, DUAL_BACKBONE),
    "fusion_over_backbone": ("full model (fusion + CE + OPL)", SINGLE_BACKBONE),
    "full_over_0": ("full model (fusion + CE + OPL)", "single stream + FOP loss, no fusion"),
    "full_over_1": ("full model (fusion + CE + OPL)", "+ fusion, CE only"),
    "full_over_2": ("full model (fusion + CE + OPL)", "+ fusion, OPL (cosine) only"),
    "ce_over_no_fusion": ("+ fusion, CE only", "single stream + FOP loss, no fusion"),
    "no_fusion_over_opl": ("single stream + FOP loss, no fusion", "+ fusion, OPL (cosine) only"),
}


def test_each_claim_compares_the_systems_it_names():
    claims = paper_claims()
    assert {c.key: (c.claim.a, c.claim.b) for c in claims} == COMPARED
    # each name is the variant it says it is, whatever the order of Table 6's rows
    assert TABLE6_VARIANTS[FULL_MODEL] == {"fusion": "gated", "loss": "ce+opl"}
    assert TABLE6_VARIANTS[NO_FUSION] == {"fusion": "none", "loss": "ce+opl"}
    assert TABLE6_VARIANTS[CE_ONLY] == {"fusion": "gated", "loss": "ce"}
    assert TABLE6_VARIANTS[OPL_ONLY] == {"fusion": "gated", "loss": "opl"}
    equivalence = [c for c in claims if c.claim.margin is not None]
    assert [(c.claim.a, c.claim.b) for c in equivalence] == [(SINGLE_BACKBONE, DUAL_BACKBONE)]


def test_reordering_table6_changes_no_claim(monkeypatch):
    """A fresh copy of reporting/claims.py, built while Table 6's rows are in reverse order, compares the same systems."""
    monkeypatch.setattr(config, "TABLE6_VARIANTS", dict(reversed(list(TABLE6_VARIANTS.items()))))
    spec = importlib.util.spec_from_file_location("claims_of_reordered_table6", claims_module.__file__)
    fresh = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, fresh)
    spec.loader.exec_module(fresh)
    assert {c.key: (c.claim.a, c.claim.b) for c in fresh.paper_claims()} == COMPARED


def _claim(key):
    return next(c for c in paper_claims() if c.key == key)


def _decision(low, high, level=0.95, seeds=3):
    """A hand-made decision whose ``level`` interval is [low, high] (normal quantiles: a huge df)."""
    se = (high - low) / 2 / NormalDist().inv_cdf(0.5 + level / 2)
    return Decision((low + high) / 2, se, se, 0.005 if seeds > 1 else None, 1e9, 60,
                    tuple({"seed": s, "difference": (low + high) / 2} for s in range(seeds)))


def test_delta_is_the_gain_table_6_reports_for_its_rows_else_two_points():
    assert smallest_gain(_claim("full_over_1")) == (pytest.approx(0.009), "the gain Table 6 reports, 82.5 vs 81.6")
    assert smallest_gain(_claim("fusion_over_backbone")) == (0.02, MARGIN_REASON)  # no backbone row in Table 6
    assert smallest_gain(_claim("single_vs_dual"))[0] == EQUIVALENCE_MARGIN
    # the same interval: no gain of the 0.9 points Table 6 reports for CE only, but 2.7 over no fusion is still open
    small = _decision(-0.005, 0.008)
    assert judge(_claim("full_over_1"), small).outcome == "contradicted"
    assert "no gain of ≥ 0.9 points" in judge(_claim("full_over_1"), small).explanation
    assert judge(_claim("full_over_0"), small).outcome == "contradicted"  # 0.8 < 2.7 as well
    assert judge(_claim("full_over_0"), _decision(-0.005, 0.03)).outcome == "inconclusive"
    record = verdict_record(_claim("full_over_0"), judge(_claim("full_over_0"), _decision(0.001, 0.03)))
    assert record["verdict"] == "holds" and record["margin"] == pytest.approx(0.027) and record["seeds"] == [0, 1, 2]


def test_equivalence_verdict_uses_the_margin_on_the_90_percent_interval():
    claim = _claim("single_vs_dual")
    assert judge(claim, _decision(-0.019, 0.019, level=0.90, seeds=1)).outcome == "holds"
    assert judge(claim, _decision(-0.03, 0.018, level=0.90, seeds=1)).outcome == "inconclusive"
    assert judge(claim, _decision(-0.07, -0.03, level=0.90, seeds=1)).outcome == "contradicted"
