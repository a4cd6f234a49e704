"""Verdicts from paired intervals: every branch of superiority, equivalence and the seed rule."""

import json

import pytest

from vfcross.reporting.verdicts import (
    CONTRADICTED,
    HOLDS,
    INCONCLUSIVE,
    Claim,
    decide,
    decide_across_seeds,
)

AUC = Claim("full model", "fusion + CE", "AUC")  # higher is better
EER = Claim("full model", "fusion + CE", "EER", higher_is_better=False)
SAME = Claim("single stream", "dual stream", "AUC", margin=0.02)


@pytest.mark.parametrize(
    "claim, ci, expected",
    [
        (AUC, (0.001, 0.03), HOLDS),  # entirely above 0
        (AUC, (-0.04, -0.002), CONTRADICTED),  # entirely below 0
        (AUC, (-0.01, 0.03), INCONCLUSIVE),  # straddles 0
        (AUC, (0.0, 0.03), INCONCLUSIVE),  # touches 0: not entirely on the claimed side
        (EER, (-0.03, -0.001), HOLDS),  # lower EER is better
        (EER, (0.002, 0.04), CONTRADICTED),
        (EER, (-0.02, 0.01), INCONCLUSIVE),
        (SAME, (-0.015, 0.019), HOLDS),  # inside (-2, 2) points
        (SAME, (0.02, 0.05), CONTRADICTED),  # at or beyond +margin
        (SAME, (-0.06, -0.025), CONTRADICTED),  # beyond -margin
        (SAME, (-0.01, 0.03), INCONCLUSIVE),  # crosses +margin
        (SAME, (-0.03, 0.03), INCONCLUSIVE),  # wider than the equivalence region
        (SAME, (-0.019, 0.02), INCONCLUSIVE),  # touches the margin: not inside the open region
    ],
)
def test_outcome_of_each_branch(claim, ci, expected):
    verdict = decide(claim, (ci[0] + ci[1]) / 2, ci)
    assert verdict.outcome == expected
    assert verdict.explanation.endswith(f": {expected}")


def test_equivalence_ignores_the_metrics_direction():
    ci = (-0.01, 0.015)
    assert decide(SAME, 0.0, ci).outcome == decide(Claim("a", "b", "EER", False, 0.02), 0.0, ci).outcome == HOLDS


def test_explanation_says_what_was_compared():
    verdict = decide(SAME, 0.008, (-0.012, 0.029), identities=60, seed=3)
    text = verdict.explanation
    for part in ("single stream ≈ dual stream on AUC", "±2.0 points", "+0.8 points", "95% CI [-1.2, +2.9]",
                 "60 test identities", "seed 3", "inconclusive"):
        assert part in text, (part, text)
    assert "better than" in decide(AUC, 0.01, (0.005, 0.02)).explanation
    assert json.loads(json.dumps(verdict.as_dict()))["verdict"] == INCONCLUSIVE


def test_no_interval_is_inconclusive():
    verdict = decide(AUC, 0.2, None)
    assert verdict.outcome == INCONCLUSIVE and "no identity-level interval" in verdict.explanation


def test_seeds_agreeing_keep_their_verdict():
    verdict = decide_across_seeds(AUC, [(0.02, (0.01, 0.03)), (0.015, (0.004, 0.027)), (0.03, (0.02, 0.04))],
                                  seeds=[0, 1, 2], identities=60)
    assert verdict.outcome == HOLDS and verdict.seeds == (0, 1, 2)
    assert [v.outcome for v in verdict.per_seed] == [HOLDS] * 3
    assert verdict.difference == pytest.approx(0.065 / 3) and verdict.ci is None
    assert "every seed agrees" in verdict.explanation and "3 training seeds" in verdict.explanation


def test_a_verdict_that_flips_between_seeds_is_inconclusive():
    flipping = [(0.02, (0.01, 0.03)), (-0.02, (-0.03, -0.01))]  # holds with one seed, contradicted with the other
    verdict = decide_across_seeds(AUC, flipping, seeds=[7, 8])
    assert verdict.outcome == INCONCLUSIVE
    assert [v.outcome for v in verdict.per_seed] == [HOLDS, CONTRADICTED]
    assert "seed 7" in verdict.explanation and "the seeds disagree" in verdict.explanation
    partly = decide_across_seeds(SAME, [(0.0, (-0.01, 0.01)), (0.01, (-0.01, 0.03))])
    assert partly.outcome == INCONCLUSIVE and partly.seeds == (0, 1)
    assert decide_across_seeds(EER, [(0.01, (0.005, 0.02))]).outcome == CONTRADICTED  # one seed: its verdict


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="margin"):
        Claim("a", "b", "AUC", margin=-0.01)
    with pytest.raises(ValueError, match="low <= high"):
        decide(AUC, 0.0, (0.02, -0.02))
    with pytest.raises(ValueError, match="finite"):
        decide(AUC, float("nan"), (0.0, 0.1))
    with pytest.raises(ValueError, match="at least one"):
        decide_across_seeds(AUC, [])
    with pytest.raises(ValueError, match="one per interval"):
        decide_across_seeds(AUC, [(0.0, (0.0, 0.1))], seeds=[1, 2])
