"""The ``vfcross`` command line: arguments, what each command writes, one-line errors with exit 2,
flags that agree with settings, skip lists, interruptions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from fakes import fake_preprocessed
from test_data_voxceleb import make_dataset

from vfcross.workflows.cli import main
from vfcross.data.manifest import read_manifest, write_manifest

REPO = Path(__file__).resolve().parents[1]


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
    ("nosuch=1", "nosuch: no configuration field of that name"),
    ("face.nosuch=1", "face.nosuch: no configuration field of that name"),
    ("nosection.size=1", "nosection.size: no configuration section 'nosection'"),
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


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``vfcross argv`` in this process: (exit status, stdout, stderr)."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("setting, message", [
    ("backbone.loop.epochs=five", "backbone.loop.epochs: expected an integer, got 'five'"),
    ("backbone.loop.epochs=-3", "backbone.loop.epochs: must be at least 1, got -3"),
    ("backbone.identities_per_batch=0", "backbone.identities_per_batch: must be at least 2"),
    ("backbone.spectrogram_input=raw", "backbone.spectrogram_input: 'raw' is not allowed; choose one of 'image'"),
    ("backbone.epochz=3", "backbone.epochz: no configuration field of that name"),
])
def test_a_bad_setting_is_one_line_before_any_work(capsys, tmp_path, setting, message):
    status, out, err = run_cli(capsys, "train", "--manifest", str(tmp_path / "absent.csv"), "--out",
                               str(tmp_path / "run"), "--preset", "smoke", "--set", setting)
    assert status == 2 and out == ""
    assert err.startswith(f"vfcross train: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_flags_set_their_settings_and_must_agree_with_set(capsys, tmp_path):
    status, _, err = run_cli(capsys, "preprocess", "--preset", "smoke", "--root", str(tmp_path), "--splits", "a.txt",
                             "--set", "splits_file=b.txt")
    assert status == 2 and "--splits a.txt and --set splits_file=b.txt disagree" in err


def test_ingest_saves_its_skip_list_and_names_the_first_skips(capsys, tmp_path):
    root = make_dataset(tmp_path / "d", ["id00001\tAnn_A\tf\tUK\tdev", "id00002\tBob_B\tm\tUSA\tdev"],
                        voices={"id00001": 1, "id00002": 1, "id00003": 2}, faces={"Ann_A": 1, "Bob_B": 1})
    status, out, _ = run_cli(capsys, "ingest", "--root", str(root), "--out", str(tmp_path / "m.csv"))
    assert status == 0
    skipped = pd.read_csv(tmp_path / "m_skipped.csv")
    assert skipped.reason.tolist() == ["no meta row for identity"] * 2
    assert f"skipped 2 file(s): {skipped.path[0]} (no meta row for identity)" in out
    assert f"every skipped file with its reason: {tmp_path / 'm_skipped.csv'}" in out


def test_an_empty_dataset_is_an_error(capsys, tmp_path):
    root = make_dataset(tmp_path / "d", ["id00001\tAnn_A\tf\tUK\tdev"], voices={}, faces={})
    (root / "wav").mkdir()
    status, _, err = run_cli(capsys, "ingest", "--root", str(root), "--out", str(tmp_path / "m.csv"))
    assert status == 2 and "no identity with both voice and face samples was found" in err


def test_training_again_under_other_settings_is_refused(capsys, tmp_path):
    manifest = write_manifest(fake_preprocessed(tmp_path, {"train": 3, "val": 2}), tmp_path / "m.csv")
    base = ["train", "--manifest", str(manifest), "--out", str(tmp_path / "run"), "--preset", "smoke",
            "--set", "backbone.voice_crop_frames=50"]
    assert run_cli(capsys, *base)[0] == 0
    status, _, err = run_cli(capsys, *base, "--set", "backbone.dropout=0.5")
    assert status == 2
    assert "it was trained from other settings or data (backbone.dropout: 0.2 -> 0.5)" in err and "--no-resume" in err
    assert run_cli(capsys, *base, "--set", "backbone.dropout=0.5", "--no-resume")[0] == 0


# --- interrupting and killing `vfcross preprocess` ---------------------------------------------------

#: `vfcross preprocess` with helper processes forced on, even for the small real slice, and every clip
#: made in the main process slowed down, so that the command is still at work when the test stops it.
#: Ctrl-C is given its default handling first: a command started in the background by a
#: non-interactive shell (`make test &`, nohup) inherits SIGINT ignored, as POSIX has it, and Python
#: keeps it so; the test is about a command run in a terminal.
_POOLED_CLI = ("import signal, sys, time, vfcross.preprocess.run as run; "
               "signal.signal(signal.SIGINT, signal.default_int_handler); run._MIN_POOL_SECONDS = 0.0; "
               "speech = run.speech; run.speech = lambda *a: (time.sleep(0.5), speech(*a))[1]; "
               "from vfcross.workflows.cli import main; sys.exit(main(sys.argv[1:]))")


def _start_preprocess(shared_data: Path, work: Path) -> subprocess.Popen:
    """`vfcross preprocess` of the real slice by three processes (two helpers), in its own process group."""
    cmd = [sys.executable, "-c", _POOLED_CLI, "preprocess", "--preset", "smoke",
           "--root", str(shared_data / "voxceleb1-mini"),
           "--splits", str(shared_data / "voxceleb1-lists" / "identity_splits.txt"),
           "--set", f"work_dir={work}", "--set", "preprocess.workers=3"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _pool_workers(parent: int, count: int, timeout: float = 120.0) -> list[int]:
    """Wait until ``parent`` has ``count`` multiprocessing helpers past their start; their pids.

    A helper is past its start once its die-with-parent watchdog thread runs
    (a fresh Python process has one thread).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes()
                started = len(list((stat.parent / "task").iterdir())) > 1
            except OSError:
                continue
            if int(fields[1]) == parent and b"spawn_main" in cmdline and b"resource_tracker" not in cmdline \
                    and started:
                workers.append(int(stat.parent.name))
        if len(workers) >= count:
            return workers
        time.sleep(0.1)
    raise AssertionError(f"process {parent} started no {count} workers within {timeout} s")


def _wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    """The pids of ``pids`` still alive after ``timeout`` seconds (waiting for them to go)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


@pytest.mark.slow
def test_ctrl_c_prints_one_line_and_stops_the_workers(shared_data, tmp_path):
    proc = _start_preprocess(shared_data, tmp_path / "work")
    workers = _pool_workers(proc.pid, 2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == \
        "vfcross preprocess: interrupted; finished work is kept, run the same command to resume"
    assert _wait_gone(workers) == []


@pytest.mark.slow
def test_killing_preprocess_leaves_no_worker_alive(shared_data, tmp_path):
    proc = _start_preprocess(shared_data, tmp_path / "work")
    workers = _pool_workers(proc.pid, 2)
    proc.kill()
    proc.communicate(timeout=60)
    assert _wait_gone(workers, timeout=3.0) == []  # the kernel kills them with their parent
