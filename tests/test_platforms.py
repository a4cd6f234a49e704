"""Every machine a researcher uses: no Linux-only call without a tested fallback, the device choice and its
fallbacks, and executed notebooks whose paths hold on another machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
from fakes import fake_preprocessed

from vfcross import training
from vfcross.backbone.task import BackboneTask
from vfcross.config import BackboneConfig, FaceConfig, LoopConfig
from vfcross.reporting.session import NOTEBOOK_DIR
from vfcross.training import autocast_dtype, device, make_optimizer, train
from vfcross.workflows import pipeline
from vfcross.workflows.cost import measure_training_step

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
LINUX = sys.platform.startswith("linux")
#: An absolute path as nbval's sanitizer has it (tests/nbval_sanitize.cfg): two components or more, not after
#: a word character, a dot or a slash (so ``../../tmp/x`` is relative).
ABSOLUTE = re.compile(r"(?<![\w.~/])(?:/[\w.@+-]+){2,}/?|\b[A-Za-z]:\\")

# --- no Linux-only call without a fallback -------------------------------------------------------------

#: Allocates 200 MiB inside a PeakMemory block in a fresh process and prints what it read.
_PEAK = """
import json, sys
import numpy as np
from vfcross import processes
if sys.argv[1] == "no-getrusage":  # as on Windows
    processes._max_rss = lambda: None
with processes.PeakMemory() as peak:
    block = np.ones(200 * 2**20 // 8)
    block.sum()
    del block
print(json.dumps({"reading": peak.reading, "mb": peak.mb}))
"""


#: Runs a command as the child of a small process. On Linux a process's lifetime peak (``ru_maxrss``)
#: starts at its parent's resident size (fork counts the shared pages, exec keeps the mark), so a child
#: of pytest's large process cannot read its own peak that way, and PeakMemory samples instead.
_SMALL_PARENT = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


@pytest.mark.parametrize("portable, mode, small_parent, reading", [
    pytest.param("", "", False, "VmHWM", marks=pytest.mark.skipif(not LINUX, reason="Linux /proc")),
    pytest.param("1", "", True, "ru_maxrss", marks=pytest.mark.skipif(sys.platform == "win32", reason="Unix")),
    ("1", "", False, "sampled"),  # the lifetime peak at the start is pytest's: not this block's
    ("1", "no-getrusage", True, "sampled")])
def test_every_peak_memory_reading_sees_a_known_allocation(portable, mode, small_parent, reading):
    env = {**ENV, "VFCROSS_PORTABLE": portable}
    command = [sys.executable, "-c", _PEAK, mode]
    command = [sys.executable, "-c", _SMALL_PARENT, *command] if small_parent else command
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout)
    assert measured["reading"] == reading
    assert 195 < measured["mb"] < 240, measured


def test_the_cost_measurement_runs_without_proc_and_agrees_with_it(monkeypatch):
    """Single vs dual cost (notebook 02) without /proc: the portable reading is within 15% of the kernel's."""
    cfg = BackboneConfig(input_size=75, identities_per_batch=2, samples_per_identity=1, voice_crop_frames=20,
                         loop=LoopConfig(amp=False))
    monkeypatch.setenv("VFCROSS_PORTABLE", "1")  # reaches the measuring process, which is spawned afresh
    portable = measure_training_step(cfg, 4, steps=1, freq_bins=20)
    assert portable["memory_reading"] in ("ru_maxrss", "sampled") and portable["step_time_s"] > 0
    if LINUX:
        monkeypatch.delenv("VFCROSS_PORTABLE")
        exact = measure_training_step(cfg, 4, steps=1, freq_bins=20)
        assert exact["memory_reading"] == "VmHWM"
        assert portable["peak_memory_mb"] == pytest.approx(exact["peak_memory_mb"], rel=0.15)
        assert exact["params"] == portable["params"]


#: A worker pool whose C library has no prctl (as on macOS), noting when asked for one; prints the
#: workers' pids and their answers, then waits to be killed.
_POOL = """
import ctypes, os, sys, time
from pathlib import Path

class NoPrctl:
    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        Path(sys.argv[1]).write_text(name)
        raise AttributeError(name)

ctypes.CDLL = NoPrctl  # also in the spawned workers, which run this file's top level

from vfcross.processes import worker_pool

def square(x):
    time.sleep(0.05)
    return os.getpid(), x * x

if __name__ == "__main__":
    with worker_pool(2, "spawn") as pool:
        out = pool.map(square, range(8))
        print(json.dumps({"pids": sorted({p for p, _ in out}), "squares": [s for _, s in out]}), flush=True)
        time.sleep(300)
""".replace("import ctypes, os", "import json, ctypes, os")


def _pool(tmp_path: Path, portable: str) -> tuple[subprocess.Popen, dict, Path]:
    """Start :data:`_POOL` (a file: spawned workers import their functions from it); its first line."""
    marker, script = tmp_path / f"prctl-asked{portable}", tmp_path / "pool.py"
    script.write_text(_POOL)
    proc = subprocess.Popen([sys.executable, str(script), str(marker)], stdout=subprocess.PIPE, text=True,
                            env={**ENV, "VFCROSS_PORTABLE": portable})
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(120)
    if not line or not line[0]:
        proc.kill()
        pytest.fail("the pool printed nothing within 120 s")
    return proc, json.loads(line[0]), marker


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(map(_alive, pids)):
        time.sleep(0.1)
    return not any(map(_alive, pids))


def test_a_worker_pool_without_prctl_works_and_dies_with_its_parent(tmp_path):
    proc, answer, marker = _pool(tmp_path, "1")
    try:
        assert answer["squares"] == [x * x for x in range(8)] and len(answer["pids"]) >= 1
        proc.kill()  # no Ctrl-C, no clean-up: only the workers' watchdog can end them
        proc.wait(timeout=30)
        assert _gone(answer["pids"], timeout=5.0), "a worker outlived its killed parent"
    finally:
        proc.kill()
    assert not marker.exists(), "prctl was asked for although Linux-only calls were off"
    if LINUX:  # the check can fail: on Linux, by default, the workers do ask for prctl
        proc, _, marker = _pool(tmp_path, "")
        proc.kill()
        proc.wait(timeout=30)
        assert marker.read_text() == "prctl"


# --- devices: CUDA, MPS, CPU ---------------------------------------------------------------------------


def _machine(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.delenv("VFCROSS_DEVICE", raising=False)
    monkeypatch.setattr(training, "_NOTED", set())


def test_the_device_is_cuda_then_mps_then_the_cpu_unless_forced(monkeypatch):
    _machine(monkeypatch, cuda=True, mps=True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert device() == torch.device("cuda", 1)  # torchrun's local GPU
    _machine(monkeypatch, cuda=False, mps=True)
    assert device() == torch.device("mps")
    _machine(monkeypatch, cuda=False, mps=False)
    assert device() == torch.device("cpu")
    _machine(monkeypatch, cuda=True, mps=False)
    for forced, expected in (("cpu", "cpu"), ("cuda", "cuda:1"), ("cuda:3", "cuda:3")):
        monkeypatch.setenv("VFCROSS_DEVICE", forced)
        assert device() == torch.device(expected)
    monkeypatch.setenv("VFCROSS_DEVICE", "mps")
    with pytest.raises(ValueError, match="^VFCROSS_DEVICE=mps: torch sees no mps device here$"):
        device()
    monkeypatch.setenv("VFCROSS_DEVICE", "tpu")
    with pytest.raises(ValueError, match="choose cpu, cuda, cuda:N or mps"):
        device()


def test_cuda_precision_follows_the_card_and_mps_falls_back_to_float32_with_one_note(monkeypatch, capsys):
    _machine(monkeypatch, cuda=True, mps=True)
    monkeypatch.setattr(torch.version, "hip", None)
    for capability, dtype in (((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda dev, c=capability: c)
        assert autocast_dtype(True, torch.device("cuda", 0)) == dtype  # T4 float16, A100 and H100 bfloat16
    assert autocast_dtype(False, torch.device("cuda", 0)) is None
    assert autocast_dtype(True, torch.device("mps")) is None and autocast_dtype(True, torch.device("mps")) is None
    notes = capsys.readouterr().err.strip().splitlines()
    assert notes == ["note: mixed precision does not run on mps in vfcross; float32 is used instead"]  # once


def test_mtcnn_on_mps_and_an_unsupported_fused_adam_fall_back_through_the_one_table(monkeypatch, capsys):
    from vfcross.preprocess.faces import FaceDetector

    _machine(monkeypatch, cuda=False, mps=True)
    detector = FaceDetector(FaceConfig(), device="mps")  # vfcross.load(dev="mps") asks for this
    assert torch.device(detector._mtcnn.device).type == "cpu"
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert make_optimizer(params, LoopConfig()).defaults["fused"] is True  # fused Adam runs on the CPU
    monkeypatch.setitem(training.FALLBACKS, ("cpu", "fused Adam"), "Adam without fusion")
    assert make_optimizer(params, LoopConfig()).defaults["fused"] is False
    assert capsys.readouterr().err.strip().splitlines() == [
        "note: MTCNN does not run on mps in vfcross; the CPU is used instead",
        "note: fused Adam does not run on cpu in vfcross; Adam without fusion is used instead"]


def test_a_run_records_the_precision_it_trained_in(tmp_path):
    """Not the machine's capability: an amp=false run on a CPU with native bfloat16 trained in float32."""
    manifest = fake_preprocessed(tmp_path / "data", {"train": 2}, n_face=2, n_voice=2)
    for amp in (True, False):
        cfg = BackboneConfig(input_size=75, voice_crop_frames=50, identities_per_batch=2, samples_per_identity=1,
                             holdout_fraction=0.0, loop=LoopConfig(epochs=1, max_batches_per_epoch=1, amp=amp))
        history = train(BackboneTask(manifest, cfg), cfg.loop, tmp_path / f"run-{amp}", progress=False)
        expected = training.dtype_name(autocast_dtype(amp, device()))
        assert history[0]["precision"] == expected and json.loads(
            (tmp_path / f"run-{amp}" / training.METRICS).read_text())["precision"] == expected
    assert expected == "float32"


# --- executed notebooks that run anywhere ----------------------------------------------------------------


def _strings(item, skip=("image/png",)):
    """Every string of a notebook's JSON, but images."""
    if isinstance(item, dict):
        for key, value in item.items():
            if key not in skip:
                yield from _strings(value)
    elif isinstance(item, list):
        for value in item:
            yield from _strings(value)
    elif isinstance(item, str):
        yield item


@pytest.mark.slow
def test_a_smoke_step_runs_without_linux_calls_and_publishes_no_absolute_path(tmp_path, monkeypatch):
    """Notebook 01 of the smoke preset (synthetic population by a worker pool, preprocessing) without /proc
    and prctl; its executed copy's parameters are relative to notebooks/ and point at the published files."""
    notebooks = pipeline.notebooks
    monkeypatch.setattr(pipeline, "notebooks", lambda folder: notebooks(folder)[:1])
    monkeypatch.setenv("VFCROSS_PORTABLE", "1")
    reports, work = tmp_path / "reports", tmp_path / "work"
    pipeline.reproduce("smoke", reports, work, overrides={"preprocess.workers": 2, "synth.workers": 2},
                       say=lambda line: None)
    executed = json.loads((reports / "notebooks" / "01_preprocess.ipynb").read_text())
    parameters = executed["metadata"]["papermill"]["parameters"]
    injected = next(c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    for name, published in (("work_dir", work), ("reports_dir", reports)):
        assert not Path(parameters[name]).is_absolute()
        assert (NOTEBOOK_DIR / parameters[name]).resolve() == published.resolve()
        assert f'{name} = "{parameters[name]}"' in "".join(injected["source"])
    assert (reports / "summary_parts" / "01_data.json").is_file()
    texts = [*_strings(executed), *(path.read_text() for path in reports.rglob("*")
                                    if path.suffix in (".json", ".md", ".csv") and path.parent.name != "notebooks")]
    found = {s for text in texts for s in ABSOLUTE.findall(text)}
    machine = [s for s in found if Path(*Path(s).parts[:3]).exists()]  # not an example such as /path/to/voxceleb1
    assert not machine, f"absolute paths of this machine in the published reports: {sorted(machine)[:5]}"
    assert not any("reports.new" in text for text in _strings(executed))
