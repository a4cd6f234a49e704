"""Evaluation protocols (generated and official) and the evaluator, on synthetic and real tables."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from fakes import make_table, unit_vectors

from vfcross.config import EvalConfig
from vfcross.data.protocol_files import manifest_rows, read_matching_list, read_retrieval_gallery, read_verification_list
from vfcross.data.voxceleb import scan_dataset
from vfcross.evaluation.evaluate import compare, evaluate
from vfcross.evaluation.intervals import cluster_values, paired_interval, percentiles, weighted_mean
from vfcross.evaluation.protocols import (RESTRICTIONS, MatchingTrials, matching_trials, official_protocols,
                                          read_official_lists, retrieval_task, split_identities, verification_pairs)
from vfcross.metrics import chance_mean_average_precision, eer, matching_credits, roc_auc
from vfcross.scores import AllPairs





@pytest.fixture(scope="module")
def table():
    return make_table()


def column(table, name, rows):
    return table[name].to_numpy(dtype=object)[rows]




# --- verification ---------------------------------------------------------------------------------


def quiet_pairs(table, restriction, n_pairs=600, seed=0, **kwargs):
    """Verification pairs with the NA-exclusion warning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return verification_pairs(table, restriction, n_pairs, seed, **kwargs)


def every_eligible_pair(table, restriction):
    """Brute force: every (voice row, face row) of the test split that the restriction allows, as a set."""
    attributes = list(RESTRICTIONS[restriction])
    test = table[table["split"].eq("test") & table[attributes].notna().all(axis=1)]
    test = test[test.groupby("identity")["modality"].transform("nunique") == 2]
    voices, faces = test[test["modality"] == "voice"], test[test["modality"] == "face"]
    return {(v, f) for v, a in zip(voices.index, voices.to_dict("records")) for f, b in zip(faces.index,
            faces.to_dict("records")) if a["identity"] == b["identity"] or all(a[k] == b[k] for k in attributes)}


@pytest.mark.parametrize("restriction", list(RESTRICTIONS))
def test_verification_scores_every_eligible_pair_exactly_once(table, restriction):
    every = quiet_pairs(table, restriction, n_pairs=0)
    assert isinstance(every, AllPairs) and every.name == restriction and every.sampling == ""
    pairs = every.explicit()
    assert len(pairs) == len(every) == sum(every.counts()) and every.counts()[0] == pairs.labels.sum()
    drawn = list(zip(pairs.voice.tolist(), pairs.face.tolist()))
    assert len(drawn) == len(set(drawn))  # no pair twice
    assert set(drawn) == every_eligible_pair(table, restriction)  # ... and none missing or out of the restriction
    assert (column(table, "modality", pairs.voice) == "voice").all()
    assert (column(table, "modality", pairs.face) == "face").all()
    same = column(table, "identity", pairs.voice) == column(table, "identity", pairs.face)
    np.testing.assert_array_equal(same, pairs.labels == 1)


@pytest.mark.parametrize("restriction", ["random", "G"])
def test_sampled_pairs_are_distinct_balanced_and_labelled(table, restriction):
    every = quiet_pairs(table, restriction, n_pairs=0).explicit()
    pairs = quiet_pairs(table, restriction, n_pairs=200)
    drawn = list(zip(pairs.voice.tolist(), pairs.face.tolist()))
    assert len(pairs) == 200 and pairs.labels.sum() == 100 and len(set(drawn)) == 200  # without replacement
    assert set(drawn) <= set(zip(every.voice.tolist(), every.face.tolist()))
    assert pairs.sampling == f"sampled 200 of {len(every):,} pairs without replacement"
    assert len(quiet_pairs(table, restriction, n_pairs=len(every))) == len(every)  # as many as exist: all of them


@pytest.mark.parametrize("restriction", ["A", "GNA"])
def test_missing_attribute_excludes_rows_with_a_warning(table, restriction):
    with pytest.warns(UserWarning, match=r"\(2 identities\) have no .*age.* and are excluded"):
        pairs = verification_pairs(table, restriction, 400, seed=0)
    used = set(column(table, "identity", np.r_[pairs.voice, pairs.face]))
    assert not used & {"id003", "id017"}


def test_random_restriction_needs_no_attributes(table):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pairs = verification_pairs(table, "random", 400, seed=0)
    assert {"id003", "id017"} <= set(column(table, "identity", pairs.voice))


def test_verification_pairs_are_deterministic(table):
    first, again, other = (quiet_pairs(table, "G", seed=s) for s in (1, 1, 2))
    for name in ("voice", "face", "labels"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.voice, other.voice)


def test_verification_rejects_impossible_requests(table):
    with pytest.raises(ValueError, match="restriction"):
        verification_pairs(table, "X", 10, seed=0)
    with pytest.raises(ValueError, match="n_pairs must be 0"):
        verification_pairs(table, "random", -2, seed=0)
    with pytest.raises(ValueError, match="split == 'val'"):
        verification_pairs(table, "random", 10, seed=0, split="val")
    lonely = make_table(n_test=3, n_train=0, missing_age=())  # nationalities USA, USA, UK; genders m, f, m
    with pytest.raises(ValueError, match="no negative pair exists"):
        verification_pairs(lonely, "GNA", 10, seed=0)
    assert len(verification_pairs(lonely, "N", 10, seed=0)) == 10  # id000 and id001 share USA


# --- matching -----------------------------------------------------------------------------------


@pytest.mark.parametrize("direction, probe_modality, candidate_modality", [("v2f", "voice", "face"), ("f2v", "face", "voice")])
def test_matching_trials_are_nested_and_well_formed(table, direction, probe_modality, candidate_modality):
    trials = matching_trials(table, direction, n_trials=300, seed=0, max_n=10)
    assert isinstance(trials, MatchingTrials) and trials.candidates.shape == (300, 10)
    assert (column(table, "modality", trials.probes) == probe_modality).all()
    assert (column(table, "modality", trials.candidates) == candidate_modality).all()
    assert (column(table, "split", trials.candidates) == "test").all()
    probe_ids = column(table, "identity", trials.probes)
    candidate_ids = column(table, "identity", trials.candidates)
    assert (candidate_ids[:, 0] == probe_ids).all()
    assert all(len(set(row)) == 10 for row in candidate_ids)  # distinct identities, none the probe's


def test_matching_trials_are_deterministic_and_checked(table):
    first, again = (matching_trials(table, "v2f", 50, seed=4) for _ in range(2))
    np.testing.assert_array_equal(first.candidates, again.candidates)
    with pytest.raises(ValueError, match="need 31 identities"):
        matching_trials(table, "v2f", 50, seed=0, max_n=31)
    with pytest.raises(ValueError, match="direction"):
        matching_trials(table, "v2v", 50, seed=0)


# --- retrieval and scoring ---------------------------------------------------------------------


def test_retrieval_task_covers_every_sample_of_the_split(table):
    test = table["split"] == "test"
    voices = np.flatnonzero(test & (table["modality"] == "voice"))
    faces = np.flatnonzero(test & (table["modality"] == "face"))
    v2f, f2v = retrieval_task(table, "v2f"), retrieval_task(table, "f2v")
    np.testing.assert_array_equal(v2f.queries, voices)
    np.testing.assert_array_equal(v2f.gallery, faces)
    np.testing.assert_array_equal(f2v.queries, faces)
    np.testing.assert_array_equal(f2v.gallery, voices)


def test_scoring_helpers_are_cosines_of_row_vectors(table):
    vectors = unit_vectors(np.random.default_rng(0), len(table))
    pairs = quiet_pairs(table, "random", n_pairs=20)
    expected = [vectors[v] @ vectors[f] for v, f in zip(pairs.voice, pairs.face)]
    np.testing.assert_allclose(pairs.scores(vectors, chunk=3), expected)
    trials = matching_trials(table, "f2v", 30, seed=0, max_n=4)
    expected = np.einsum("td,tnd->tn", vectors[trials.probes], vectors[trials.candidates])
    np.testing.assert_allclose(trials.similarities(vectors, chunk=7), expected)


# --- evaluator ----------------------------------------------------------------------------------


def identity_vectors(table, noise, seed=0):
    """Unit vectors of each row's identity direction plus noise: informative across modalities."""
    rng = np.random.default_rng(seed)
    codes = pd.factorize(table["identity"])[0]
    centres = rng.normal(size=(codes.max() + 1, 16))
    vectors = centres[codes] + noise * rng.normal(size=(len(table), 16))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def quiet_evaluate(vectors, table, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evaluate(vectors, table, EvalConfig(n_pairs=400, n_trials=200, n_boot=50, **kwargs))


def test_evaluate_returns_json_ready_fractions(table):
    result = quiet_evaluate(unit_vectors(np.random.default_rng(1), len(table)), table)
    assert json.loads(json.dumps(result)) == result
    assert set(result["matching_vf"]) == set(result["matching_fv"]) == {str(n) for n in range(2, 11)}
    assert set(result["grouped_auc"]) == {"G", "N", "A", "GNA"}
    assert result["verification"]["pairs"] == 400 and len(result["roc"]["fpr"]) <= 200
    numbers = [result["verification"][k] for k in ("eer", "auc")]
    numbers += [entry["auc"] for entry in result["grouped_auc"].values()]
    numbers += [entry["accuracy"] for key in ("matching_vf", "matching_fv") for entry in result[key].values()]
    numbers += [entry["map"] for entry in result["map"].values()]
    assert all(0 <= x <= 1 for x in numbers)
    assert abs(result["verification"]["auc"] - 0.5) < 0.1  # random vectors: chance
    assert abs(result["matching_vf"]["2"]["accuracy"] - 0.5) < 0.12
    assert result["map"]["vf"]["queries"] == ((table["split"] == "test") & (table["modality"] == "voice")).sum()
    assert result == quiet_evaluate(unit_vectors(np.random.default_rng(1), len(table)), table)


def test_evaluate_sees_an_informative_embedding(table):
    result = quiet_evaluate(identity_vectors(table, noise=0.3), table)
    low, high = result["verification"]["auc_ci"]
    assert result["verification"]["auc"] > 0.95 and low <= result["verification"]["auc"] <= high
    assert result["verification"]["eer"] < 0.1
    assert result["matching_vf"]["10"]["accuracy"] > 0.8 and result["map"]["fv"]["map"] > 0.8


def test_evaluate_intervals_are_identity_level(table):
    vectors = identity_vectors(table, noise=1.5)
    result = quiet_evaluate(vectors, table, seed=3)
    assert result["settings"]["interval"] == "identity cluster bootstrap"
    assert result["settings"]["identities"] == len(split_identities(table))
    # verification: the same pairs, each belonging to its voice identity, resampled as the metric with weights
    identity = table["identity"].to_numpy(dtype=str)
    for restriction, key, metric in (("random", ("verification", "auc_ci"), roc_auc),
                                     ("random", ("verification", "eer_ci"), eer), ("G", ("grouped_auc", "G", "ci"), roc_auc)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            drawn = verification_pairs(table, restriction, 400, 3)
        values = cluster_values(metric, identity[drawn.voice], drawn.scores(vectors), drawn.labels, n_boot=50, seed=3)
        found = result
        for part in key:
            found = found[part]
        assert found == pytest.approx(list(percentiles(values)))
    # matching: trials belong to their probe identity
    trials = matching_trials(table, "v2f", 200, 3, 10)
    credits = matching_credits(trials.similarities(vectors)[:, :4])
    values = cluster_values(weighted_mean, identity[trials.probes], credits, n_boot=50, seed=3)
    assert result["matching_vf"]["4"]["ci"] == pytest.approx(list(percentiles(values)))


def test_evaluate_reports_the_chance_map_of_the_gallery(table):
    result = quiet_evaluate(unit_vectors(np.random.default_rng(1), len(table)), table)
    identity = table["identity"].to_numpy(dtype=str)
    for key, direction in (("vf", "v2f"), ("fv", "f2v")):
        task = retrieval_task(table, direction)
        assert result["map"][key]["chance"] == pytest.approx(
            chance_mean_average_precision(identity[task.queries], identity[task.gallery]))
        assert abs(result["map"][key]["map"] - result["map"][key]["chance"]) < 0.04  # random vectors: chance


def test_compare_gives_paired_differences_on_the_same_pairs(table):
    good, poor = identity_vectors(table, noise=0.8), identity_vectors(table, noise=2.0, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare(good, poor, table, EvalConfig(seed=2, n_pairs=400, n_boot=100))
        same = compare(good, good, table, EvalConfig(seed=2, n_pairs=400, n_boot=100))
        evaluated = evaluate(good, table, EvalConfig(seed=2, n_pairs=400, n_trials=50, n_boot=100))
    assert set(result["verification"]) == {"random", "G", "N", "A", "GNA"}
    assert result["settings"]["difference"] == "a - b"
    auc = result["verification"]["random"]["auc"]
    assert auc["a"] == pytest.approx(evaluated["verification"]["auc"])
    assert auc["a_ci"] == pytest.approx(evaluated["verification"]["auc_ci"])
    assert auc["difference"] > 0 and auc["ci"][0] > 0  # the better embedding wins, beyond the interval
    assert result["verification"]["random"]["eer"]["ci"][1] < 0  # ... with a lower EER
    assert result["verification"]["N"]["auc"]["a"] == pytest.approx(evaluated["grouped_auc"]["N"]["auc"])
    with pytest.warns(UserWarning, match="have no age"):
        drawn = verification_pairs(table, "A", 400, 2)
    expected = paired_interval(drawn.score(table, good), drawn.score(table, poor), "eer", 100, 2)
    assert result["verification"]["A"]["eer"] == expected
    zero = same["verification"]["random"]["auc"]
    assert zero["difference"] == 0 and zero["ci"] == [0, 0]
    assert json.loads(json.dumps(result)) == result


def test_evaluate_notes_what_the_data_cannot_support():
    small = make_table(n_test=5, n_train=0, missing_age=())
    result = quiet_evaluate(identity_vectors(small, noise=1.0), small)
    assert "note" in result["grouped_auc"]["GNA"] and "auc" in result["grouped_auc"]["G"]
    assert result["grouped_auc"]["N"]["ci"] is not None
    assert set(result["matching_vf"]) == {"2", "3", "4", "5"}
    assert any("N goes up to 5" in note for note in result["notes"])
    with pytest.raises(ValueError, match="L2-normalised"):
        evaluate(2 * identity_vectors(small, noise=1.0), small, EvalConfig())


def test_too_few_identities_for_an_interval_give_none_and_a_note():
    # six identities, two of which share a nationality: only they can anchor a negative of the N list, and
    # about 9% of the identity resamples draw neither, leaving no negative pair
    nationalities = ["USA", "USA", "UK", "India", "Italy", "Mexico"]
    tiny = pd.DataFrame([{"identity": f"id{i}", "modality": modality, "split": "test", "gender": "m",
                          "nationality": nationality, "age": "20s"}
                         for i, nationality in enumerate(nationalities) for modality in ("voice", "face")])
    vectors = identity_vectors(tiny, noise=1.0)
    result = evaluate(vectors, tiny, EvalConfig(n_pairs=200, n_trials=50, n_boot=200))
    assert result["grouped_auc"]["N"]["ci"] is None and result["grouped_auc"]["G"]["ci"] is not None
    assert any(note.startswith("grouped AUC N: no identity-level interval") for note in result["notes"])
    paired = compare(vectors, identity_vectors(tiny, noise=1.0, seed=1), tiny, EvalConfig(n_pairs=200, n_boot=200))
    assert "note" in paired["verification"]["N"]["auc"] and "difference" in paired["verification"]["random"]["auc"]
    assert any(note.startswith("verification N auc: no identity-level interval") for note in paired["notes"])


# --- official lists on the real mini set ---------------------------------------------------------


@pytest.fixture(scope="module")
def mini(shared_data):
    """(manifest of voxceleb1-mini with the official splits, the lists folder)."""
    lists = shared_data / "voxceleb1-lists"
    manifest, _ = scan_dataset(shared_data / "voxceleb1-mini", lists / "identity_splits.txt")
    return manifest, lists


def test_official_galleries_reach_the_metrics(mini):
    manifest, lists = mini
    voices = read_retrieval_gallery(lists / "wav_20k.csv", "voice", lists / "vox1_meta.csv")
    faces = read_retrieval_gallery(lists / "jpg_20k.csv", "face", lists / "vox1_meta.csv")
    in_mini = set(manifest["relpath"])
    voice_paths = [p for p in voices.paths[:, 0] if p in in_mini]
    face_paths = [p for p in faces.paths[:, 0] if p in in_mini]
    assert voice_paths and face_paths
    protocols = official_protocols(read_official_lists(lists), manifest)
    task = protocols.get(("map", "vf")).protocol
    np.testing.assert_array_equal(task.queries, manifest_rows(np.array(voice_paths), manifest))
    np.testing.assert_array_equal(task.gallery, manifest_rows(np.array(face_paths), manifest))
    voice_cov, face_cov = task.coverage  # the entries left out are recorded, query gallery first
    assert (voice_cov.name, voice_cov.rows, voice_cov.scored) == ("wav_20k.csv", len(voices), len(voice_paths))
    assert (face_cov.name, face_cov.rows, face_cov.scored) == ("jpg_20k.csv", len(faces), len(face_paths))
    absent = [i for i, p in enumerate(faces.paths[:, 0]) if p not in in_mini]
    np.testing.assert_array_equal(face_cov.missing_rows, absent)
    assert face_cov.missing_files[0] == (faces.paths[absent[0], 0],)
    assert [c.name for c in protocols.get(("map", "fv")).coverage] == ["jpg_20k.csv", "wav_20k.csv"]
    per_query = task.average_precisions(unit_vectors(np.random.default_rng(0), len(manifest)), manifest)
    assert per_query.shape == (len(voice_paths),) and not np.isnan(per_query).all()
    assert 0 < np.nanmean(per_query) <= 1  # NaN: queries whose identity has no face in the gallery


def test_official_verification_and_matching_lists_miss_the_mini_set(mini):
    """No row of these lists has all its files in the slice: nothing is scored, every row is recorded."""
    manifest, lists = mini
    protocols = official_protocols(read_official_lists(lists), manifest)
    vlist = read_verification_list(lists / "veriflist_test_G_unseenunheard.txt", lists / "vox1_meta.csv")
    pairs = protocols.verification("G").protocol
    assert len(pairs) == 0 and pairs.coverage[0].rows == len(vlist) and pairs.coverage[0].scored == 0
    in_mini = set(manifest["relpath"])
    assert pairs.coverage[0].missing_files[0] == tuple(p for p in vlist.paths[0] if p not in in_mini)
    mlist = read_matching_list(lists / "matching_v2f_U.csv", lists / "vox1_meta.csv")
    trials = protocols.get(("matching_vf",)).protocol
    assert len(trials) == 0 and trials.candidates.shape == (0, 2)
    c = trials.coverage[0]
    assert (c.name, c.rows, c.scored, len(c.missing_rows)) == ("matching_v2f_U.csv", len(mlist), 0, len(mlist))


def test_table6_falls_back_to_generated_pairs_when_the_official_list_cannot_be_scored(mini):
    """Notebook 05's rule (workflows.compare.ablation_pairs): the official random list where it has scorable rows."""
    from vfcross.config import override, preset
    from vfcross.workflows.compare import ablation_pairs

    manifest, lists = mini
    test = manifest[manifest["split"] == "test"]
    assert ablation_pairs(test, preset("smoke")) == (None, "")  # no official lists asked for
    pairs, why = ablation_pairs(test, override(preset("smoke"), {"eval.lists": str(lists)}))
    assert pairs is None and why.startswith("the official random list has no scorable rows here")
    assert why.endswith(f"use pairs generated on the {test.identity.nunique()} test identities instead")


def mini_paths(manifest, identity, modality):
    """Root-relative paths of one identity's samples of one modality in the mini set."""
    rows = manifest[(manifest["identity"] == identity) & (manifest["modality"] == modality)]
    return rows["relpath"].tolist()


def test_handwritten_lists_map_to_manifest_rows(mini, tmp_path):
    manifest, lists = mini
    (tmp_path / "vox1_meta.csv").write_bytes((lists / "vox1_meta.csv").read_bytes())
    brian_voice, asner_voice = mini_paths(manifest, "id10108", "voice")[0], mini_paths(manifest, "id10278", "voice")[0]
    brian_face, asner_face = mini_paths(manifest, "id10108", "face")[0], mini_paths(manifest, "id10278", "face")[0]

    def veriflist_voice(relpath, name):  # wav/<id>/<video>/<nnnnn>.wav -> <name>/<video>_<nnnnnnn>.wav
        _, _, video, clip = relpath.split("/")
        return f"{name}/{video}_{int(clip[:-4]):07d}.wav"

    def veriflist_face(relpath):  # unzippedFaces/<name>/1.6/<video>/<frame> -> <name>/<video>/<frame>
        _, name, _, video, frame = relpath.split("/")
        return f"{name}/{video}/{frame}"

    (tmp_path / "veriflist_test_G_unseenunheard.txt").write_text(
        "id,voice-speaker-id,face-speaker-id,label,voice-path,face-path\n"
        f"0,id10108,id10108,1,{veriflist_voice(brian_voice, 'Brian_Dennehy')},{veriflist_face(brian_face)}\n"
        f"1,id10108,id10278,0,{veriflist_voice(brian_voice, 'Brian_Dennehy')},{veriflist_face(asner_face)}\n"
        f"2,id10278,id10278,1,Edward_Asner/notthere_0000001.wav,{veriflist_face(asner_face)}\n"
    )
    official_face = lambda relpath: relpath.removeprefix("unzippedFaces/")  # noqa: E731
    (tmp_path / "matching_v2f_U.csv").write_text(
        f"{asner_voice.removeprefix('wav/')} {official_face(asner_face)} {official_face(brian_face)}\n"
        f"id10278/notthere/00001.wav {official_face(asner_face)} {official_face(brian_face)}\n"
    )
    protocols = official_protocols(read_official_lists(tmp_path), manifest)
    pairs = protocols.verification("G").protocol
    assert pairs.name == "G" and pairs.coverage[0].scored == 2
    np.testing.assert_array_equal(pairs.coverage[0].missing_rows, [2])
    assert pairs.coverage[0].missing_files == (("wav/id10278/notthere/00001.wav",),)
    np.testing.assert_array_equal(pairs.voice, manifest_rows(np.array([brian_voice] * 2), manifest))
    np.testing.assert_array_equal(pairs.face, manifest_rows(np.array([brian_face, asner_face]), manifest))
    np.testing.assert_array_equal(pairs.labels, [1, 0])
    assert pairs.scores(unit_vectors(np.random.default_rng(0), len(manifest))).shape == (2,)
    trials = protocols.get(("matching_vf",)).protocol
    assert trials.direction == "v2f" and len(trials.coverage[0].missing_rows) == 1
    np.testing.assert_array_equal(trials.probes, manifest_rows(np.array([asner_voice]), manifest))
    np.testing.assert_array_equal(trials.candidates, manifest_rows(np.array([[asner_face, brian_face]]), manifest))
    assert trials.similarities(unit_vectors(np.random.default_rng(0), len(manifest))).shape == (1, 2)
    assert protocols.verification("random").note.startswith("veriflist_test_random_unseenunheard.txt not found")


def test_split_identities_of_the_mini_set(mini):
    manifest, _ = mini
    np.testing.assert_array_equal(split_identities(manifest, "test"), ["id10108", "id10278"])
