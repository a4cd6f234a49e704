"""One decision interval per claim: identities resampled plus the seed spread, the MDE, paired list contrasts."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vfcross.evaluation.decision import Decision, list_contrasts, seed_decision
from vfcross.evaluation.registry import generated_protocols


def _replicates(n_boot=400, seed=0):
    """One seed's identity-bootstrap replicates of a difference (SD 0.01 around 0.02)."""
    return np.random.default_rng(seed).normal(0.02, 0.01, n_boot)


def _seeds(differences):
    return [{"seed": s, "difference": d} for s, d in enumerate(differences)]


def test_seeds_without_spread_reduce_to_the_identity_bootstrap():
    reps = _replicates()
    alone = seed_decision(_seeds([0.02]), reps[:, None], identities=60)
    same = seed_decision(_seeds([0.02] * 3), np.repeat(reps[:, None], 3, axis=1), identities=60)
    se = np.std(reps, ddof=1)
    assert alone.seed_sd is None and same.seed_sd == 0.0  # one seed: not measured; three equal seeds: zero
    for decision in (alone, same):
        assert decision.se == pytest.approx(se) and decision.df == pytest.approx(59)
        assert decision.interval(0.95) == pytest.approx((0.02 - stats.t.ppf(0.975, 59) * se,
                                                         0.02 + stats.t.ppf(0.975, 59) * se))


def test_seed_spread_widens_the_interval_with_satterthwaite_degrees_of_freedom():
    reps = np.repeat(_replicates()[:, None], 3, axis=1)
    spread = seed_decision(_seeds([0.0, 0.02, 0.04]), reps + [-0.02, 0.0, 0.02], identities=60)
    identity_var, seed_var = np.var(reps[:, 0], ddof=1), 0.02 ** 2 / 3
    assert spread.difference == pytest.approx(0.02) and spread.seed_sd == pytest.approx(0.02)
    assert spread.se == pytest.approx(np.sqrt(identity_var + seed_var))
    df = (identity_var + seed_var) ** 2 / (identity_var ** 2 / 59 + seed_var ** 2 / 2)
    assert spread.df == pytest.approx(df) and 2 < spread.df < 59
    narrow = seed_decision(_seeds([0.02] * 3), reps, identities=60).interval(0.95)
    low, high = spread.interval(0.95)
    assert high - low > 1.5 * (narrow[1] - narrow[0])


def test_mde_is_the_sum_of_quantiles_times_the_standard_error():
    decision = Decision(0.0, 0.01, 0.01, None, df=1e9, identities=100, per_seed=tuple(_seeds([0.0])))
    assert decision.mde(0.95) == pytest.approx((1.95996 + 0.84162) * 0.01, rel=1e-4)
    assert decision.mde(0.90, equivalence=True) == pytest.approx((1.64485 + 1.28155) * 0.01, rel=1e-4)
    # one seed: the variance is all identities', so half the MDE needs four times the identities
    assert decision.identities_for(decision.mde(0.95) / 2, 0.95) == 400
    spread = Decision(0.0, 0.01, 0.006, 0.0138, df=1e9, identities=100, per_seed=tuple(_seeds([0.0] * 3)))
    assert spread.identities_for(0.005, 0.95) is None  # the seed part alone is wider: more seeds needed


def test_a_decision_without_enough_defined_resamples_has_no_interval():
    reps = _replicates()[:, None].copy()
    reps[:40] = np.nan
    decision = seed_decision(_seeds([0.02]), reps, identities=60)
    assert decision.interval(0.95) is None and decision.mde(0.95) is None and "40 of 400" in decision.note
    with pytest.raises(ValueError, match="replicates must be"):
        seed_decision(_seeds([0.0, 0.0]), reps, identities=60)


def test_list_contrast_pairs_the_two_lists_on_the_same_identity_draws():
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        [(f"id{i:02d}", m, "test", "mf"[i % 2], f"n{i % 3}", f"a{i % 2}") for i in range(30) for m in ("voice", "face")
         for _ in range(2)], columns=["identity", "modality", "split", "gender", "nationality", "age"])
    direction = {i: rng.normal(size=8) for i in table.identity.unique()}
    vectors = np.stack([direction[i] for i in table.identity]) + 0.8 * rng.normal(size=(len(table), 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    protocols = generated_protocols(table, 0, 2000, split="test", kinds=("verification",))
    same = list_contrasts(vectors, table, protocols, lists=("random",), n_boot=200)["random"]
    assert same["difference"] == 0 and same["ci"] == [0, 0]  # a list against itself: nothing varies
    contrast = list_contrasts(vectors, table, protocols, lists=("N",), n_boot=200)["N"]
    assert contrast["identities"] == 30 and contrast["ci"][0] <= contrast["difference"] <= contrast["ci"][1]
    assert contrast["ci"][0] <= contrast["ci_90"][0] <= contrast["ci_90"][1] <= contrast["ci"][1]


def test_seeds_for_a_half_width_is_the_fewest_that_reach_it_by_brute_force():
    """Identity SE 0.5 points, seed SD 2 points at 300 identities: the first S whose t·SE is ≤ 1.5 points."""
    decision = Decision(0.0, 0.01, 0.005, 0.02, df=3.0, identities=300, per_seed=tuple(_seeds([0.0] * 3)))

    def half(s):
        parts = [(0.005 ** 2, 299), (0.02 ** 2 / s, s - 1)]
        total = sum(v for v, _ in parts)
        return stats.t.ppf(0.975, total ** 2 / sum(v * v / df for v, df in parts)) * np.sqrt(total)

    needed = decision.seeds_for(0.015, 0.95)
    assert half(needed) <= 0.015 < half(needed - 1) and needed == 14
    assert Decision(0.0, 0.01, 0.01, None, 299.0, 300, tuple(_seeds([0.0]))).seeds_for(0.015, 0.95) is None
    assert Decision(0.0, 0.01, 0.01, 0.02, 3.0, 300, tuple(_seeds([0.0] * 3))).seeds_for(0.015, 0.95) is None
