"""The ``vfcross`` command line: arguments, what each command writes, one-line errors with exit 2."""

import pytest

from vfcross.cli import main
from vfcross.data.manifest import read_manifest


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    """A 3-identity synthetic population written by ``vfcross synth`` (smoke sizes)."""
    out = tmp_path_factory.mktemp("cli") / "pop"
    assert main(["synth", "--out", str(out), "--identities", "3", "--seed", "1", "--workers", "1",
                 "--preset", "smoke"]) == 0
    return out


def error_exit(capsys, argv: list[str]) -> str:
    """Run ``vfcross argv``, expect exit status 2 and one error line on stderr; return that line."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vfcross {argv[0]}: error: "), err
    return lines[0]


def test_synth_writes_a_population_in_the_voxceleb1_layout(population, capsys):
    assert (population / "vox1_meta.csv").is_file()
    assert len([p for p in (population / "wav").iterdir() if p.is_dir()]) == 3
    assert len([p for p in (population / "unzippedFaces").iterdir() if p.is_dir()]) == 3
    # the same settings again: the folder is kept as it is
    assert main(["synth", "--out", str(population), "--identities", "3", "--seed", "1", "--workers", "1",
                 "--preset", "smoke"]) == 0
    assert "population of 3 identities (seed 1)" in capsys.readouterr().out


def test_synth_refuses_to_mix_populations(population, capsys):
    line = error_exit(capsys, ["synth", "--out", str(population), "--identities", "3", "--seed", "2",
                               "--workers", "1", "--preset", "smoke"])
    assert str(population) in line and "different settings" in line


def test_ingest_writes_the_manifest_it_reports(population, tmp_path, capsys):
    out = tmp_path / "manifest.csv"
    assert main(["ingest", "--root", str(population), "--out", str(out)]) == 0
    manifest = read_manifest(out)
    printed = capsys.readouterr().out
    assert printed.startswith(f"{manifest.identity.nunique()} identities, ") and str(out) in printed
    assert manifest.identity.nunique() == 3 and set(manifest.modality) == {"face", "voice"}


def test_ingest_of_a_missing_folder_is_one_line(tmp_path, capsys):
    line = error_exit(capsys, ["ingest", "--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.csv")])
    assert "not found" in line and str(tmp_path / "nowhere") in line
    assert not (tmp_path / "m.csv").exists()


@pytest.mark.parametrize("setting, message", [
    ("nosuch=1", "no configuration field 'nosuch'"),
    ("face.nosuch=1", "no configuration field 'face.nosuch'"),
    ("nosection.size=1", "no configuration section 'nosection.size'"),
    ("face.size", "--set expects key=value, got 'face.size'"),
])
def test_preprocess_rejects_a_bad_setting_before_any_work(setting, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written would land here
    line = error_exit(capsys, ["preprocess", "--preset", "smoke", "--set", setting])
    assert message in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, complaint", [
    ([], "required: command"),
    (["synth"], "required: --out"),
    (["ingest"], "required: --root"),
    (["train", "--out", "r"], "required: --manifest"),
    (["preprocess", "--preset", "huge"], "invalid choice: 'huge'"),
    (["synth", "--out", "x", "--identities", "many"], "invalid int value: 'many'"),
    (["nosuch"], "invalid choice: 'nosuch'"),
])
def test_argument_errors_exit_2_with_usage(argv, complaint, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: vfcross") and complaint in err
