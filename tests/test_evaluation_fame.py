"""The FAME protocol: training data of one language, heard/unheard scores, the overall score, the submission files."""

import numpy as np
import pandas as pd
import pytest
from fakes import check_submission

from vfcross.evaluation.fame import (
    OVERALL,
    _mean_eer,
    evaluation_rows,
    fame_evaluation,
    heard_only,
    l2_distances,
    languages_of,
    submission_name,
    write_submission,
)
from vfcross.metrics import eer, roc_auc
from vfcross.evaluation.protocols import verification_pairs
from vfcross.reporting.multilingual import fame_figure, fame_table
from vfcross.reporting.reported import FAME_BASELINE, REPORTED


def _manifest() -> pd.DataFrame:
    """Identities of three splits, each with a face per language and two clips per language."""
    rows = []
    for i, split in enumerate(["train"] * 4 + ["val"] * 2 + ["test"] * 3):
        for language in ("English", "German"):
            rows.append({"identity": f"id{i}", "modality": "face", "split": split, "language": language,
                         "relpath": f"f/{i}/{language}.jpg"})
            for clip in range(2):
                rows.append({"identity": f"id{i}", "modality": "voice", "split": split, "language": language,
                             "relpath": f"v/{i}/{language}{clip}.wav"})
    return pd.DataFrame(rows).astype("string")


def test_training_keeps_one_languages_clips_and_every_face():
    manifest = _manifest()
    heard = heard_only(manifest, "German")
    outside = heard[heard.split != "test"]
    assert set(outside.loc[outside.modality == "voice", "language"]) == {"German"}
    assert (outside.modality == "face").sum() == 6 * 2  # faces of both languages' videos stay
    test = heard[heard.split == "test"].reset_index(drop=True)
    assert test.equals(manifest[manifest.split == "test"].reset_index(drop=True))  # evaluated in both languages
    assert len(heard) == len(manifest) - 6 * 2  # exactly the English clips of train and val left
    with pytest.raises(ValueError, match="no training clips in 'Urdu'.*English"):
        heard_only(manifest, "Urdu")
    assert languages_of(manifest) == ("English", "German")


def test_a_test_language_scores_its_clips_against_its_videos_faces():
    manifest = _manifest()
    rows = manifest[evaluation_rows(manifest, "English")]
    assert set(rows["language"]) == {"English"} and set(rows["modality"]) == {"face", "voice"}
    unknown = manifest.assign(language=manifest["language"].where(manifest.modality == "voice"))
    rows = unknown[evaluation_rows(unknown, "German")]
    assert (rows.modality == "face").sum() == 9 * 2  # faces without a language count for both
    assert set(rows.loc[rows.modality == "voice", "language"]) == {"German"}


def _systems(n_identities: int = 12, seed: int = 0):
    """Test-split embeddings of two models: English's separates its own clips well, German's both less well."""
    rng = np.random.default_rng(seed)
    rows, vectors = [], {"English": [], "German": []}
    identity_vectors = rng.normal(size=(n_identities, 8))
    strength = {("English", "English"): 3.0, ("English", "German"): 0.5,
                ("German", "German"): 1.0, ("German", "English"): 0.8}
    for i in range(n_identities):
        for language in ("English", "German"):
            rows.append({"identity": f"id{i:02d}", "modality": "face", "split": "test", "language": language})
            for stack in vectors.values():
                stack.append(identity_vectors[i] + 0.3 * rng.normal(size=8))
            for _ in range(3):
                rows.append({"identity": f"id{i:02d}", "modality": "voice", "split": "test", "language": language})
                noise = rng.normal(size=8)
                for model, stack in vectors.items():
                    stack.append(strength[model, language] * identity_vectors[i] + 2 * noise)
    table = pd.DataFrame(rows).astype("string")
    out = {}
    for model, vs in vectors.items():
        vs = np.array(vs)
        out[model] = (vs / np.linalg.norm(vs, axis=1, keepdims=True), table)
    return out


def test_heard_and_unheard_scores_match_a_direct_computation():
    systems = _systems()
    result = fame_evaluation(systems, n_pairs=400, seed=5, n_boot=200)
    assert result["languages"] == ["English", "German"]
    assert [(r["train"], r["test"], r["condition"]) for r in result["results"]] == [
        ("English", "English", "heard"), ("English", "German", "unheard"),
        ("German", "German", "heard"), ("German", "English", "unheard")]
    for entry in result["results"]:
        vectors, table = systems[entry["train"]]
        rows = evaluation_rows(table, entry["test"])
        pairs = verification_pairs(table[rows].reset_index(drop=True), "random", 400, 5, "test")
        scores = pairs.scores(vectors[rows])
        assert entry["eer"] == pytest.approx(eer(scores, pairs.labels))
        assert entry["auc"] == pytest.approx(roc_auc(scores, pairs.labels))
        assert entry["pairs"] == 400 and entry["identities"] == 12
        for metric in ("eer", "auc"):
            low, high = entry[f"{metric}_ci"]
            assert low <= entry[metric] <= high
    by = {(r["train"], r["test"]): r for r in result["results"]}
    assert by["English", "English"]["auc"] > by["English", "German"]["auc"]  # the planted language effect shows
    eers = [r["eer"] for r in result["results"]]
    assert result["overall"]["eer"] == pytest.approx(np.mean(eers)) and result["overall"]["definition"] == OVERALL
    low, high = result["overall"]["ci"]
    assert low <= result["overall"]["eer"] <= high
    for train, (heard, unheard) in (("English", ("English", "German")), ("German", ("German", "English"))):
        gap = result["gaps"][train]
        assert gap["eer"] == pytest.approx(by[train, unheard]["eer"] - by[train, heard]["eer"])
        assert gap["auc"] == pytest.approx(by[train, unheard]["auc"] - by[train, heard]["auc"])
    assert result["gaps"]["English"]["auc_ci"][1] < 0  # English -> German loses AUC, on every resample range
    assert result["notes"] == []


def test_every_model_is_scored_on_the_same_pairs():
    systems = _systems()
    same = {"English": systems["English"], "German": systems["English"]}
    result = fame_evaluation(same, n_pairs=200, seed=1, n_boot=50)
    by = {(r["train"], r["test"]): r for r in result["results"]}
    for test in ("English", "German"):
        other = "German" if test == "English" else "English"
        assert by[test, test]["eer"] == by[other, test]["eer"] and by[test, test]["auc_ci"] == by[other, test]["auc_ci"]


def test_the_overall_interval_resamples_identities_across_the_four_lists():
    """Weighted mean EER (what each resample computes) equals the EERs of the rows repeated."""
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(4), 50)
    scores, labels = rng.normal(size=200), np.tile([0, 1], 100)
    weights = rng.integers(0, 3, 200).astype(float)
    rows = np.repeat(np.arange(200), weights.astype(int))
    expected = np.mean([eer(scores[rows][groups[rows] == g], labels[rows][groups[rows] == g]) for g in range(4)])
    assert _mean_eer(groups, scores, labels, sample_weight=weights) == pytest.approx(expected)


def test_one_model_gives_its_gap_and_no_overall_score():
    systems = _systems()
    result = fame_evaluation({"English": systems["English"]}, ("English", "German"), n_pairs=200, n_boot=50)
    assert [r["condition"] for r in result["results"]] == ["heard", "unheard"]
    assert result["overall"] is None and list(result["gaps"]) == ["English"]
    with pytest.raises(ValueError, match="two languages"):
        fame_evaluation({"English": systems["English"]})
    with pytest.raises(ValueError, match="models of \\['Urdu'\\]"):
        fame_evaluation({"Urdu": systems["English"]}, ("English", "German"))


def test_the_table_puts_the_reported_baseline_apart_and_the_figure_draws():
    systems = _systems()
    result = fame_evaluation(systems, n_pairs=200, n_boot=50)
    table = fame_table({"ours": result}, {"dataset": "synthetic", "preset": "smoke"})
    reported = table[table.source == "reported"]
    assert set(reported["method"]) == {FAME_BASELINE} and reported["AUC"].isna().all()
    ours = table[table.source == "measured"]
    assert list(ours["condition"]) == ["heard", "unheard", "unheard - heard", "heard", "unheard", "unheard - heard",
                                       "overall (mean of the 4 EERs)"]
    assert ours["EER"].iloc[-1] == pytest.approx(round(100 * result["overall"]["eer"], 2))
    fame_figure(result)


def test_the_reported_overall_scores_are_the_mean_of_their_four_eers():
    rows = pd.DataFrame(REPORTED["multilingual"])
    for _, part in rows.groupby("dataset"):
        four = part[part.condition.isin(["heard", "unheard"])]["EER"]
        overall = part[part["condition"].str.startswith("overall")]["EER"].item()
        assert len(four) == 4 and abs(four.mean() - overall) <= 0.05 + 1e-9


# --- submission files ---------------------------------------------------------------------------------


def test_files_are_named_as_the_organisers_compute_score_names_them():
    """mavceleb/mavceleb_baseline computeScore.py (e3c56df): sub_score_<ver>_<test language>_<heard|unheard>.txt."""
    assert submission_name("English", "English", "v3") == "sub_score_v3_English_heard.txt"
    assert submission_name("English", "German", "v3") == "sub_score_v3_German_unheard.txt"
    assert submission_name("Urdu", "English", "v1") == "sub_score_v1_English_unheard.txt"
    with pytest.raises(ValueError, match="mavceleb_version: MAV-Celeb v3 holds English and German, not English and U"):
        submission_name("Urdu", "English", "v3")


def test_l2_distances_rank_pairs_as_cosine_does():
    rng = np.random.default_rng(0)
    v, f = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    v, f = v / np.linalg.norm(v, axis=1, keepdims=True), f / np.linalg.norm(f, axis=1, keepdims=True)
    cosine = np.einsum("ij,ij->i", v, f)
    distance = l2_distances(v, f)
    np.testing.assert_allclose(distance, np.sqrt(2 - 2 * cosine), atol=1e-12)
    labels = np.tile([0, 1], 25)
    assert eer(-distance, labels) == pytest.approx(eer(cosine, labels))
    with pytest.raises(ValueError, match="alike"):
        l2_distances(v, f[:3])


def test_submission_lists_every_key_once_in_the_trial_order(tmp_path):
    trials = pd.DataFrame({"key": ["ysuvkz41", "tog3zj45", "ky5xfj1d"], "voice": ["a", "b", "c"],
                           "face": ["d", "e", "f"]})
    path = write_submission(tmp_path / "sub" / "sub_score_v3_English_heard.txt", trials["key"],
                            np.array([0.9988, 0.11456789, 1.5]))
    assert path.read_text() == "ysuvkz41 0.998800\ntog3zj45 0.114568\nky5xfj1d 1.500000\n"
    check_submission(path, trials)
    with pytest.raises(ValueError, match="line 1"):
        check_submission(path, trials.iloc[::-1])
    with pytest.raises(ValueError, match="3 lines for 2 trials"):
        check_submission(path, trials.iloc[:2])
    for keys, scores, message in ((["a", "a"], [1.0, 2.0], "repeated"), (["a"], [1.0, 2.0], "1 keys but 2"),
                                  (["a b"], [1.0], "blank"), (["a", "b"], [1.0, np.nan], "not finite")):
        with pytest.raises(ValueError, match=message):
            write_submission(tmp_path / "x.txt", keys, np.array(scores))
