"""Verification lists scored block by block equal the simple in-memory computation, ties and block sizes included."""

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from vfcross import scores as S
from vfcross.backbone.embedding import all_pairs_auc
from vfcross.evaluation.intervals import identity_draws
from vfcross.evaluation.protocols import verification_pairs
from vfcross.metrics import eer, roc_auc


def _table(seed=0, m=12):
    """Identities with 1-4 voices and faces, attributes for the restrictions, shuffled rows; integer vectors, so
    every cosine is exact in any summation order and ties are frequent."""
    rng = np.random.default_rng(seed)
    rows = [dict(identity=f"id{i:02d}", modality=modality, split="test", gender="mf"[i % 2],
                 nationality=f"n{i % 3}", age=f"a{i % 2}")
            for i in range(m) for modality in ("voice", "face") for _ in range(rng.integers(1, 5))]
    table = pd.DataFrame(rows).sample(frac=1, random_state=seed).reset_index(drop=True)
    return table, rng.integers(-2, 3, (len(table), 6)).astype(np.float64)


def _streamed_memory(pairs):
    """A budget below the list's pairs (so it streams) that its positives still fit."""
    return pairs.counts()[0] / 1e7 * 1.001


@pytest.mark.parametrize("block", [None, 1, 10 ** 9])
@pytest.mark.parametrize("restriction", ["random", "G", "N"])
def test_streamed_lists_equal_the_simple_computation(monkeypatch, restriction, block):
    """AUC, EER and the AUC's identity replicates bit for bit; the binned EER replicates within their bound."""
    if block is not None:
        monkeypatch.setattr(S, "block_pairs", lambda memory_gb: block)
    for seed in range(4):
        table, vectors = _table(seed)
        pairs = verification_pairs(table, restriction, 0, 0, "test")
        listed = pairs.explicit()
        scores = listed.scores(vectors)
        exact, streamed = listed.score(table, vectors), pairs.score(table, vectors, memory_gb=_streamed_memory(pairs))
        assert streamed.arrays is None and exact.arrays is not None  # the two paths were taken
        assert streamed.auc == exact.auc == roc_auc(scores, listed.labels)
        assert streamed.eer == exact.eer == eer(scores, listed.labels)
        np.testing.assert_array_equal(streamed.pairs, exact.pairs)
        draws = identity_draws(len(exact.identities), 200, seed)
        np.testing.assert_array_equal(streamed.replicates("auc", draws), exact.replicates("auc", draws))
        binned, precise = streamed.replicates("eer", draws), exact.replicates("eer", draws)
        assert np.nanmax(np.abs(binned - precise)) <= streamed.eer_bound + 1e-12


def test_identity_replicates_equal_the_metrics_with_sample_weights():
    """A resample's AUC and EER are the plain metrics with each pair counted as often as its identity is drawn."""
    rng = np.random.default_rng(3)
    clusters = rng.integers(0, 40, 3000)
    labels = rng.integers(0, 2, 3000)
    scores = np.round(rng.normal(size=3000) + labels, 1)  # ties within and across classes
    score = S.ListScore.of(scores, labels, clusters)
    draws = identity_draws(40, 30, 0)
    for metric, function in (("auc", roc_auc), ("eer", eer)):
        expected = [function(scores, labels, sample_weight=w[clusters]) for w in draws]
        np.testing.assert_allclose(score.replicates(metric, draws), expected, atol=1e-12)
    assert score.auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_sampled_pairs_are_drawn_without_building_every_pair():
    """The sample is the list's pairs at ordinals drawn by rng.choice among positives and negatives, as the
    every-pair list draws them (half positive where each class has enough)."""
    table, _ = _table(1, m=20)
    pairs = verification_pairs(table, "random", 0, 0, "test")
    listed = pairs.explicit()
    rng = np.random.default_rng(7)
    positives, negatives = np.flatnonzero(listed.labels == 1), np.flatnonzero(listed.labels == 0)
    n_negative = min(60 - min(30, len(positives)), len(negatives))
    keep = np.sort(np.r_[rng.choice(positives, 60 - n_negative, replace=False),
                         rng.choice(negatives, n_negative, replace=False)])
    sample = verification_pairs(table, "random", 60, 7, "test")
    np.testing.assert_array_equal(sample.voice, listed.voice[keep])
    np.testing.assert_array_equal(sample.face, listed.face[keep])
    assert sample.labels.sum() == 30 and sample.drawn_from == len(pairs) and "60 of" in sample.sampling


def test_every_pair_is_listed_once_with_the_right_label():
    table, _ = _table(2)
    listed = verification_pairs(table, "G", 0, 0, "test").explicit()
    identity, gender = table.identity.to_numpy(), table.gender.to_numpy()
    found = set(zip(listed.voice.tolist(), listed.face.tolist()))
    expected = {(v, f) for v in np.flatnonzero(table.modality == "voice") for f in np.flatnonzero(table.modality == "face")
                if gender[v] == gender[f]}
    assert found == expected and len(found) == len(listed)
    np.testing.assert_array_equal(listed.labels, identity[listed.voice] == identity[listed.face])


def test_the_validation_auc_streams_exactly_and_matches_sklearn():
    table, vectors = _table(4, m=30)  # integer vectors: every score exact, ties broken nowhere
    is_voice = (table.modality == "voice").to_numpy()
    same = table.identity.to_numpy()[is_voice][:, None] == table.identity.to_numpy()[~is_voice][None, :]
    expected = roc_auc_score(same.ravel(), (vectors[is_voice] @ vectors[~is_voice].T).ravel())
    assert all_pairs_auc(vectors, table) == pytest.approx(expected, abs=1e-12)
    assert all_pairs_auc(vectors, table, memory_gb=same.sum() / 1e7 * 1.001) == pytest.approx(expected, abs=1e-12)


def test_streaming_memory_does_not_grow_with_the_pairs():
    """7.2 million pairs within a 20 MB budget, where holding their scores alone would take 58 MB."""
    rng = np.random.default_rng(0)
    m, voices, faces = 60, 20, 100
    table = pd.DataFrame({"identity": np.repeat([f"id{i:02d}" for i in range(m)], voices + faces),
                          "modality": np.tile(["voice"] * voices + ["face"] * faces, m), "split": "test"})
    vectors = rng.integers(-3, 4, (len(table), 8)).astype(np.float64)
    pairs = verification_pairs(table, "random", 0, 0, "test")
    assert len(pairs) == (m * voices) * (m * faces) > S.exact_pairs(0.02)
    tracemalloc.start()
    streamed = pairs.score(table, vectors, memory_gb=0.02)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert streamed.arrays is None and peak < 20e6
    is_voice = (table.modality == "voice").to_numpy()
    same = table.identity.to_numpy()[is_voice][:, None] == table.identity.to_numpy()[~is_voice][None, :]
    scores = (vectors[is_voice] @ vectors[~is_voice].T).ravel()
    assert streamed.auc == roc_auc(scores, same.ravel().astype(int))
    assert streamed.eer == eer(scores, same.ravel().astype(int))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="both positive and negative"):
        S.ListScore.of(np.array([0.1, 0.2]), np.array([1, 1]), np.array(["a", "b"]))
    with pytest.raises(ValueError, match="one identity"):
        S.ListScore.of(np.array([0.1, 0.2]), np.array([1, 0]), np.array(["a"]))
    with pytest.raises(ValueError, match="not among the given identities"):
        S.ListScore.of(np.array([0.1, 0.2]), np.array([1, 0]), np.array(["a", "c"]), identities=np.array(["a", "b"]))
    table, vectors = _table(0)
    pairs = verification_pairs(table, "random", 0, 0, "test")
    with pytest.raises(ValueError, match="positive pairs do not fit"):
        pairs.score(table, vectors, memory_gb=1e-9)
