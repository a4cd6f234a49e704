"""Verdicts from one decision interval: every branch of superiority (with δ) and equivalence (90%, TOST)."""

import json

import pytest
from scipy import stats

from vfcross.evaluation.intervals import Decision
from vfcross.reporting.verdicts import CONTRADICTED, HOLDS, INCONCLUSIVE, Claim, decide

AUC = Claim("full model", "fusion + CE", "AUC")  # higher is better
EER = Claim("full model", "fusion + CE", "EER", higher_is_better=False)
SAME = Claim("single stream", "dual stream", "AUC", margin=0.02)
DF = 40.0


def decision(low, high, level=0.95, seeds=3, identities=60):
    """A hand-made decision whose ``level`` interval is exactly [low, high] (t with DF degrees of freedom)."""
    se = (high - low) / 2 / stats.t.ppf(0.5 + level / 2, DF)
    per_seed = tuple({"seed": s, "difference": (low + high) / 2} for s in range(seeds))
    return Decision((low + high) / 2, se, se, 0.004 if seeds > 1 else None, DF, identities, per_seed)


@pytest.mark.parametrize(
    "claim, ci, level, outcome",
    [
        (AUC, (0.001, 0.03), 0.95, HOLDS),  # above 0
        (AUC, (0.003, 0.015), 0.95, HOLDS),  # above 0, but below δ: holds, and says no gain of 2 points
        (AUC, (-0.04, -0.002), 0.95, CONTRADICTED),  # below 0
        (AUC, (-0.01, 0.03), 0.95, INCONCLUSIVE),  # straddles 0 and reaches δ = 2 points
        (AUC, (-0.01, 0.015), 0.95, CONTRADICTED),  # straddles 0 but no gain of 2 points is left
        (EER, (-0.03, -0.001), 0.95, HOLDS),  # lower EER is better
        (EER, (-0.015, 0.01), 0.95, CONTRADICTED),  # an EER gain of at most 1.5 points < δ
        (EER, (-0.03, 0.01), 0.95, INCONCLUSIVE),
        (SAME, (-0.018, 0.018), 0.90, HOLDS),  # 90% inside ±2 (its 95% interval is not)
        (SAME, (0.02, 0.05), 0.90, CONTRADICTED),  # wholly beyond +margin
        (SAME, (-0.06, -0.025), 0.90, CONTRADICTED),
        (SAME, (-0.01, 0.03), 0.90, INCONCLUSIVE),  # crosses +margin
        (SAME, (-0.03, 0.03), 0.90, INCONCLUSIVE),  # wider than the equivalence region
    ],
)
def test_outcome_of_each_branch(claim, ci, level, outcome):
    verdict = decide(claim, decision(*ci, level), delta=0.02, reason="two points")
    assert verdict.outcome == outcome
    assert verdict.ci == pytest.approx(ci) and verdict.claim.level == level
    below_delta = ci[1] < 0.02 and claim is AUC
    assert ("no gain of ≥ 2.0 points" in verdict.explanation) == \
        ((outcome == CONTRADICTED and ci[0] < 0 < ci[1]) or (outcome == HOLDS and below_delta))
    assert ("a gain, but no gain" in verdict.explanation) == (outcome == HOLDS and below_delta)


def test_equivalence_is_read_from_the_90_percent_interval():
    made = decision(-0.018, 0.018, level=0.90)
    assert made.interval(0.95)[1] > 0.02  # the 95% interval reaches past the margin: the old rule said inconclusive
    assert decide(SAME, made).outcome == HOLDS


def test_explanation_states_identities_seeds_delta_and_the_detectable_difference():
    verdict = decide(AUC, decision(-0.01, 0.03), delta=0.027, reason="the gain Table 6 reports")
    text = verdict.explanation
    expected_mde = (stats.t.ppf(0.975, DF) + stats.t.ppf(0.8, DF)) * verdict.decision.se
    assert verdict.mde == pytest.approx(expected_mde)
    for part in ("full model better than fusion + CE on AUC", "+1.0 points", "95% CI [-1.0, +3.0]",
                 "60 test identities", "3 seeds, seed SD 0.4 points", f"detects (80% power) {100 * expected_mde:.1f}",
                 "δ = 2.7 points (the gain Table 6 reports)", "test identities would reach 2.7", "inconclusive",
                 "half-width 2.00 points, above the goal of 1.5"):
        assert part in text, (part, text)
    assert "half-width 1.52 points, above the goal of 1.5" in decide(AUC, decision(0.01, 0.0404)).explanation
    record = json.loads(json.dumps(verdict.as_dict()))
    assert record["verdict"] == INCONCLUSIVE and record["identities"] == 60 and record["seeds"] == [0, 1, 2]
    assert record["margin"] == 0.027 and record["mde"] == pytest.approx(expected_mde)


def test_one_seed_says_its_spread_was_not_measured():
    verdict = decide(SAME, decision(-0.01, 0.01, level=0.90, seeds=1))
    assert verdict.outcome == HOLDS and "seed spread not measured: 1 seed" in verdict.explanation
    assert "smallest margin it could show" in verdict.explanation


def test_no_interval_is_inconclusive():
    empty = Decision(0.2, None, None, None, 59, 60, ({"seed": 0, "difference": 0.2},), note="too few identities")
    verdict = decide(AUC, empty, delta=0.02)
    assert verdict.outcome == INCONCLUSIVE and verdict.ci is None and "too few identities" in verdict.explanation


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="margin"):
        Claim("a", "b", "AUC", margin=-0.01)
    with pytest.raises(ValueError, match="smallest gain"):
        decide(AUC, decision(0.0, 0.1), delta=0.0)


def test_figure_rows_draw_the_decision_interval_then_each_seed_in_points():
    superiority = decide(AUC, decision(0.001, 0.03), delta=0.02)
    interval, *seeds = superiority.figure_rows()
    assert interval == {"label": "full model − fusion + CE", "estimate": pytest.approx(1.55), "low": pytest.approx(0.1),
                        "high": pytest.approx(3.0), "verdict": HOLDS, "margin": None, "delta": pytest.approx(2.0)}
    assert [(r["seed"], r["estimate"], r["low"]) for r in seeds] == [(s, pytest.approx(1.55), None) for s in range(3)]
    equivalence, *_ = decide(SAME, decision(-0.018, 0.018, level=0.90)).figure_rows()
    assert equivalence["margin"] == pytest.approx(2.0) and equivalence["delta"] is None
