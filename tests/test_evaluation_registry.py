"""The protocol registry: generated or official protocols, each result naming its protocol and coverage.

Official lists are made by hand here on a synthetic table (paths are the
table's ``relpath`` values), so the scores, coverage counts and missing rows
can be checked against values computed independently; the real lists on the
VoxCeleb1 slice are tested in ``test_scoring.py``.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from fakes import make_table, unit_vectors

from vfcross.config import EvalConfig
from vfcross.data.protocol_files import ListFile
from vfcross.evaluation.evaluate import compare, evaluate
from vfcross.evaluation.protocols import (
    ABSENT,
    NOT_IN_TABLE,
    OFFICIAL_FILES,
    REGISTRY,
    OfficialLists,
    generated_protocols,
    official_protocols,
    protocols_for,
    read_official_lists,
)

VERIF = "veriflist_test_{}_unseenunheard.txt"


@pytest.fixture(scope="module")
def table():
    return make_table(n_test=12, n_train=4, missing_age=())


def paths(table, identity, modality):
    """The relpaths of one identity's samples of one modality, in table order."""
    rows = table[(table.identity == identity) & (table.modality == modality)]
    return rows.relpath.tolist()


def vlist(name, rows):
    """A verification list of (voice path, face path, voice id, face id) rows."""
    voice, face, vid, fid = (np.array(column, dtype=str) for column in zip(*rows))
    return ListFile("verification", name, f"lists/{VERIF.format(name)}", np.c_[voice, face], np.c_[vid, fid],
                    (vid == fid).astype(np.int64))


def test_every_registry_entry_has_a_distinct_key_a_scorer_and_files():
    keys = [spec.key for spec in REGISTRY]
    assert len(keys) == len(set(keys))
    assert {spec.metric for spec in REGISTRY} == {"verification", "roc", "auc", "matching", "retrieval"}
    assert all(spec.files for spec in REGISTRY)
    assert len(OFFICIAL_FILES) == 5 + 8 + 2  # veriflists, matching lists, galleries


def test_generated_results_name_their_protocol_and_every_drawn_row(table):
    vectors = unit_vectors(np.random.default_rng(0), len(table))
    result = evaluate(vectors, table, EvalConfig(seed=3, n_trials=30, n_boot=30))  # every pair of each list
    where = {"protocol": "generated (seed 3)"}
    n = len(generated_protocols(table, 3, kinds=("verification",)).verification("random").protocol)
    assert result["verification"]["protocol"] == where["protocol"] and result["verification"]["pairs"] == n
    assert result["verification"]["coverage"] == {"rows": n, "scored": n, "missing": 0}
    sampled = generated_protocols(table, 3, 200, kinds=("verification",)).verification("random")
    assert sampled.label == f"generated (seed 3), sampled 200 of {n:,} pairs without replacement"
    assert all(entry["protocol"] == where["protocol"] for entry in result["grouped_auc"].values())
    assert {n: e["trials"] for n, e in result["matching_vf"].items()} == {str(n): 30 for n in range(2, 11)}
    queries = ((table.split == "test") & (table.modality == "voice")).sum()
    gallery = ((table.split == "test") & (table.modality == "face")).sum()
    assert result["map"]["vf"]["coverage"]["rows"] == queries + gallery
    assert "grouped_matching" not in result  # official lists only
    assert result["settings"]["protocols"] == "generated (seed 3)" and "lists" not in result["settings"]
    assert [c["results"] for c in result["coverage"]][:2] == [["verification", "roc"], ["grouped_auc.G"]]


def test_generated_protocols_are_the_default_of_evaluate(table):
    vectors = unit_vectors(np.random.default_rng(1), len(table))
    cfg = EvalConfig(seed=2, n_pairs=100, n_trials=20, n_boot=20)
    a = evaluate(vectors, table, cfg)
    b = evaluate(vectors, table, cfg, generated_protocols(table, 2, 100, 20, "test"))
    assert a == b


@pytest.fixture(scope="module")
def official(table):
    """Hand-made official lists on the synthetic table, some rows referencing files it lacks."""
    v = {i: paths(table, f"id{i:03d}", "voice") for i in range(12)}
    f = {i: paths(table, f"id{i:03d}", "face") for i in range(12)}
    rows = [(v[0][0], f[0][0], "id000", "id000"), (v[0][0], f[1][0], "id000", "id001"),
            (v[2][0], f[2][1], "id002", "id002"), (v[3][0], f[2][0], "id003", "id002"),
            (v[4][0], "face/id004/missing", "id004", "id004"),      # a file the dataset lacks
            (v[5][0], f[6][0], "id005", "id006")]                    # a file preprocessing skipped (below)
    verification = vlist("random", rows)
    trials = [[v[0][0], f[0][0], f[1][0]], [v[2][0], f[2][0], f[3][0]], [v[4][0], f[4][0], "face/id007/missing"]]
    ids = [["id000", "id000", "id001"], ["id002", "id002", "id003"], ["id004", "id004", "id007"]]
    matching = ListFile("matching", "U", "lists/matching_v2f_U.csv", np.array(trials), np.array(ids), direction="v2f")
    voices = [v[i][0] for i in range(4)] + ["voice/id009/missing"]
    faces = [f[i][0] for i in range(4)] + [f[0][1]]
    gallery_v = ListFile("gallery", "wav_20k", "lists/wav_20k.csv", np.array(voices)[:, None],
                         np.array(["id000", "id001", "id002", "id003", "id009"])[:, None], direction="voice")
    gallery_f = ListFile("gallery", "jpg_20k", "lists/jpg_20k.csv", np.array(faces)[:, None],
                         np.array(["id000", "id001", "id002", "id003", "id000"])[:, None], direction="face")
    lists = {VERIF.format("random"): verification, "matching_v2f_U.csv": matching,
             "wav_20k.csv": gallery_v, "jpg_20k.csv": gallery_f}
    present = OfficialLists(Path("lists"), lists, tuple(n for n in OFFICIAL_FILES if n not in lists))
    skipped = {f[6][0]: "no face found"}
    kept = table[~table.relpath.isin(skipped)].reset_index(drop=True)  # as if preprocessing had skipped it
    return present, kept, skipped


def test_official_lists_are_scored_on_the_rows_whose_files_are_all_there(official):
    lists, table, skipped = official
    protocols = official_protocols(lists, table, split="test", root=None, skipped=skipped)
    vectors = unit_vectors(np.random.default_rng(2), len(table))
    result = evaluate(vectors, table, EvalConfig(n_boot=30), protocols)
    row = {p: i for i, p in enumerate(table.relpath)}
    v = lists.lists[VERIF.format("random")]
    scored = slice(0, 4)  # rows 5 and 6 lack a file
    scores = [vectors[row[a]] @ vectors[row[b]] for a, b in v.paths[scored]]
    entry = result["verification"]
    assert entry["auc"] == pytest.approx(roc_auc_score(v.labels[scored], scores))
    assert entry["pairs"] == 4 and entry["protocol"] == f"official: {VERIF.format('random')}"
    assert entry["coverage"] == {"rows": 6, "scored": 4, "missing": 2}
    assert result["grouped_auc"]["A"] == {
        "note": f"{VERIF.format('A')} not found in lists",
        "protocol": f"official: {VERIF.format('A')}", "coverage": {"rows": 0, "scored": 0, "missing": 0}}

    m = lists.lists["matching_v2f_U.csv"]
    sims = np.array([[vectors[row[m.paths[t, 0]]] @ vectors[row[c]] for c in m.paths[t, 1:]] for t in range(2)])
    assert set(result["matching_vf"]) == {"2"}  # official matching is 1:2
    assert result["matching_vf"]["2"]["accuracy"] == pytest.approx(np.mean(sims[:, 0] > sims[:, 1]))
    assert result["matching_vf"]["2"]["coverage"] == {"rows": 3, "scored": 2, "missing": 1}
    assert result["matching_fv"]["protocol"] == "official: matching_f2v_U.csv" and "note" in result["matching_fv"]

    queries = [row[p] for p in lists.lists["wav_20k.csv"].paths[:4, 0]]
    gallery = [row[p] for p in lists.lists["jpg_20k.csv"].paths[:, 0]]
    ids = table.identity.to_numpy(dtype=str)
    aps = [average_precision_score(ids[gallery] == ids[q], vectors[gallery] @ vectors[q]) for q in queries]
    assert result["map"]["vf"]["map"] == pytest.approx(np.mean(aps))
    assert result["map"]["vf"]["coverage"] == {"rows": 10, "scored": 9, "missing": 1}
    assert result["map"]["vf"]["protocol"] == "official: wav_20k.csv + jpg_20k.csv"
    assert result["settings"]["protocols"] == "official lists in lists" and result["settings"]["identities"] == 4


def test_missing_rows_are_listed_with_the_reason_for_each_file(official, tmp_path):
    lists, table, skipped = official
    protocols = official_protocols(lists, table, split="test", skipped=skipped)
    missing = protocols.missing_rows()
    assert missing.columns.tolist() == ["list", "row", "missing", "reason"]
    verif = missing[missing.list == VERIF.format("random")]
    assert verif.row.tolist() == [5, 6]
    assert verif.missing.tolist() == ["face/id004/missing", next(iter(skipped))]
    assert verif.reason.tolist() == [NOT_IN_TABLE, "skipped in preprocessing: no face found"]
    assert missing[missing.list == "matching_v2f_U.csv"].row.tolist() == [3]
    assert missing[missing.list == "wav_20k.csv"].missing.tolist() == ["voice/id009/missing"]
    assert len(missing) == 4  # each list once, although both retrieval directions use the galleries
    written = pd.read_csv(protocols.write_missing(tmp_path))
    pd.testing.assert_frame_equal(written, missing, check_dtype=False)

    on_disk = tmp_path / "root"
    (on_disk / "face" / "id007").mkdir(parents=True)
    (on_disk / "face" / "id007" / "missing").write_bytes(b"")  # there, but not in the evaluated table
    reasons = official_protocols(lists, table, skipped=skipped, root=on_disk).reasons
    assert reasons["face/id004/missing"] == ABSENT and reasons["face/id007/missing"] == NOT_IN_TABLE
    coverage = {c["protocol"]: c for c in protocols.coverage()}
    assert coverage[f"official: {VERIF.format('random')}"]["missing_by_reason"] == {
        NOT_IN_TABLE: 1, "skipped in preprocessing: no face found": 1}


def test_a_list_using_identities_outside_the_split_is_noted(official):
    lists, table, _ = official
    train = table.assign(split=np.where(table.identity == "id000", "train", table.split))
    result = evaluate(unit_vectors(np.random.default_rng(3), len(train)), train, EvalConfig(n_boot=20),
                      official_protocols(lists, train, split="test"))
    assert any(f"official: {VERIF.format('random')}: 1 identities of its scored rows are not in split 'test'" in n
               for n in result["notes"])


def test_compare_scores_both_systems_on_the_official_pairs(official):
    lists, table, _ = official
    protocols = official_protocols(lists, table)
    a, b = (unit_vectors(np.random.default_rng(s), len(table)) for s in (4, 5))
    paired = compare(a, b, table, EvalConfig(n_boot=30), protocols)
    single = evaluate(a, table, EvalConfig(n_boot=30), protocols)
    assert paired["verification"]["random"]["auc"]["a"] == pytest.approx(single["verification"]["auc"])
    assert paired["verification"]["random"]["coverage"]["scored"] == 4
    assert "not found" in paired["verification"]["G"]["note"]


def test_protocols_for_reads_the_lists_folder_of_the_setting(table, tmp_path):
    assert protocols_for(table, EvalConfig(seed=4)).source == "generated (seed 4)"
    with pytest.raises(FileNotFoundError, match="lists folder not found"):
        protocols_for(table, EvalConfig(lists=str(tmp_path / "nowhere")))
    with pytest.raises(FileNotFoundError, match="holds none of the official list files"):
        read_official_lists(tmp_path)
    (tmp_path / "matching_v2f_U.csv").write_text("")
    with pytest.raises(FileNotFoundError, match="no vox1_meta.csv in"):
        read_official_lists(tmp_path)
