"""`vfcross evaluate --embeddings`: anyone's embeddings scored on the official lists or on every pair, and bad files
refused in one line with nothing written. The official lists' meta table is read from ../shared (skipped without)."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from vfcross.data.protocol_files import read_verification_list
from vfcross.workflows.cli import main

VERIF = "veriflist_test_random_unseenunheard.txt"


@pytest.fixture(scope="module")
def lists(shared_data):
    return shared_data / "voxceleb1-lists"


def _write(path, relpaths, vectors):
    np.savez(path, relpath=np.asarray(relpaths), embedding=np.asarray(vectors))
    return path


@pytest.fixture(scope="module")
def official(lists, tmp_path_factory):
    """Embeddings (64-d, float32) of every file the random verification list names, two systems, and the list."""
    veriflist = read_verification_list(lists / VERIF, lists / "vox1_meta.csv")
    relpaths = np.unique(veriflist.paths)
    identity = {p: i for p, i in zip(veriflist.paths.ravel(), veriflist.identities.ravel())}
    rng = np.random.default_rng(0)
    centre = {i: rng.normal(size=64) for i in np.unique(veriflist.identities)}
    folder = tmp_path_factory.mktemp("embeddings")
    files = []
    for name, noise in (("good", 6.0), ("poor", 12.0)):
        vectors = np.stack([centre[identity[p]] + noise * rng.normal(size=64) for p in relpaths]).astype(np.float32)
        files.append(_write(folder / f"{name}.npz", relpaths, vectors))
    return files, veriflist, relpaths


def test_the_official_random_list_scores_as_scikit_learn(official, lists, tmp_path):
    (good, poor), veriflist, relpaths = official
    assert main(["evaluate", "--embeddings", str(good), "--root", str(lists), "--lists", str(lists),
                 "--against", str(poor), "--out", str(tmp_path / "out"), "--set", "eval.n_boot=50"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    with np.load(good) as data:
        vectors = data["embedding"].astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    row = {p: i for i, p in enumerate(relpaths)}
    scores = [vectors[row[v]] @ vectors[row[f]] for v, f in veriflist.paths]
    assert summary["verification"]["auc"] == pytest.approx(roc_auc_score(veriflist.labels, scores), abs=1e-6)
    assert summary["verification"]["coverage"] == {"rows": len(veriflist), "scored": len(veriflist), "missing": 0}
    assert summary["verification"]["auc_ci"][0] < summary["verification"]["auc"] < summary["verification"]["auc_ci"][1]
    assert summary["matching_vf"]["2"]["coverage"]["missing"] > 0  # trials with a file the embeddings lack: named
    assert summary["against"]["verification"]["random"]["auc"]["difference"] > 0
    missing = pd.read_csv(tmp_path / "out" / "missing_rows.csv.gz")
    assert set(missing.list) >= {"matching_v2f_U.csv", "wav_20k.csv"} and VERIF not in set(missing.list)
    assert (tmp_path / "out" / "tables" / "table2.md").is_file()


def test_without_lists_every_pair_of_the_rows_is_scored(lists, tmp_path):
    meta = pd.read_csv(lists / "vox1_meta.csv", sep="\t")
    people = meta.head(20)
    rng = np.random.default_rng(1)
    relpaths, vectors = [], []
    for vid, name in zip(people.iloc[:, 0].str.strip(), people.iloc[:, 1].str.strip()):
        centre = rng.normal(size=16)
        relpaths += [f"wav/{vid}/v/00001.wav", f"wav/{vid}/v/00002.wav", f"unzippedFaces/{name}/1.6/v/0000001.jpg"]
        vectors += [centre + rng.normal(size=16) for _ in range(3)]
    file = _write(tmp_path / "mine.npz", relpaths, vectors)
    assert main(["evaluate", "--embeddings", str(file), "--root", str(lists), "--out", str(tmp_path / "o"),
                 "--set", "eval.n_boot=30", "--set", "eval.n_trials=40"]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["verification"]["pairs"] == 40 * 20 and summary["verification"]["auc"] > 0.7
    assert summary["grouped_auc"]["G"]["protocol"].startswith("generated") and "note" in summary["grouped_auc"]["A"]
    assert summary["rows"] == {"voice": 40, "face": 20}


@pytest.mark.parametrize("arrays, reason", [
    (lambda r, v: {"relpaths": r, "embedding": v}, "missing key 'relpath'"),
    (lambda r, v: {"relpath": r, "embedding": v[:, :0]}, "one float row per relpath"),
    (lambda r, v: {"relpath": r, "embedding": np.where(np.arange(len(v))[:, None] == 1, np.nan, v)}, "not finite"),
    (lambda r, v: {"relpath": np.r_[r[:1], r[:1]], "embedding": v[:2]}, "occurs more than once"),
    (lambda r, v: {"relpath": np.r_[r[:1], ["faces/x.jpg"]], "embedding": v[:2]}, "not in the VoxCeleb1 layout"),
    (lambda r, v: {"relpath": np.r_[r[:1], ["wav/id99999/v/00001.wav"]], "embedding": v[:2]}, "identities the meta"),
    (lambda r, v: {"relpath": r[:2], "embedding": v[:3]}, "one float row per relpath"),
])
def test_a_bad_file_is_one_line_naming_it_and_nothing_is_written(lists, tmp_path, capsys, arrays, reason):
    relpaths = np.array(["wav/id10001/v/00001.wav", "unzippedFaces/A.J._Buckley/1.6/v/0000001.jpg",
                         "wav/id10002/v/00001.wav"])
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays(relpaths, np.ones((3, 4))))
    assert main(["evaluate", "--embeddings", str(bad), "--root", str(lists), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and str(bad) in error and reason in error
    assert not (tmp_path / "out").exists()


def test_a_ragged_file_and_mismatched_against_are_refused(lists, tmp_path, capsys):
    ragged = tmp_path / "ragged.npz"
    np.savez(ragged, relpath=np.array(["wav/id10001/v/00001.wav"]),
             embedding=np.array([np.ones(3), np.ones(2)], dtype=object))
    assert main(["evaluate", "--embeddings", str(ragged), "--root", str(lists), "--out", str(tmp_path / "o")]) == 2
    assert "not a readable .npz of plain arrays" in capsys.readouterr().err
    one = _write(tmp_path / "one.npz", ["wav/id10001/v/00001.wav", "unzippedFaces/A.J._Buckley/1.6/v/1.jpg"],
                 np.eye(2))
    other = _write(tmp_path / "other.npz", ["wav/id10001/v/00001.wav"], np.eye(1, 2))
    assert main(["evaluate", "--embeddings", str(one), "--root", str(lists), "--against", str(other),
                 "--out", str(tmp_path / "o")]) == 2
    assert "other paths" in capsys.readouterr().err and not (tmp_path / "o").exists()
