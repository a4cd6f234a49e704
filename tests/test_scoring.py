"""`vfcross evaluate` on the real VoxCeleb1 slice: official lists (coverage counted, missing rows listed) and generated protocols.

A smoke model is trained on the slice once per session (``slice_work`` in
conftest). Few rows of the official lists resolve on the slice: the
expected coverage is computed here from the raw list files and the files on
disk, independently of vfcross's parsers. Skipped where ../shared/data is absent.
"""

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import vfcross
from vfcross.workflows.cli import main
from vfcross.workflows.inference import export

VERIF = "veriflist_test_{}_unseenunheard.txt"


@pytest.fixture(scope="module")
def places(shared_data):
    """(dataset root, lists folder, identity splits) of the slice."""
    root, lists = shared_data / "voxceleb1-mini", shared_data / "voxceleb1-lists"
    if not (root.is_dir() and (lists / VERIF.format("random")).is_file()):
        pytest.skip("voxceleb1-mini or voxceleb1-lists absent")
    return root, lists, lists / "identity_splits.txt"


# --- the official lists, read independently ------------------------------------------------------

def _names(lists: Path) -> dict[str, str]:
    """VGGFace1 name -> VoxCeleb1 ID, from the tab-separated meta table."""
    with open(lists / "vox1_meta.csv", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    return {row[1].strip(): row[0].strip() for row in rows[1:] if row}


def official_rows(lists: Path, name: str) -> list[list[str]]:
    """Each data row of an official file as the dataset-relative paths it references."""
    text = (lists / name).read_text().splitlines()
    def voice(path):  # id/video/n.wav
        return f"wav/{path}"

    def face(path):  # name/1.6/video/frame.jpg
        return f"unzippedFaces/{path}"

    if name.startswith("veriflist"):
        ids = _names(lists)
        rows = []
        for line in text[1:]:
            fields = line.split(",")
            person, clip = fields[4].split("/")
            video, number = clip[:-len(".wav")].rsplit("_", 1)
            vname, vvideo, frame = fields[5].split("/")
            rows.append([f"wav/{ids[person]}/{video}/{int(number):05d}.wav",
                         f"unzippedFaces/{vname}/1.6/{vvideo}/{frame}"])
        return rows
    if name.startswith("matching"):
        return [[voice(p) if p.endswith(".wav") else face(p) for p in line.split()] for line in text if line.strip()]
    return [[voice(line.split("\t")[1]) if name.startswith("wav") else face(line.split("\t")[1])] for line in text[1:]]


def present_rows(root: Path, rows: list[list[str]]) -> list[bool]:
    """Whether every file of each row exists under ``root``."""
    return [all((root / p).is_file() for p in row) for row in rows]


# --- official lists ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def official_run(slice_work, places, tmp_path_factory):
    """`vfcross evaluate` of the slice model with the official lists: (output folder, summary)."""
    cfg, _ = slice_work
    root, lists, splits = places
    out = tmp_path_factory.mktemp("evaluate-official")
    assert main(["evaluate", cfg.work_dir, "--root", str(root), "--splits", str(splits), "--lists", str(lists),
                 "--out", str(out)]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_coverage_of_every_official_list_is_counted_on_the_slice(official_run, places):
    out, summary = official_run
    root, lists, _ = places
    coverage = {c["protocol"]: c for c in summary["coverage"]}
    expected_total = 0
    for name in [VERIF.format(r) for r in ("random", "G", "N", "A", "GNA")] + \
            [f"matching_{d}_{v}.csv" for d in ("v2f", "f2v") for v in ("U", "G", "N", "GN")]:
        present = present_rows(root, official_rows(lists, name))
        record = coverage[f"official: {name}"]
        assert (record["rows"], record["scored"]) == (len(present), sum(present)), name
        assert record["missing_by_reason"] == {"absent from the dataset": len(present) - sum(present)}
        expected_total += len(present) - sum(present)
    voices, faces = (present_rows(root, official_rows(lists, f)) for f in ("wav_20k.csv", "jpg_20k.csv"))
    gallery = coverage["official: wav_20k.csv + jpg_20k.csv"]
    assert (gallery["rows"], gallery["scored"]) == (len(voices) + len(faces), sum(voices) + sum(faces))
    assert (sum(voices), sum(faces)) == (13, 1)  # what resolves on the slice today
    assert summary["map"]["vf"]["queries"] + summary["map"]["vf"]["excluded_queries"] == sum(voices)
    assert summary["map"]["vf"]["gallery"] == sum(faces)
    expected_total += len(voices) + len(faces) - sum(voices) - sum(faces)

    missing = pd.read_csv(out / "missing_rows.csv.gz")
    assert len(missing) == expected_total  # every row left out is listed, each list once
    wav = missing[missing.list == "wav_20k.csv"]
    assert wav.row.tolist() == [i + 1 for i, ok in enumerate(voices) if not ok]
    assert not any((root / p).is_file() for p in wav.missing.head(50))


def test_official_lists_score_nothing_where_no_row_resolves_and_say_so(official_run):
    _, summary = official_run
    assert summary["protocols"] == "official lists in voxceleb1-lists"
    assert summary["verification"]["note"] == "no row of the list has all its files in the evaluated table"
    assert set(summary["grouped_auc"]) == {"G", "N", "A", "GNA"}  # A and GNA from the lists' own labels
    assert summary["grouped_auc"]["A"]["protocol"] == f"official: {VERIF.format('A')}"
    assert set(summary["grouped_matching"]["vf"]) == {"G", "N", "GN"}
    assert summary["map"]["fv"]["ci"] is None  # one face query: one identity, no interval
    assert any("retrieval f2v: no identity-level interval" in note for note in summary["notes"])


def test_tables_name_the_official_protocol_and_its_coverage(official_run, places):
    out, summary = official_run
    _, lists, _ = places
    table2 = (out / "tables" / "table2.md").read_text()
    rows = len(official_rows(lists, VERIF.format("random")))
    assert f"official: {VERIF.format('random')}" in table2 and f"| 0 of {rows} |" in table2
    table5 = pd.read_csv(out / "tables" / "table5.csv")
    measured = table5[table5.source == "measured"].iloc[0]
    assert measured["protocol"] == "official: wav_20k.csv + jpg_20k.csv" and measured["rows scored"] == "14 of 40000"
    table4 = pd.read_csv(out / "tables" / "table4.csv")
    assert sorted(table4[table4.source == "measured"]["list"]) == sorted(["U", "G", "N", "GN"] * 2)
    coverage = pd.read_csv(out / "tables" / "coverage.csv")
    assert coverage.set_index("protocol").loc["official: matching_v2f_GN.csv", "scored"] == 0
    assert (out / "tables" / "coverage.md").read_text().count("| official: ") == len(summary["coverage"])


# --- lists whose rows resolve, and the exported model file ---------------------------------------

def test_handwritten_lists_are_scored_end_to_end_from_run_folder_and_model_file(slice_work, places, tmp_path):
    """Lists in the official format on the slice's two test identities: the scores are the model's cosines."""
    cfg, manifest = slice_work
    root, lists, splits = places
    test = manifest[manifest.split == "test"]
    voices = {i: test[(test.identity == i) & (test.modality == "voice")].relpath.tolist() for i in test.identity.unique()}
    faces = {i: test[(test.identity == i) & (test.modality == "face")].relpath.tolist() for i in test.identity.unique()}
    names = dict(zip(test.identity, test.name))
    (brian, asner) = sorted(voices)

    def vpath(relpath):  # wav/<id>/<video>/<nnnnn>.wav -> <name>/<video>_<nnnnnnn>.wav
        _, identity, video, clip = relpath.split("/")
        return f"{names[identity]}/{video}_{int(clip[:-4]):07d}.wav"

    def fpath(relpath):  # unzippedFaces/<name>/1.6/<video>/<frame> -> <name>/<video>/<frame>
        _, name, _, video, frame = relpath.split("/")
        return f"{name}/{video}/{frame}"

    pairs = [(brian, k, brian, k) for k in range(3)] + [(asner, k, asner, k) for k in range(3)] + \
            [(brian, k, asner, k) for k in range(3)] + [(asner, k, brian, k) for k in range(3)]
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "vox1_meta.csv").write_bytes((lists / "vox1_meta.csv").read_bytes())
    lines = ["id,voice-speaker-id,face-speaker-id,label,voice-path,face-path"]
    lines += [f"{n},{a},{b},{int(a == b)},{vpath(voices[a][i])},{fpath(faces[b][j])}"
              for n, (a, i, b, j) in enumerate(pairs)]
    lines.append(f"99,{asner},{asner},1,{names[asner]}/notthere_0000001.wav,{fpath(faces[asner][0])}")
    (folder / VERIF.format("random")).write_text("\n".join(lines) + "\n")

    out_runs, out_file = tmp_path / "runs", tmp_path / "file"
    assert main(["evaluate", cfg.work_dir, "--root", str(root), "--splits", str(splits), "--lists", str(folder),
                 "--out", str(out_runs)]) == 0
    model_file = export(cfg.work_dir, tmp_path / "model.safetensors")
    assert main(["evaluate", str(model_file), "--root", str(root), "--lists", str(folder), "--out", str(out_file),
                 "--set", "eval.n_boot=20"]) == 0
    by_runs, by_file = (json.loads((o / "summary.json").read_text()) for o in (out_runs, out_file))

    model = vfcross.load(cfg.work_dir, "cpu")
    rows = manifest.set_index("relpath")
    vectors = model.embed_preprocessed(manifest)
    index = {p: i for i, p in enumerate(rows.index)}
    scores = [vectors[index[voices[a][i]]] @ vectors[index[faces[b][j]]] for a, i, b, j in pairs]
    labels = [int(a == b) for a, _, b, _ in pairs]
    v = by_runs["verification"]
    assert v["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert v["pairs"] == 12 and v["coverage"] == {"rows": 13, "scored": 12, "missing": 1}
    assert by_file["verification"]["auc"] == pytest.approx(v["auc"], abs=1e-6)  # the exported file scores alike
    assert by_file["verification"]["auc_ci"] is not None and by_file["eval"]["n_boot"] == 20
    missing = pd.read_csv(out_runs / "missing_rows.csv.gz")
    assert missing.to_dict("records") == [{"list": VERIF.format("random"), "row": 13,
                                           "missing": f"wav/{asner}/notthere/00001.wav",
                                           "reason": "absent from the dataset"}]
    assert "matching_v2f_U.csv not found in" in by_runs["matching_vf"]["note"]
    assert np.isfinite(v["eer"]) and by_runs["data"]["samples"] == {"face": 6, "voice": 6}


# --- generated protocols and bad input -----------------------------------------------------------

def test_without_lists_the_test_split_is_scored_with_generated_protocols(slice_work, places, tmp_path, capsys):
    cfg, _ = slice_work
    root, _, splits = places
    with pytest.warns(UserWarning, match=r"have no (gender/nationality/)?age and are excluded"):
        assert main(["evaluate", cfg.work_dir, "--root", str(root), "--splits", str(splits), "--out", str(tmp_path),
                     "--set", "eval.n_pairs=40", "--set", "eval.n_boot=20"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["protocols"] == "generated (seed 0)" and summary["settings"]["identities"] == 2
    assert summary["verification"]["pairs"] == 40  # eval.n_pairs=40: sampled, and the protocol says so
    assert summary["verification"]["protocol"] == "generated (seed 0), sampled 40 of 384 pairs without replacement"
    assert summary["grouped_auc"]["A"]["note"] == "verification A: no row of split 'test' has age"  # no age in the meta
    assert set(summary["matching_vf"]) == {"2"}  # two test identities: 1:2 only
    assert pd.read_csv(tmp_path / "missing_rows.csv.gz").empty
    assert "generated (seed 0)" in (tmp_path / "tables" / "table2.md").read_text()
    assert "generated (seed 0)" in capsys.readouterr().out


def test_evaluate_refuses_to_change_what_the_model_fixes(slice_work, places, tmp_path, capsys):
    cfg, _ = slice_work
    root, _, _ = places
    assert main(["evaluate", cfg.work_dir, "--root", str(root), "--set", "face.size=64", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("vfcross evaluate: error: face.size: the model fixes its "
                                       "face/voice/backbone/fusion settings\n")
    assert main(["evaluate", cfg.work_dir, "--root", str(root), "--lists", str(tmp_path), "--out",
                 str(tmp_path / "o")]) == 2
    assert "holds none of the official list files" in capsys.readouterr().err


def test_identities_the_model_trained_on_are_not_scored_unless_allowed(slice_work, places, tmp_path, capsys):
    """A split file that moves a training identity (id10001) into the test split: refused, or scored and said so."""
    cfg, _ = slice_work
    root, _, splits = places
    moved = tmp_path / "identity_splits.txt"
    moved.write_text(splits.read_text().replace("A.J._Buckley 1", "A.J._Buckley 4", 1))
    args = ["evaluate", cfg.work_dir, "--root", str(root), "--splits", str(moved), "--out", str(tmp_path / "out"),
            "--set", "eval.n_pairs=40", "--set", "eval.n_boot=20"]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"vfcross evaluate: error: model {cfg.work_dir} was trained or validated on 1 of the 3 identities to score "
        "(id10001): its numbers are not those of unseen identities; pass --allow-trained-identities to score them "
        "anyway\n")
    assert not (tmp_path / "out").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*args, "--allow-trained-identities"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["trained_identities"]["allowed"] and "1 of the 3 identities" in summary["trained_identities"]["note"]
    assert summary["notes"][0] == summary["trained_identities"]["note"]
    assert "(scored on identities it may have trained on)" in (tmp_path / "out" / "tables" / "table2.md").read_text()
