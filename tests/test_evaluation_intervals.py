"""Identity-level intervals, paired differences and a claim's decision, against brute force that materialises
every resample."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vfcross.evaluation.evaluate import list_contrasts, score_seeds
from vfcross.evaluation.intervals import (Decision, cluster_values, identity_draws, paired_decision, paired_interval,
                                          percentiles, seed_decision, seed_summary, weighted_mean)
from vfcross.evaluation.protocols import generated_protocols
from vfcross.metrics import eer, roc_auc
from vfcross.scores import ListScore

IDENTITIES = np.array(["a", "b", "c", "d", "e", "f"])


def verification_case(seed=0, n=60):
    """Pairs over six identities (each pair its voice's), tied scores of two systems, labels."""
    rng = np.random.default_rng(seed)
    voice = rng.choice(IDENTITIES, n)
    labels = rng.integers(0, 2, n)
    return voice, np.round(rng.normal(size=n) + labels, 1), np.round(rng.normal(size=n) + 0.5 * labels, 1), labels


def replayed(statistic, clusters, n_boot, seed, *arrays):
    """The statistic on each resample with its drawn identities' units materialised by hand (NaN where undefined)."""
    universe, rng, values = np.unique(clusters), np.random.default_rng(seed), []
    for _ in range(n_boot):
        drawn = universe[rng.integers(0, len(universe), len(universe))]
        rows = np.concatenate([np.flatnonzero(clusters == identity) for identity in drawn])
        try:
            values.append(statistic(*(a[rows] for a in arrays)))
        except ValueError:
            values.append(np.nan)
    return np.array(values)


@pytest.mark.parametrize("metric", ["auc", "eer"])
def test_list_replicates_equal_materialised_resamples(metric):
    voice, scores, _, labels = verification_case()
    expected = replayed({"auc": roc_auc, "eer": eer}[metric], voice, 150, 4, scores, labels)
    got = ListScore.of(scores, labels, voice).replicates(metric, identity_draws(6, 150, 4))
    np.testing.assert_allclose(got, expected, atol=1e-12, equal_nan=True)
    assert np.isfinite(got).mean() > 0.5  # the comparison is not vacuous


def test_weighted_statistics_equal_materialised_resamples():
    voice, scores, _, _ = verification_case(seed=1)
    np.testing.assert_allclose(cluster_values(weighted_mean, voice, scores, n_boot=100, seed=2),
                               replayed(np.mean, voice, 100, 2, scores), atol=1e-12)


def test_identity_draws_replay_the_documented_generator():
    draws = identity_draws(6, 20, seed=9)
    rng = np.random.default_rng(9)
    expected = [np.bincount(rng.integers(0, 6, 6), minlength=6) for _ in range(20)]
    np.testing.assert_array_equal(draws, expected)


def test_paired_interval_is_the_interval_of_per_resample_differences():
    voice, score_a, score_b, labels = verification_case(seed=3, n=300)
    a, b = ListScore.of(score_a, labels, voice), ListScore.of(score_b, labels, voice)
    values_a = replayed(roc_auc, voice, 400, 8, score_a, labels)
    values_b = replayed(roc_auc, voice, 400, 8, score_b, labels)
    paired = paired_interval(a, b, "auc", n_boot=400, seed=8)
    assert paired["difference"] == pytest.approx(roc_auc(score_a, labels) - roc_auc(score_b, labels))
    assert paired["ci"] == pytest.approx(list(np.percentile(values_a - values_b, [2.5, 97.5])))
    assert paired["a_ci"] == pytest.approx(list(np.percentile(values_a, [2.5, 97.5])))
    assert (paired["failures"], paired["identities"], paired["n_boot"]) == (0, 6, 400)


def test_paired_interval_is_narrower_than_either_when_systems_share_the_identity_effect():
    rng = np.random.default_rng(0)
    voice, labels = rng.integers(0, 40, 4000), rng.integers(0, 2, 4000)
    hardness = rng.normal(size=40)[voice]  # what the test identities do to every system alike
    score_a = labels + hardness * (2 * labels - 1) + 0.3 * rng.normal(size=4000)
    score_b = score_a + 0.3 * rng.normal(size=4000)
    paired = paired_interval(ListScore.of(score_a, labels, voice), ListScore.of(score_b, labels, voice), "auc", 300, 0)
    widths = [ci[1] - ci[0] for ci in (paired["ci"], paired["a_ci"], paired["b_ci"])]
    assert widths[0] < 0.5 * min(widths[1:])


def test_identity_intervals_are_wider_than_pair_intervals_when_identities_matter():
    rng = np.random.default_rng(1)
    voice, labels = rng.integers(0, 30, 3000), rng.integers(0, 2, 3000)
    scores = labels + rng.normal(size=30)[voice] * (2 * labels - 1) + 0.5 * rng.normal(size=3000)
    identity = percentiles(ListScore.of(scores, labels, voice).replicates("auc", identity_draws(30, 300, 0)))
    rows = [rng.integers(0, 3000, 3000) for _ in range(300)]  # the pair bootstrap, written out
    pairs = np.percentile([roc_auc(scores[r], labels[r]) for r in rows], [2.5, 97.5])
    assert identity[1] - identity[0] > 2 * (pairs[1] - pairs[0])


def test_undefined_resamples_are_skipped_up_to_five_percent():
    values, clusters = np.arange(30.0), np.arange(30)

    def fails_when_first_identity_drawn(times):
        def statistic(x, sample_weight=None):
            if sample_weight is not None and sample_weight[0] >= times:
                raise ValueError("undefined")
            return weighted_mean(x, sample_weight)
        return statistic

    draws = identity_draws(30, 400, seed=0)
    assert 0 < (draws[:, 0] >= 4).sum() <= 20  # about 2% of resamples
    kept = [weighted_mean(values, w) for w in draws if w[0] < 4]
    rare = cluster_values(fails_when_first_identity_drawn(4), clusters, values, n_boot=400, seed=0)
    assert percentiles(rare) == pytest.approx(tuple(np.percentile(kept, [2.5, 97.5])))
    with pytest.raises(ValueError, match="more than 5%"):
        percentiles(cluster_values(fails_when_first_identity_drawn(2), clusters, values, n_boot=400, seed=0))


def test_weighted_mean():
    assert weighted_mean(np.array([1.0, 3.0]), np.array([3, 1])) == pytest.approx(1.5)
    assert weighted_mean(np.array([1.0, 3.0])) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="total weight is 0"):
        weighted_mean(np.array([1.0, 3.0]), np.array([0, 0]))
    with pytest.raises(ValueError, match="NaN"):
        weighted_mean(np.array([1.0, np.nan]))


def test_bad_inputs_are_rejected():
    voice, scores, _, labels = verification_case()
    with pytest.raises(ValueError, match="one row per unit"):
        cluster_values(weighted_mean, voice[:-1], scores)
    with pytest.raises(ValueError, match="non-empty"):
        cluster_values(weighted_mean, np.array([]), np.array([]))
    with pytest.raises(ValueError, match="among the given identities"):
        cluster_values(weighted_mean, voice, scores, identities=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="n_boot"):
        identity_draws(6, 0, 0)


# --- a claim's decision -------------------------------------------------------------------------------


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
    assert decision.identities_for(decision.mde(0.95) / 2, 0.95) == 400  # one seed: half the MDE, 4x identities
    spread = Decision(0.0, 0.01, 0.006, 0.0138, df=1e9, identities=100, per_seed=tuple(_seeds([0.0] * 3)))
    assert spread.identities_for(0.005, 0.95) is None  # the seed part alone is wider: more seeds needed


def test_a_decision_without_enough_defined_resamples_has_no_interval():
    reps = _replicates()[:, None].copy()
    reps[:40] = np.nan
    decision = seed_decision(_seeds([0.02]), reps, identities=60)
    assert decision.interval(0.95) is None and decision.mde(0.95) is None and "40 of 400" in decision.note
    with pytest.raises(ValueError, match="replicates must be"):
        seed_decision(_seeds([0.0, 0.0]), reps, identities=60)


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


# --- systems scored over seeds ------------------------------------------------------------------------


def _table(n=12, per=3):
    rows = [(f"id{i:02d}", m, "test", "m" if i % 2 else "f") for i in range(n) for m in ("voice", "face")
            for _ in range(per)]
    return pd.DataFrame(rows, columns=["identity", "modality", "split", "gender"]).astype({"split": "string"})


def _vectors(table, noise, seed):
    """Unit vectors: an identity direction plus noise; larger noise = a worse system."""
    rng = np.random.default_rng(seed)
    ids = {i: rng.normal(size=16) for i in table.identity.unique()}
    v = np.stack([ids[i] for i in table.identity]) + noise * rng.normal(size=(len(table), 16))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _systems(table):
    return {"good": {s: _vectors(table, 0.8, 10 + s) for s in (0, 1, 2)},
            "poor": {s: _vectors(table, 3.0, 20 + s) for s in (0, 1, 2)},
            "reference": {0: _vectors(table, 1.5, 30)}}


@pytest.fixture
def scored():
    table = _table()
    return score_seeds(_systems(table), table, "random", n_pairs=400, seed=0)


def test_every_system_is_scored_on_the_same_pairs(scored):
    from vfcross.evaluation.protocols import verification_pairs

    table = _table()
    pairs = verification_pairs(table, "random", 400, 0, "test")
    for name, runs in _systems(table).items():
        assert scored.seeds[name] == sorted(runs)
        for seed, score in zip(scored.seeds[name], scored.scores[name]):
            v = runs[seed]
            np.testing.assert_array_equal(score.arrays[1], pairs.labels)
            np.testing.assert_allclose(score.arrays[0], np.einsum("ij,ij->i", v[pairs.voice], v[pairs.face]))
    np.testing.assert_array_equal(scored.identities, np.unique(table.identity))


def _replayed_seeds(scored, statistic, n_boot=200, seed=3):
    """``statistic(rows, labels)`` on each identity draw with its pairs materialised (brute force)."""
    first = scored.scores["good"][0]
    clusters, labels = first.identities[first.arrays[2]], first.arrays[1]
    values = replayed(lambda rows, lab: statistic(rows.astype(int), lab), clusters, n_boot, seed,
                      np.arange(len(labels)), labels)
    return values[~np.isnan(values)]


def test_seed_summary_interval_counts_identities_and_the_seed_spread(scored):
    """A system's interval is a claim's: mean ± t·sqrt(SE²(identities) + SD²(seeds)/S), Satterthwaite df."""
    summary = seed_summary(scored, "good", "auc", n_boot=200, seed=3)
    runs = scored.scores["good"]
    per_seed = [s.auc for s in runs]
    mean, sd = np.mean(per_seed), np.std(per_seed, ddof=1)
    assert summary["mean"] == pytest.approx(mean) and summary["sd"] == pytest.approx(sd)
    values = _replayed_seeds(scored, lambda rows, labels: np.mean([roc_auc(s.arrays[0][rows], labels) for s in runs]))
    id_var, seed_var = np.var(values, ddof=1), sd ** 2 / 3
    df = (id_var + seed_var) ** 2 / (id_var ** 2 / 11 + seed_var ** 2 / 2)  # 12 identities, 3 seeds
    half = stats.t.ppf(0.975, df) * np.sqrt(id_var + seed_var)
    assert summary["ci"] == pytest.approx([mean - half, mean + half])


def test_paired_decision_is_the_seed_mean_of_paired_differences_on_shared_identity_draws(scored):
    decision = paired_decision(scored, "good", "poor", "auc", n_boot=200, seed=3)
    pairs = list(zip(scored.scores["good"], scored.scores["poor"]))
    per_seed = [a.auc - b.auc for a, b in pairs]
    assert [p["seed"] for p in decision.per_seed] == [0, 1, 2]
    assert [p["difference"] for p in decision.per_seed] == pytest.approx(per_seed)
    assert decision.seed_sd == pytest.approx(np.std(per_seed, ddof=1)) and decision.identities == 12
    means = _replayed_seeds(scored, lambda rows, labels: np.mean([
        roc_auc(a.arrays[0][rows], labels) - roc_auc(b.arrays[0][rows], labels) for a, b in pairs]))
    assert decision.se_identities == pytest.approx(np.std(means, ddof=1))
    assert decision.interval(0.95)[0] > 0  # a clearly better system
    against_reference = paired_decision(scored, "good", "reference", "auc", n_boot=50)
    assert [p["seed"] for p in against_reference.per_seed] == [0, 1, 2]
    assert len({p["b"] for p in against_reference.per_seed}) == 1  # the one reference model each time


def test_systems_without_a_common_seed_cannot_be_paired():
    table = _table()
    scored = score_seeds({"a": {0: _vectors(table, 1, 0), 1: _vectors(table, 1, 1)},
                          "b": {2: _vectors(table, 1, 2), 3: _vectors(table, 1, 3)}}, table, n_pairs=100)
    with pytest.raises(ValueError, match="share no training seed"):
        paired_decision(scored, "a", "b")
    with pytest.raises(ValueError, match="at least one trained seed"):
        score_seeds({"a": {}}, table)


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


def _val_embeddings(noise, seed):
    """Embeddings of 8 val identities x (2 faces + 2 voices) whose quality is set by ``noise``."""
    from vfcross.backbone.embedding import Embeddings

    table = _table(8, 2).assign(split="val").astype({"split": "string"})
    rng = np.random.default_rng(seed)
    ids = {i: rng.normal(size=512) for i in table.identity.unique()}
    v = np.stack([ids[i] for i in table.identity]) + noise * rng.normal(size=(len(table), 512))
    return Embeddings(table, (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32), f"s{seed}", "0" * 64)


def _all_pairs_auc(vectors, table):
    """Brute force: every voice-face pair, cosine score, label = same identity."""
    voices, faces = np.flatnonzero(table.modality == "voice"), np.flatnonzero(table.modality == "face")
    scores = [vectors[v] @ vectors[f] for v in voices for f in faces]
    labels = [int(table.identity[v] == table.identity[f]) for v in voices for f in faces]
    return roc_auc(np.array(scores), np.array(labels))


def test_each_fusion_seed_is_compared_with_the_backbone_seed_it_sits_on():
    """Fusion seed s against backbone seed s: a good backbone 0 and a useless backbone 1 give different b's."""
    import torch

    from vfcross.config import EvalConfig
    from vfcross.fusion.model import FusionModel
    from vfcross.fusion.task import project
    from vfcross.workflows.compare import compare_on_split

    embeddings = {0: _val_embeddings(0.5, 1), 1: _val_embeddings(100.0, 2)}
    models = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        models[seed] = FusionModel(num_classes=3, dim=16, fusion="gated").eval()
    check = compare_on_split(models, embeddings, "val", EvalConfig(n_boot=50))
    table = embeddings[0].table
    for row in check.rows:
        seed = row["seed"]
        assert row["b"] == pytest.approx(_all_pairs_auc(embeddings[seed].vectors, table))
        assert row["a"] == pytest.approx(_all_pairs_auc(project(models[seed], embeddings[seed].vectors, table), table))
    assert [r["seed"] for r in check.rows] == [0, 1] and check.rows[0]["b"] > 0.9 > check.rows[1]["b"]
    other = _val_embeddings(0.5, 3)
    with pytest.raises(ValueError, match="other rows"):
        compare_on_split(models, {0: embeddings[0], 1: type(other)(other.table.iloc[::-1], other.vectors, "x", "0")},
                         "val", EvalConfig(n_boot=50))
