"""Ingestion: the VoxCeleb1-layout reader and the protocol-file parsers.

Real-data tests read ``../shared/data`` (skipped where absent); bad-input
tests build tiny datasets of synthetic files under ``tmp_path``.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
import wave
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vfcross import config
from vfcross.data import voxceleb
from vfcross.data.protocol_files import read_matching_list, read_retrieval_gallery, read_verification_list
from vfcross.evaluation.protocols import join
from vfcross.data.voxceleb import (
    MANIFEST_COLUMNS,
    REASON_NO_FACE,
    REASON_NO_META,
    REASON_NO_VOICE,
    REASON_UNEXPECTED,
    REASON_UNLISTED,
    read_dataset,
    read_identity_splits,
    read_meta,
    scan_dataset,
)

MINI_IDENTITIES = {
    # identity: (name, gender, nationality, Learnable-PINs split)
    "id10001": ("A.J._Buckley", "m", "Ireland", "train"),
    "id10108": ("Brian_Dennehy", "m", "USA", "test"),
    "id10118": ("Caitriona_Balfe", "f", "Ireland", "train"),
    "id10228": ("Debi_Mazar", "f", "USA", "train"),
    "id10278": ("Edward_Asner", "m", "USA", "test"),
    "id10321": ("Fred_Williamson", "m", "USA", "train"),
}
VERIFLIST_PAIRS = {"random": 30496, "G": 30496, "N": 28193, "A": 30496, "GNA": 27280}
MATCHING_TRIALS = {"U": 10000, "G": 10000, "N": 9360, "GN": 9120}
META_HEADER = "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet"


# --------------------------------------------------------------- helpers


def write_wav(path: Path) -> None:
    """A 10 ms silent 16 kHz mono 16-bit clip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x00" * 160)


def write_jpg(path: Path) -> None:
    """An 8x8 grey image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (128, 128, 128)).save(path)


def make_dataset(
    root: Path,
    meta_rows: list[str],
    voices: dict[str, int],
    faces: dict[str, int],
    header: str = META_HEADER,
) -> Path:
    """A tiny VoxCeleb1-layout dataset: ``voices``/``faces`` map folder -> sample count (one video)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "vox1_meta.csv").write_text("\n".join([header, *meta_rows]) + "\n")
    for identity, n in voices.items():
        for i in range(n):
            write_wav(root / "wav" / identity / "vid_A-1" / f"{i + 1:05d}.wav")
    for name, n in faces.items():
        for i in range(n):
            write_jpg(root / "unzippedFaces" / name / "1.6" / "vid_A-1" / f"{25 * i:07d}.jpg")
    return root


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """Two complete identities with 2 voices and 3 faces each."""
    return make_dataset(
        tmp_path / "tiny",
        ["id00001\tAnn_A\tf\tUK\tdev", "id00002\tBob_B\tm\tUSA\ttest"],
        voices={"id00001": 2, "id00002": 2},
        faces={"Ann_A": 3, "Bob_B": 3},
    )


@pytest.fixture(scope="module")
def mini(shared_data: Path) -> Path:
    return shared_data / "voxceleb1-mini"


@pytest.fixture(scope="module")
def lists(shared_data: Path) -> Path:
    return shared_data / "voxceleb1-lists"


@pytest.fixture(scope="module")
def meta(lists: Path) -> pd.DataFrame:
    return read_meta(lists / "vox1_meta.csv")


@pytest.fixture(scope="module")
def veriflists(lists: Path, meta: pd.DataFrame) -> dict:
    return {
        name: read_verification_list(lists / f"veriflist_test_{name}_unseenunheard.txt", meta)
        for name in VERIFLIST_PAIRS
    }


@pytest.fixture(scope="module")
def matching(lists: Path, meta: pd.DataFrame) -> dict:
    return {
        (direction, name): read_matching_list(lists / f"matching_{direction}_{name}.csv", meta)
        for direction in ("v2f", "f2v")
        for name in MATCHING_TRIALS
    }


# ------------------------------------------------- dataset reader, real data


def test_mini_manifest_counts_and_columns(mini: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manifest = read_dataset(mini)
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert all(isinstance(dtype, pd.StringDtype) for dtype in manifest.dtypes)
    assert manifest["identity"].nunique() == 6
    assert manifest["modality"].value_counts().to_dict() == {"face": 72, "voice": 48}
    assert manifest["split"].isna().all()
    assert manifest["age"].isna().all()
    sorted_manifest = manifest.sort_values(["identity", "modality", "path"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(manifest, sorted_manifest)
    for row in manifest.itertuples():
        assert Path(row.path).is_absolute() and Path(row.path).is_file()
        assert row.path == str(mini / row.relpath)
        assert Path(row.relpath).parent.name == row.video


def test_mini_splits_and_meta_attributes(mini: Path, lists: Path) -> None:
    manifest = read_dataset(mini, splits_file=lists / "identity_splits.txt")
    per_identity = manifest.groupby("identity").first()
    for identity, (name, gender, nationality, split) in MINI_IDENTITIES.items():
        row = per_identity.loc[identity]
        assert (row["name"], row["gender"], row["nationality"], row["split"]) == (name, gender, nationality, split)
        assert pd.isna(row["age"])
    voices = manifest[manifest["modality"] == "voice"]
    assert voices["relpath"].str.fullmatch(r"wav/id\d{5}/[^/]+/\d{5}\.wav").all()
    faces = manifest[manifest["modality"] == "face"]
    assert faces["relpath"].str.fullmatch(r"unzippedFaces/[^/]+/1\.6/[^/]+/\d{7}\.jpg").all()


def test_official_split_file(lists: Path) -> None:
    splits = read_identity_splits(lists / "identity_splits.txt")
    assert pd.Series(splits).value_counts().to_dict() == {"train": 901, "test": 250, "val": 100}


def _reader_built_with(monkeypatch, split_type) -> object:
    """A fresh copy of vfcross/data/voxceleb.py, executed while ``vfcross.config.Split`` is ``split_type``."""
    monkeypatch.setattr(config, "Split", split_type)
    spec = importlib.util.spec_from_file_location("voxceleb_of_another_split_type", voxceleb.__file__)
    fresh = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, fresh)
    spec.loader.exec_module(fresh)
    return fresh


def test_split_codes_do_not_follow_the_order_of_the_split_type(monkeypatch, tmp_path: Path) -> None:
    reordered = _reader_built_with(monkeypatch, Literal["test", "seen_heard", "val", "train"])
    assert reordered.SPLIT_CODES == {"1": "train", "2": "val", "3": "seen_heard", "4": "test"}
    (tmp_path / "splits.txt").write_text("Ann_A 1\nBob_B 2\nCid_C 3\nDan_D 4\n")
    assert reordered.read_identity_splits(tmp_path / "splits.txt") == {
        "Ann_A": "train", "Bob_B": "val", "Cid_C": "seen_heard", "Dan_D": "test"}
    with pytest.raises(RuntimeError, match=r"SPLIT_CODES names .* but vfcross.config.Split allows"):
        _reader_built_with(monkeypatch, Literal["train", "val", "test"])


# ------------------------------------------- dataset reader, synthetic files


def test_tiny_dataset_reads(tiny: Path) -> None:
    manifest, skipped = scan_dataset(tiny)
    assert skipped.empty and tuple(skipped.columns) == ("path", "identity", "modality", "reason")
    assert manifest.groupby(["identity", "modality"]).size().to_dict() == {
        ("id00001", "face"): 3,
        ("id00001", "voice"): 2,
        ("id00002", "face"): 3,
        ("id00002", "voice"): 2,
    }
    assert set(manifest["video"]) == {"vid_A-1"}


def test_splits_file_in_root_is_used_by_default(tiny: Path, tmp_path: Path) -> None:
    (tiny / "identity_splits.txt").write_text("Ann_A 1 \nBob_B 4\n")
    manifest = read_dataset(tiny)
    assert manifest.groupby("identity")["split"].first().to_dict() == {"id00001": "train", "id00002": "test"}
    other = tmp_path / "other_splits.txt"
    other.write_text("Ann_A 2\nBob_B 4\n")
    split = read_dataset(tiny, splits_file=other).groupby("identity")["split"].first()
    assert split.to_dict() == {"id00001": "val", "id00002": "test"}


def test_an_identity_missing_from_the_split_file_is_an_error_unless_skipped(tiny: Path, tmp_path: Path) -> None:
    partial = tmp_path / "splits.txt"
    partial.write_text("Ann_A 1\n")
    with pytest.raises(ValueError, match=r"1 identity of .*tiny is not in the split file .*splits\.txt: Bob_B; "
                                         r"add it .*--skip-unlisted-identities"):
        scan_dataset(tiny, partial)
    manifest, skipped = scan_dataset(tiny, partial, skip_unlisted=True)
    assert set(manifest["identity"]) == {"id00001"} and set(manifest["split"]) == {"train"}
    assert skipped.groupby(["identity", "reason"]).size().to_dict() == {("id00002", REASON_UNLISTED): 5}


def test_every_identity_of_the_real_slice_ends_in_a_split_or_the_skip_list(mini: Path, lists: Path,
                                                                         tmp_path: Path) -> None:
    without_fred = tmp_path / "identity_splits.txt"
    without_fred.write_text("".join(line + "\n" for line in (lists / "identity_splits.txt").read_text().splitlines()
                                    if not line.startswith("Fred_Williamson")))
    with pytest.raises(ValueError, match="not in the split file .*: Fred_Williamson"):
        scan_dataset(mini, without_fred)
    manifest, skipped = scan_dataset(mini, without_fred, skip_unlisted=True)
    assert manifest["split"].notna().all()
    assert skipped.groupby(["identity", "reason"]).size().to_dict() == {("id10321", REASON_UNLISTED): 20}
    assert manifest.identity.nunique() + skipped.identity.nunique() == 6


def test_names_match_after_unicode_normalisation(tmp_path: Path) -> None:
    composed, decomposed = "Zo\u00eb_Z", "Zoe\u0308_Z"  # the same name in NFC and NFD
    root = make_dataset(tmp_path / "d", ["id00001\tAnn_A\tf\tUK\tdev", f"id00002\t{composed}\tf\tUK\tdev"],
                        voices={"id00001": 1, "id00002": 1}, faces={"Ann_A": 1, decomposed: 2})
    (root / "identity_splits.txt").write_text(f"Ann_A 1\n{composed} 4\n")
    manifest, skipped = scan_dataset(root)
    assert skipped.empty
    faces = manifest[manifest.modality == "face"].groupby("identity").size().to_dict()
    assert faces == {"id00001": 1, "id00002": 2}
    assert set(manifest.loc[manifest.identity == "id00002", "split"]) == {"test"}


def test_a_folder_differing_from_its_meta_name_in_case_gets_a_hint(tiny: Path) -> None:
    write_jpg(tiny / "unzippedFaces" / "ann_a" / "1.6" / "v" / "0000001.jpg")
    _, skipped = scan_dataset(tiny)
    assert skipped["reason"].tolist() == [REASON_NO_META + " (the meta table has 'Ann_A', which differs only in case)"]


def test_an_empty_dataset_is_an_error(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d", ["id00001\tAnn_A\tf\tUK\tdev"], voices={}, faces={})
    (root / "wav").mkdir()
    (root / "unzippedFaces").mkdir()
    with pytest.raises(ValueError, match="no identity with both voice and face samples was found"):
        scan_dataset(root)
    write_wav(root / "wav" / "id00001" / "v" / "00001.wav")  # voices alone are not a dataset either
    with pytest.raises(ValueError, match=r"\(1 file\(s\) left out: identity has no face samples: 1\)"):
        scan_dataset(root)


def test_identity_missing_from_meta_is_recorded(tiny: Path) -> None:
    write_wav(tiny / "wav" / "id09999" / "v" / "00001.wav")
    write_jpg(tiny / "unzippedFaces" / "Nobody" / "1.6" / "v" / "0000001.jpg")
    manifest, skipped = scan_dataset(tiny)
    assert len(manifest) == 10 and set(manifest["identity"]) == {"id00001", "id00002"}
    assert skipped[["identity", "modality", "reason"]].values.tolist() == [
        ["Nobody", "face", REASON_NO_META],
        ["id09999", "voice", REASON_NO_META],
    ]


def test_identity_with_one_modality_is_recorded_per_sample(tmp_path: Path) -> None:
    root = make_dataset(
        tmp_path / "d",
        ["id00001\tAnn_A\tf\tUK\tdev", "id00002\tBob_B\tm\tUSA\tdev", "id00003\tCid_C\tm\tUSA\tdev"],
        voices={"id00001": 2, "id00002": 3},
        faces={"Ann_A": 2, "Cid_C": 4},
    )
    manifest, skipped = scan_dataset(root)
    assert set(manifest["identity"]) == {"id00001"}
    assert skipped.groupby(["identity", "modality", "reason"]).size().to_dict() == {
        ("id00002", "voice", REASON_NO_FACE): 3,
        ("id00003", "face", REASON_NO_VOICE): 4,
    }
    with pytest.warns(UserWarning, match=f"{REASON_NO_FACE}: 3; {REASON_NO_VOICE}: 4"):
        read_dataset(root)


def test_unexpected_files_are_recorded(tiny: Path) -> None:
    extras = [
        tiny / "wav" / "id00001" / "vid_A-1" / "notes.txt",
        tiny / "wav" / "id00001" / "stray.wav",
        tiny / "unzippedFaces" / "Ann_A" / "1.6" / "vid_A-1" / "Thumbs.db",
        tiny / "unzippedFaces" / "Ann_A" / "vid_A-1" / "0000001.jpg",
    ]
    for path in extras:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    manifest, skipped = scan_dataset(tiny)
    assert len(manifest) == 10
    assert set(skipped["reason"]) == {REASON_UNEXPECTED}
    assert sorted(skipped["path"]) == sorted(str(p) for p in extras)
    with pytest.warns(UserWarning, match=f"{REASON_UNEXPECTED}: 4"):
        read_dataset(tiny)


def test_extensions_are_path_suffixes_and_rows_are_in_path_order(tiny: Path) -> None:
    samples = [tiny / "wav" / "id00001" / "vid_A" / "00009.WAV", tiny / "wav" / "id00001" / "vid_A-" / "00001.wav",
               tiny / "unzippedFaces" / "Ann_A" / "1.6" / "vid_A" / "0000009.JPG"]
    dotfile = tiny / "wav" / "id00001" / "vid_A" / ".wav"
    for path in [*samples, dotfile]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    manifest, skipped = scan_dataset(tiny)
    assert set(map(str, samples)) <= set(manifest["path"]) and len(manifest) == 13
    assert skipped[["path", "reason"]].values.tolist() == [[str(dotfile), REASON_UNEXPECTED]]
    order = sorted(zip(manifest["identity"], manifest["modality"], manifest["path"]))  # "vid_A-/" before "vid_A/"
    assert list(zip(manifest["identity"], manifest["modality"], manifest["path"])) == order
    assert manifest["relpath"].tolist() == [p[len(str(tiny)) + 1:].replace(os.sep, "/") for p in manifest["path"]]


def test_symlinked_identity_folders_are_followed(tiny: Path, tmp_path: Path) -> None:
    linked = tmp_path / "linked"
    for tree, folder in (("wav", "id00001"), ("unzippedFaces", "Ann_A")):
        (linked / tree).mkdir(parents=True)
        (linked / tree / folder).symlink_to(tiny / tree / folder, target_is_directory=True)
    (linked / "vox1_meta.csv").symlink_to(tiny / "vox1_meta.csv")
    manifest = read_dataset(linked)
    assert manifest["modality"].value_counts().to_dict() == {"face": 3, "voice": 2}


def test_meta_with_age_and_stray_whitespace(tmp_path: Path) -> None:
    root = make_dataset(
        tmp_path / "d",
        ["id00001 \tAnn_A\tf\tUK \tdev\tyoung ", "id00002\tBob_B\tm\tUSA\tdev\t"],
        voices={"id00001": 1, "id00002": 1},
        faces={"Ann_A": 1, "Bob_B": 1},
        header="VoxCeleb1 ID \tVGGFace1 ID\tGender\tNationality \tSet\tAge ",
    )
    manifest = read_dataset(root)
    ages = manifest.groupby("identity")["age"].first()
    assert ages["id00001"] == "young" and pd.isna(ages["id00002"])
    assert set(manifest["nationality"]) == {"UK", "USA"}


def test_missing_meta_names_the_file(tiny: Path) -> None:
    (tiny / "vox1_meta.csv").unlink()
    with pytest.raises(FileNotFoundError, match="vox1_meta.csv"):
        read_dataset(tiny)


def test_meta_without_required_columns_names_the_file(tiny: Path) -> None:
    (tiny / "vox1_meta.csv").write_text("VoxCeleb1 ID\tGender\nid00001\tf\n")
    with pytest.raises(ValueError, match=r"vox1_meta\.csv.*VGGFace1 ID"):
        read_dataset(tiny)


def test_bad_roots(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        read_dataset(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="neither wav/ nor unzippedFaces/"):
        read_dataset(tmp_path)


def test_malformed_split_file_names_line(tiny: Path) -> None:
    (tiny / "identity_splits.txt").write_text("Ann_A 1\nBob_B 7\n")
    with pytest.raises(ValueError, match=r"identity_splits\.txt, line 2"):
        read_dataset(tiny)


# ------------------------------------------------------- protocol files


def test_verification_lists_parse(veriflists: dict) -> None:
    for name, pairs in VERIFLIST_PAIRS.items():
        lst = veriflists[name]
        assert (lst.kind, lst.name, len(lst)) == ("verification", name, pairs)
        positives = int(lst.labels.sum())
        assert abs(positives - (pairs - positives)) <= 2  # balanced (odd-sized lists differ by one or two)
        np.testing.assert_array_equal(lst.labels, lst.identities[:, 0] == lst.identities[:, 1])
        assert len(np.unique(lst.identities[:, 0])) <= 250
    assert int(veriflists["G"].labels.sum()) == 15248


def test_veriflist_voice_path_maps_to_official_layout(veriflists: dict) -> None:
    lst = veriflists["G"]
    assert lst.paths[0, 0] == "wav/id10002/gaQqIoV_aLY/00001.wav"  # A.R._Rahman/gaQqIoV_aLY_0000001.wav
    assert lst.paths[0, 1] == "unzippedFaces/A.R._Rahman/1.6/eNc4LrrvV80/0011625.jpg"
    assert (*lst.identities[0], lst.labels[0]) == ("id10002", "id10002", 1)
    with pytest.raises(ValueError):
        lst.labels[0] = 0  # parsed tables are read-only


def test_matching_lists_parse(matching: dict) -> None:
    for (direction, name), trials in matching.items():
        assert (trials.direction, trials.name, len(trials)) == (direction, name, MATCHING_TRIALS[name])
        assert trials.paths.shape == trials.identities.shape == (len(trials), 3)
        assert not np.any(trials.identities[:, 0] == trials.identities[:, 2])
        np.testing.assert_array_equal(trials.identities[:, 0], trials.identities[:, 1])
        probe_prefix, candidate_prefix = ("wav/", "unzippedFaces/")[:: 1 if direction == "v2f" else -1]
        assert all(p.startswith(probe_prefix) for p in trials.paths[:, 0])
        assert all(c.startswith(candidate_prefix) for c in trials.paths[:, 1:].ravel())
    # the identity of a voice probe is in its own path: independent of the meta table
    v2f = matching[("v2f", "U")]
    assert [p.split("/")[1] for p in v2f.paths[:50, 0]] == v2f.identities[:50, 1].tolist()


def test_retrieval_galleries_parse(lists: Path, meta: pd.DataFrame) -> None:
    for filename, modality in (("wav_20k.csv", "voice"), ("jpg_20k.csv", "face")):
        gallery = read_retrieval_gallery(lists / filename, modality, meta)
        assert (gallery.direction, len(gallery), gallery.paths.shape) == (modality, 20000, (20000, 1))
        assert len(np.unique(gallery.paths)) == 20000 and len(np.unique(gallery.identities)) == 250


def test_a_list_joined_to_the_real_slice_names_every_row_it_leaves_out(mini: Path, veriflists: dict) -> None:
    lst, manifest = veriflists["G"], read_dataset(mini)
    kept, coverage = join(lst, manifest)
    referenced = set(np.unique(lst.paths).tolist())
    found = referenced & set(manifest["relpath"])
    # the mini slice holds all 16 test-identity clips the veriflists use, and no pair completely
    test_voices = manifest[manifest["identity"].isin(["id10108", "id10278"]) & (manifest["modality"] == "voice")]
    assert set(test_voices["relpath"]) <= found and len(found) < 0.01 * len(referenced)
    assert kept.shape == (0, 2) and coverage.rows == len(lst) and len(coverage.missing_rows) == len(lst)
    assert all(set(files) == set(lst.paths[row]) - found for row, files in
               zip(coverage.missing_rows[:500], coverage.missing_files[:500]))


def test_a_gallery_joins_the_manifest_where_its_files_are(mini: Path, lists: Path, meta: pd.DataFrame) -> None:
    gallery, manifest = read_retrieval_gallery(lists / "wav_20k.csv", "voice", meta), read_dataset(mini)
    kept, coverage = join(gallery, manifest)
    assert len(kept) == coverage.scored == 13 and coverage.rows == 20000
    assert set(manifest["relpath"].iloc[kept[:, 0]]) <= set(gallery.paths[:, 0])
    assert (manifest["identity"].iloc[kept[:, 0]].str.startswith("id1")).all()


def test_present_rows_of_a_partly_available_list(tiny: Path, tmp_path: Path) -> None:
    veriflist = tmp_path / "veriflist_test_G_unseenunheard.txt"
    veriflist.write_text(
        "id,voice-speaker-id,face-speaker-id,label,voice-path,face-path\n"
        "1,1,1,1,Ann_A/vid_A-1_0000001.wav,Ann_A/vid_A-1/0000000.jpg\n"
        "2,1,2,0,Ann_A/vid_A-1_0000002.wav,Bob_B/vid_A-1/0000050.jpg\n"
        "3,2,2,1,Bob_B/vid_A-1_0000009.wav,Bob_B/vid_A-1/0000025.jpg\n"
    )
    lst, manifest = read_verification_list(veriflist, tiny / "vox1_meta.csv"), read_dataset(tiny)
    kept, coverage = join(lst, manifest)
    assert coverage.missing_rows.tolist() == [2] and coverage.missing_files == (("wav/id00002/vid_A-1/00009.wav",),)
    assert manifest["relpath"].to_numpy()[kept].tolist() == lst.paths[:2].tolist()


TINY_META = ["id00001\tAnn_A\tf\tUK\tdev", "id00002\tBob_B\tm\tUSA\tdev"]
VERIF_HEADER = "id,voice-speaker-id,face-speaker-id,label,voice-path,face-path"
VERIF_OK = "1,1,1,1,Ann_A/vid_0000001.wav,Ann_A/vid/0000001.jpg"
V2F_OK = "id00001/v/00001.wav Ann_A/1.6/v/1.jpg Bob_B/1.6/v/1.jpg"
GALLERY_HEADER = "VoxCeleb1 ID\twav"


@pytest.mark.parametrize(
    ("reader", "lines", "bad_line"),
    [
        # unparsable voice path; label contradicting identities (after a blank line);
        # name absent from meta; too few fields; wrong header
        ("veriflist", [VERIF_HEADER, VERIF_OK, "2,1,1,1,Ann_A/vid.wav,Ann_A/vid/0000001.jpg"], 3),
        ("veriflist", [VERIF_HEADER, VERIF_OK, "", "3,1,2,1,Ann_A/vid_0000002.wav,Bob_B/vid/1.jpg"], 4),
        ("veriflist", [VERIF_HEADER, VERIF_OK, "2,1,1,1,Zed_Z/vid_0000001.wav,Ann_A/vid/1.jpg"], 3),
        ("veriflist", [VERIF_HEADER, VERIF_OK, "2,1,1"], 3),
        ("veriflist", ["id,label", VERIF_OK], 1),
        # too few candidates; true match of another identity; direction switch; not an official path
        ("matching", [V2F_OK, "id00001/v/00001.wav Ann_A/1.6/v/1.jpg"], 2),
        ("matching", ["id00001/v/00001.wav Bob_B/1.6/v/1.jpg Ann_A/1.6/v/1.jpg"], 1),
        ("matching", [V2F_OK, "Ann_A/1.6/v/1.jpg id00001/v/00001.wav id00002/v/00001.wav"], 2),
        ("matching", ["id00001/v/00001.wav Ann_A/v/1.jpg Bob_B/1.6/v/1.jpg"], 1),
        # identity column contradicting the path; face path in a voice gallery
        ("gallery", [GALLERY_HEADER, "id00001\tid00001/v/00001.wav", "id00002\tid00001/v/00002.wav"], 3),
        ("gallery", [GALLERY_HEADER, "id00001\tAnn_A/1.6/v/1.jpg"], 2),
    ],
)
def test_malformed_line_raises_with_line_number(
    tmp_path: Path, reader: str, lines: list[str], bad_line: int
) -> None:
    meta_file = tmp_path / "vox1_meta.csv"
    meta_file.write_text("\n".join([META_HEADER, *TINY_META]) + "\n")
    protocol = tmp_path / "protocol.txt"
    protocol.write_text("\n".join(lines) + "\n")
    parse = {
        "veriflist": lambda: read_verification_list(protocol, meta_file),
        "matching": lambda: read_matching_list(protocol, meta_file),
        "gallery": lambda: read_retrieval_gallery(protocol, "voice", meta_file),
    }[reader]
    with pytest.raises(ValueError, match=rf"protocol\.txt, line {bad_line}:"):
        parse()
