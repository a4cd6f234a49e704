"""The MAV-Celeb reader on a tiny layout made here: identities, languages, meta, splits, test files, trial lists."""

import numpy as np
import pandas as pd
import pytest

from vfcross.data.mavceleb import (
    REASON_TEST_FILE,
    draw_identity_splits,
    find_meta,
    read_mavceleb,
    read_meta,
    read_trials,
    scan_mavceleb,
    trial_lists,
)
from vfcross.data.voxceleb import MANIFEST_COLUMNS, REASON_NO_FACE, REASON_UNEXPECTED


def _touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def v1(tmp_path):
    """A MAV-Celeb v1-like folder: two bilingual identities, one without faces, one whose frames have no language."""
    root = tmp_path / "mavceleb_v1_train"
    for ident, videos in {"id0001": {"English": "AAAAAAAAAAA", "Urdu": "BBBBBBBBBBB"},
                          "id0002": {"English": "CCCCCCCCCCC", "Urdu": "DDDDDDDDDDD"}}.items():
        for language, video in videos.items():
            for clip in ("00000.wav", "00001.wav"):
                _touch(root / "voices" / ident / language / video / clip)
            _touch(root / "faces" / ident / language / video / "0000100.jpg")
    _touch(root / "voices" / "id0003" / "English" / "EEEEEEEEEEE" / "00000.wav")  # no faces
    _touch(root / "voices" / "id0004" / "Urdu" / "FFFFFFFFFFF" / "00000.wav")
    _touch(root / "faces" / "id0004" / "FFFFFFFFFFF" / "0000025.jpg")  # frames not grouped by language
    _touch(root / "voices" / "English" / "00000.wav")  # the challenge's unlabelled test files
    _touch(root / "faces" / "English" / "00000.jpg")
    _touch(root / "voices" / "notes.txt")
    _touch(root / "v1_meta.csv", "ids,name,gender\nid0001,Some One,Male\nid0002,Another One,Female\n"
                                 "id0003,Third One,Male\n")
    return root


def test_identity_folders_become_the_manifest_with_languages(v1):
    manifest, skipped = scan_mavceleb(v1)
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert sorted(manifest["identity"].unique()) == ["id0001", "id0002", "id0004"]
    one = manifest[manifest.identity == "id0001"]
    assert set(one["name"]) == {"Some One"} and set(one["gender"]) == {"m"}
    assert set(manifest.loc[manifest.identity == "id0002", "gender"]) == {"f"}
    voices = one[one.modality == "voice"]
    assert voices.groupby("language").size().to_dict() == {"English": 2, "Urdu": 2}
    row = voices[voices.language == "Urdu"].iloc[0]
    assert row.relpath == "voices/id0001/Urdu/BBBBBBBBBBB/00000.wav" and row.video == "BBBBBBBBBBB"
    assert row.path == str(v1 / row.relpath)
    faces = manifest[manifest.modality == "face"].set_index("identity")
    assert faces.loc["id0001", "language"].tolist() == ["English", "Urdu"]
    assert faces.loc[["id0004"], "language"].isna().all()  # its frames carry no language folder
    four = manifest[manifest.identity == "id0004"].iloc[0]
    assert four["name"] == "id0004" and four.isna()[["gender", "split", "nationality", "age"]].all()
    reasons = skipped.set_index("path")["reason"]
    assert reasons[str(v1 / "voices/English/00000.wav")] == REASON_TEST_FILE
    assert reasons[str(v1 / "faces/English/00000.jpg")] == REASON_TEST_FILE
    assert reasons[str(v1 / "voices/id0003/English/EEEEEEEEEEE/00000.wav")] == REASON_NO_FACE
    assert reasons[str(v1 / "voices/notes.txt")] == REASON_UNEXPECTED
    assert len(skipped) == 4
    with pytest.warns(UserWarning, match="4 file"):
        assert read_mavceleb(v1).equals(manifest)


def test_splits_come_from_an_id_keyed_file_or_are_drawn(v1, tmp_path):
    splits = _touch(tmp_path / "splits.txt", "id0001 1\nid0002 4\nid0004 2\n")
    manifest, _ = scan_mavceleb(v1, splits_file=splits)
    assert manifest.drop_duplicates("identity").set_index("identity")["split"].to_dict() == \
        {"id0001": "train", "id0002": "test", "id0004": "val"}
    ids = [f"id{i:04d}" for i in range(1, 41)]
    drawn = draw_identity_splits(ids, (0.7, 0.1, 0.2), seed=3)
    assert drawn == draw_identity_splits(ids[::-1], (0.7, 0.1, 0.2), seed=3)  # the set and the seed decide
    assert drawn != draw_identity_splits(ids, (0.7, 0.1, 0.2), seed=4)
    counts = {s: list(drawn.values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 28, "val": 4, "test": 8}
    assert set(draw_identity_splits(ids[:3], (0.98, 0.01, 0.01), 0).values()) == {"train", "val", "test"}
    with pytest.raises(ValueError, match="at least 3"):
        draw_identity_splits(ids[:2], (0.7, 0.1, 0.2), 0)


def test_meta_tables_are_read_or_refused(tmp_path, v1):
    assert find_meta(v1) == v1 / "v1_meta.csv" and find_meta(tmp_path) is None
    meta = read_meta(_touch(tmp_path / "m.csv", "ids, name, gender\nid1, A B, female\nid2, C, unknown\n"))
    assert meta["identity"].tolist() == ["id1", "id2"] and meta.loc[0, "name"] == "A B"
    assert meta.loc[0, "gender"] == "f" and pd.isna(meta.loc[1, "gender"])
    with pytest.raises(ValueError, match="no 'ids' column"):
        read_meta(_touch(tmp_path / "bad.csv", "name,gender\nA,Male\n"))
    with pytest.raises(ValueError, match="listed twice"):
        read_meta(_touch(tmp_path / "dup.csv", "ids\nid1\nid1\n"))


def test_not_a_mavceleb_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="voices/ and faces/"):
        scan_mavceleb(tmp_path)


def test_trial_lists_keep_their_order_and_refuse_bad_rows(tmp_path):
    lists = tmp_path / "v1_lists"
    path = _touch(lists / "English_test.txt", "ysuvkz41 voices/English/00000.wav faces/English/00000.jpg\n"
                                              "tog3zj45 voices/English/00001.wav faces/English/00001.jpg\n\n"
                                              "ky5xfj1d voices/English/00002.wav faces/English/00002.jpg\n")
    _touch(lists / "Urdu_test.txt", "a voices/Urdu/0.wav faces/Urdu/0.jpg\n")
    _touch(lists / "English_train.txt", "id0001/English/v/0.wav id0001/English/v/1.jpg\n")
    trials = read_trials(path)
    assert trials["key"].tolist() == ["ysuvkz41", "tog3zj45", "ky5xfj1d"]
    assert trials.loc[1, "voice"] == "voices/English/00001.wav" and trials.loc[2, "face"] == "faces/English/00002.jpg"
    assert list(trial_lists(lists)) == ["English", "Urdu"]
    with pytest.raises(ValueError, match="line 2"):
        read_trials(_touch(tmp_path / "bad.txt", "a b c\nd e\n"))
    with pytest.raises(ValueError, match="listed twice"):
        read_trials(_touch(tmp_path / "dup.txt", "a b c\na d e\n"))
    with pytest.raises(ValueError, match="no trials"):
        read_trials(_touch(tmp_path / "empty.txt", "\n"))
    assert np.all(trials.columns == ["key", "voice", "face"])
