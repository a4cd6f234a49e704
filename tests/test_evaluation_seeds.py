"""Systems with several training seeds on the same pairs: seed spread, identity-level intervals, the paired decision."""

import numpy as np
from scipy import stats
import pandas as pd
import pytest

from vfcross.evaluation.bootstrap import identity_draws
from vfcross.metrics import roc_auc
from vfcross.evaluation.protocols import verification_pairs
from vfcross.evaluation.seeds import paired_decision, score_seeds, seed_summary


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
    """Every seed's scores are the cosines of ONE drawn list's (voice, face) rows, recomputed by hand."""
    table = _table()
    pairs = verification_pairs(table, "random", 400, 0, "test")
    np.testing.assert_array_equal(scored.labels, pairs.labels)
    np.testing.assert_array_equal(scored.clusters, table.identity.to_numpy(str)[pairs.voice])
    for name, runs in _systems(table).items():
        assert scored.seeds[name] == sorted(runs)
        for seed, scores in zip(scored.seeds[name], scored.scores[name]):
            v = runs[seed]
            np.testing.assert_allclose(scores, np.einsum("ij,ij->i", v[pairs.voice], v[pairs.face]), atol=1e-12)


def _replayed(scored, statistic, n_boot=200, seed=3):
    """``statistic(rows, labels)`` on each identity draw of the bootstrap, its pairs materialised (brute force)."""
    identities = np.unique(scored.clusters)
    values = []
    for counts in identity_draws(len(identities), n_boot, seed):
        rows = np.concatenate([np.repeat(np.flatnonzero(scored.clusters == ident), c)
                               for ident, c in zip(identities, counts)])
        labels = scored.labels[rows]
        if labels.any() and not labels.all():
            values.append(statistic(rows, labels))
    return values


def test_seed_summary_interval_counts_identities_and_the_seed_spread(scored):
    """A system's interval is a claim's: mean ± t·sqrt(SE²(identities) + SD²(seeds)/S), Satterthwaite df."""
    summary = seed_summary(scored, "good", "auc", n_boot=200, seed=3)
    per_seed = [roc_auc(s, scored.labels) for s in scored.scores["good"]]
    assert summary["per_seed"] == pytest.approx(dict(zip([0, 1, 2], per_seed)))
    mean, sd = np.mean(per_seed), np.std(per_seed, ddof=1)
    assert summary["mean"] == pytest.approx(mean) and summary["sd"] == pytest.approx(sd)
    # brute force: replay the same identity draws, materialise the drawn identities' pairs, average the seeds
    values = _replayed(scored, lambda rows, labels: np.mean([roc_auc(s[rows], labels) for s in scored.scores["good"]]))
    id_var, seed_var = np.var(values, ddof=1), sd ** 2 / 3
    df = (id_var + seed_var) ** 2 / (id_var ** 2 / 11 + seed_var ** 2 / 2)  # 12 identities, 3 seeds
    half = stats.t.ppf(0.975, df) * np.sqrt(id_var + seed_var)
    assert summary["ci"] == pytest.approx([mean - half, mean + half])
    assert summary["ci"][1] - summary["ci"][0] > 2 * 1.96 * np.sqrt(id_var)  # wider than the identity part alone


def test_paired_decision_is_the_seed_mean_of_paired_differences_on_shared_identity_draws(scored):
    decision = paired_decision(scored, "good", "poor", "auc", n_boot=200, seed=3)
    per_seed = [roc_auc(a, scored.labels) - roc_auc(b, scored.labels)
                for a, b in zip(scored.scores["good"], scored.scores["poor"])]
    assert [p["seed"] for p in decision.per_seed] == [0, 1, 2]
    assert [p["difference"] for p in decision.per_seed] == pytest.approx(per_seed)
    assert decision.difference == pytest.approx(np.mean(per_seed))
    assert decision.seed_sd == pytest.approx(np.std(per_seed, ddof=1)) and decision.identities == 12
    # brute force: replay the identity draws, materialise the drawn pairs, average the seeds' paired differences
    means = _replayed(scored, lambda rows, labels: np.mean([
        roc_auc(a[rows], labels) - roc_auc(b[rows], labels)
        for a, b in zip(scored.scores["good"], scored.scores["poor"])]))
    assert decision.se_identities == pytest.approx(np.std(means, ddof=1))
    assert decision.se == pytest.approx(np.sqrt(np.std(means, ddof=1) ** 2 + decision.seed_sd ** 2 / 3))
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

    from vfcross.workflows.compare import compare_on_split
    from vfcross.fusion.model import FusionModel
    from vfcross.fusion.task import project

    embeddings = {0: _val_embeddings(0.5, 1), 1: _val_embeddings(100.0, 2)}
    models = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        models[seed] = FusionModel(num_classes=3, dim=16, fusion="gated").eval()
    check = compare_on_split(models, embeddings, "val", type("E", (), {"n_pairs": 0, "seed": 0, "n_boot": 50})())
    table = embeddings[0].table
    for row in check.rows:
        seed = row["seed"]
        assert row["b"] == pytest.approx(_all_pairs_auc(embeddings[seed].vectors, table))
        assert row["a"] == pytest.approx(_all_pairs_auc(project(models[seed], embeddings[seed].vectors, table), table))
    assert [r["seed"] for r in check.rows] == [0, 1] and check.rows[0]["b"] > 0.9 > check.rows[1]["b"]
    other = _val_embeddings(0.5, 3)
    with pytest.raises(ValueError, match="other rows"):
        compare_on_split(models, {0: embeddings[0], 1: type(other)(other.table.iloc[::-1], other.vectors, "x", "0")},
                         "val", type("E", (), {"n_pairs": 0, "seed": 0, "n_boot": 50})())
