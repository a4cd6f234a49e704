"""Attribute probes: identity-disjoint, so memorising identities cannot pass for knowing an attribute."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from vfcross.config import VoiceConfig
from vfcross.evaluation.features import voice_input_features
from vfcross.evaluation.probes import _outer, probe_attributes, probe_category, probe_trait


def _identities(n_ids=40, per=5):
    return np.repeat(np.arange(n_ids), per)


def test_folds_never_split_an_identity_and_a_fit_split_scores_only_the_others():
    groups = _identities()
    splits = _outer(groups, 5, seed=0, fit=None)
    assert sorted(np.concatenate([test for _, test in splits])) == list(range(len(groups)))
    for train, test in splits:
        assert set(groups[train]).isdisjoint(groups[test]) and len(train) + len(test) == len(groups)
    fit = groups < 10
    (train, test), = _outer(groups, 5, seed=0, fit=fit)
    assert set(groups[train]) == set(range(10)) and set(groups[test]) == set(range(10, 40))


def test_a_feature_carrying_the_attribute_is_read_and_chance_is_the_majority_rate():
    rng = np.random.default_rng(0)
    groups = _identities()
    attribute = np.where(np.arange(40) % 4 == 0, "a", "b")[groups]  # 25% a, 75% b
    x = np.c_[(attribute == "a") + 0.1 * rng.normal(size=len(groups)), rng.normal(size=(len(groups), 5))]
    accuracy, chance = probe_category(x, attribute, groups)
    assert accuracy == pytest.approx(1.0) and chance == pytest.approx(0.75)


def test_memorised_identities_do_not_count_as_knowing_an_attribute():
    rng = np.random.default_rng(1)
    groups = _identities()
    attribute = rng.choice(["a", "b"], 40)[groups]  # unrelated to anything but the identity
    x = np.eye(40)[groups] + 0.01 * rng.normal(size=(len(groups), 40))  # identity one-hot: perfect memory
    accuracy, chance = probe_category(x, attribute, groups)
    assert accuracy <= chance + 0.1  # no better than guessing the majority on unseen identities


def test_trait_probe_r2_near_one_for_a_linear_trait_and_near_zero_for_noise():
    rng = np.random.default_rng(2)
    groups = _identities()
    trait = rng.normal(size=40)[groups]
    x = np.c_[2 * trait + 0.05 * rng.normal(size=len(groups)), rng.normal(size=(len(groups), 3))]
    assert probe_trait(x, trait, groups) > 0.95
    assert probe_trait(rng.normal(size=(len(groups), 4)), trait, groups) < 0.1


def test_probe_attributes_skips_what_cannot_be_probed_and_leaves_na_out():
    rng = np.random.default_rng(3)
    groups = _identities()
    attrs = pd.DataFrame({"gender": np.where(np.arange(40) % 2, "m", "f")[groups],
                          "nationality": ["X"] * len(groups),  # one class: nothing to probe
                          "age": [None if i < 50 else "old" if i % 2 else "young" for i in range(len(groups))],
                          "build": rng.normal(size=40)[groups]})
    x = np.c_[attrs["gender"] == "m", rng.normal(size=(len(groups), 3))].astype(float)
    found = {r["attribute"]: r for r in probe_attributes(x, attrs, groups)}
    assert set(found) == {"gender", "age", "build"}
    assert found["gender"]["score"] == pytest.approx(1.0) and found["gender"]["metric"] == "accuracy"
    assert found["age"]["samples"] == len(groups) - 50 and found["build"]["metric"] == "r2"
    with pytest.raises(ValueError, match="one row per sample"):
        probe_attributes(x[:-1], attrs, groups)


def test_voice_input_features_read_the_pitch_of_a_tone(tmp_path):
    cfg = VoiceConfig()
    t = np.arange(cfg.sample_rate * 2) / cfg.sample_rate
    paths = []
    for f0 in (110.0, 220.0):
        path = tmp_path / f"{f0:.0f}.wav"
        sf.write(path, 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(4 * np.pi * f0 * t), cfg.sample_rate)
        paths.append(str(path))
    features = voice_input_features(paths, cfg)
    assert features.shape == (2, 48)
    assert np.exp(features[:, 0]) == pytest.approx([110.0, 220.0], rel=0.03)  # median F0
