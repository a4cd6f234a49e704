"""What vfcross does on a CUDA card, in one JSON file: run it whenever a GPU machine is at hand.

    bash benchmarks/gpu_check.sh [--out gpu_check.json]     # from the repository root, no network needed

Measures (docs/platforms.md defines every key of the JSON):

* the device, torch, CUDA and cuDNN versions;
* the ``paper`` preset's backbone training step (256x256, 45 identities x (1 face + 1 voice), Adam):
  seconds and peak memory in float32, float16 (loss scaling) and bfloat16, with ``cudnn.benchmark``
  on and off; ``step_time_s[dtype]`` is what ``vfcross plan`` reads as the reference GPU's rate;
* the training batches' loading rate (samples/s, :func:`batch_source`) against that step;
* MTCNN images/s on the GPU and the CPU, and how far apart their landmarks fall, on the real slice's
  frames (``../shared/data/voxceleb1-mini``) or, where it is absent, on a small synthetic population;
* a 1-process ``torchrun`` smoke run of ``vfcross train``.

It takes at most about 8 minutes on one GPU. Without a GPU it says "no GPU" in one line, measures what a
CPU can in a few minutes (a smaller batch, no float16), writes the JSON and exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from vfcross.backbone.objective import BackboneObjective
from vfcross.backbone.task import BackboneTask
from vfcross.config import RunConfig, override, preset
from vfcross.data.dataset import prepare_dataset
from vfcross.io import atomic_write
from vfcross.preprocess.faces import FaceDetector, open_rgb
from vfcross.preprocess.run import run_preprocessing
from vfcross.processes import PeakMemory
from vfcross.training import dtype_name, make_optimizer, precision

REPO = Path(__file__).resolve().parents[1]
SLICE = REPO.parent / "shared" / "data" / "voxceleb1-mini"
SPLITS = REPO.parent / "shared" / "data" / "voxceleb1-lists" / "identity_splits.txt"
DTYPES = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


def device_record(dev: torch.device) -> dict:
    """The device and the versions the numbers depend on."""
    cuda = dev.type == "cuda"
    props = torch.cuda.get_device_properties(dev) if cuda else None
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "") if Path("/proc/cpuinfo").is_file() else ""
    return {"type": dev.type, "name": props.name if cuda else cpu or platform.processor() or platform.machine(),
            "compute_capability": f"{props.major}.{props.minor}" if cuda else None,
            "memory_gb": round(props.total_memory / 2**30, 1) if cuda else None, "cpu_cores": os.cpu_count(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "platform": platform.platform(), "python": platform.python_version()}


def training_step(*args) -> dict:
    """:func:`_training_step` in a fresh spawned process, so that its peak memory is its own."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_training_step, args)


def _training_step(cfg: RunConfig, dev: torch.device, dtype: torch.dtype | None, benchmark: bool,
                   steps: int, identities: int) -> dict:
    """Median seconds and peak memory of ``steps`` backbone training steps (random inputs of the preset's shape)."""
    warmup = 2 if dev.type == "cuda" else 1  # cudnn.benchmark tunes in the first steps
    b = dataclasses.replace(cfg.backbone, identities_per_batch=identities)
    torch.backends.cudnn.benchmark = benchmark
    torch.manual_seed(0)
    n = b.identities_per_batch * b.samples_per_identity
    with PeakMemory() as host:
        objective = BackboneObjective(b, 901).to(dev).train()  # VoxCeleb1's 901 training identities
        optimizer = make_optimizer(list(objective.parameters()), b.loop)
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        labels = torch.arange(n, device=dev)
        faces = torch.randn(n, 3, b.input_size, b.input_size, device=dev)
        voices = torch.randn(n, 1, cfg.voice.frequency_rows, b.voice_crop_frames, device=dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        times = []
        for _ in range(warmup + steps):
            t0 = time.perf_counter()
            with precision(dev, dtype):
                loss = objective(faces, voices, labels, labels)["loss"]
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else host.mb
    return {"dtype": dtype_name(dtype), "cudnn_benchmark": benchmark if dev.type == "cuda" else None,
            "identities_per_batch": identities, "batch": 2 * n, "steps": steps, "warmup_steps": warmup,
            "step_time_s": round(float(np.median(times[warmup:])), 4), "peak_memory_mb": round(peak, 1),
            "memory_reading": "cuda max_memory_allocated" if dev.type == "cuda" else host.reading}


#: What :func:`batch_source` reads through (recorded in the JSON).
LOADER = "BackboneTask.batches + BackboneTask.inputs, in this process (no DataLoader yet)"


def batch_source(manifest, cfg: RunConfig) -> Iterator[tuple[torch.Tensor, ...]]:
    """The training batches as the training loop receives them, on the CPU (:data:`LOADER`): the one place
    to repoint when the loop reads through a DataLoader."""
    task = BackboneTask(manifest, cfg.backbone)
    for batch in task.batches(0, np.random.default_rng(0)):
        yield task.inputs(batch, torch.device("cpu"))


def loader_rate(manifest, cfg: RunConfig, seconds: float = 15.0) -> dict:
    """Samples/s of :func:`batch_source` over at most ``seconds`` (epochs repeated as needed)."""
    samples, batches, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for faces, voices, *_ in batch_source(manifest, cfg):
            samples, batches = samples + len(faces) + len(voices), batches + 1
            if time.perf_counter() - t0 >= seconds:
                break
    elapsed = time.perf_counter() - t0
    return {"samples_per_s": round(samples / elapsed, 1), "batches": batches, "seconds": round(elapsed, 1),
            "identities_per_batch": cfg.backbone.identities_per_batch, "source": LOADER}


def mtcnn_check(paths: list[str], cfg: RunConfig, dev: torch.device, images: int) -> dict:
    """MTCNN images/s on the CPU (and on ``dev`` when it is a GPU), and their landmarks' distances in pixels."""
    frames = [open_rgb(p) for p in paths]
    frames = [frames[i % len(frames)] for i in range(images)]
    out, found = {"images": len(frames), "distinct_frames": len(paths)}, {}
    for name in ["cpu"] + ([str(dev)] if dev.type != "cpu" else []):
        detector = FaceDetector(cfg.face, name)
        detector.detect(frames[:2])  # warm-up
        t0 = time.perf_counter()
        found[name] = detector.detect(frames)
        out[f"{name.split(':')[0]}_images_per_s"] = round(len(frames) / (time.perf_counter() - t0), 1)
        out[f"{name.split(':')[0]}_detected"] = sum(d is not None for d in found[name])
    if len(found) == 2:
        (_, a), (_, b) = found.items()
        both = [(x, y) for x, y in zip(a[: len(paths)], b[: len(paths)]) if x is not None and y is not None]
        dist = np.array([np.linalg.norm(x.landmarks - y.landmarks, axis=1).max() for x, y in both])
        out["landmark_max_px"] = {"frames": len(both), "median": round(float(np.median(dist)), 3) if len(dist) else None,
                                  "p95": round(float(np.percentile(dist, 95)), 3) if len(dist) else None,
                                  "max": round(float(dist.max()), 3) if len(dist) else None,
                                  "detected_by_one_only": sum((x is None) != (y is None) for x, y in
                                                              zip(a[: len(paths)], b[: len(paths)]))}
    return out


def torchrun_smoke(manifest_path: Path, out: Path, timeout: int = 240) -> dict:
    """``torchrun --nproc_per_node 1`` of ``vfcross train`` (smoke preset, one epoch of two batches)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "-m", "vfcross.workflows.cli",
           "train", "--manifest", str(manifest_path), "--out", str(out), "--preset", "smoke"]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    except subprocess.TimeoutExpired:
        return {"ok": False, "seconds": timeout, "returncode": None, "tail": f"timed out after {timeout} s"}
    record = (out / "metrics.jsonl").read_text().splitlines()[-1] if (out / "metrics.jsonl").exists() else ""
    return {"ok": done.returncode == 0 and bool(record), "seconds": round(time.perf_counter() - t0, 1),
            "returncode": done.returncode, "last_epoch": json.loads(record) if record else None,
            "tail": (done.stderr or done.stdout)[-1500:] if done.returncode else ""}


def data_config(work: Path, root: Path | None) -> RunConfig:
    """The paper preset's preprocessing on the real slice, or on the smoke preset's synthetic population."""
    cfg = override(preset("paper"), {"work_dir": str(work), "preprocess.workers": max(1, min(4, os.cpu_count() or 1))})
    if root is not None:
        return override(cfg, {"data_root": str(root), "splits_file": str(SPLITS) if SPLITS.exists() else ""})
    return dataclasses.replace(cfg, synth=preset("smoke").synth)


def main(argv: list[str] | None = None) -> int:
    """Measure, print one line per stage, write the JSON; exit 0 (a failed stage is recorded, not raised)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gpu_check.json", help="JSON file to write")
    parser.add_argument("--root", default=str(SLICE) if SLICE.is_dir() else "",
                        help="VoxCeleb1-layout folder for MTCNN and the loader (default: the real slice if present, "
                             "else a synthetic population)")
    parser.add_argument("--steps", type=int, default=0, help="timed training steps (default 10 on a GPU, 2 on a CPU)")
    parser.add_argument("--identities", type=int, default=0,
                        help="identities per measured batch (default: the paper's 45 on a GPU, 4 on a CPU)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    dev = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    gpu = dev.type == "cuda"
    record: dict = {"schema": 1, "device": device_record(dev), "gpu": gpu}
    if not gpu:
        record["note"] = "no GPU: torch sees no CUDA device; measured what a CPU can (smaller batch, no float16)"
        print("no GPU: torch sees no CUDA device here; measuring what a CPU can and writing the JSON", flush=True)
    paper = preset("paper")
    identities = args.identities or (paper.backbone.identities_per_batch if gpu else 4)
    steps = args.steps or (10 if gpu else 2)

    def stage(name: str, fn, *fn_args):
        t0 = time.perf_counter()
        try:
            record[name] = fn(*fn_args)
        except Exception as err:  # a stage that fails is recorded and the check goes on
            record[name] = {"error": f"{type(err).__name__}: {err}"}
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
        return record[name]

    def steps_table() -> list[dict]:
        rows = []
        for name, dtype in DTYPES.items():
            native = gpu and (name != "bfloat16" or torch.cuda.get_device_capability(dev) >= (8, 0))
            if not gpu and name != "float16" and (name == "float32" or torch.ops.mkldnn._is_mkldnn_bf16_supported()):
                native = True
            for benchmark in ((True, False) if gpu else (False,)):
                rows.append(training_step(paper, dev, dtype, benchmark, steps, identities) if native else
                            {"dtype": name, "cudnn_benchmark": benchmark if gpu else None,
                             "skipped": "not native on this device"})
        return rows

    rows = stage("step", steps_table)
    measured = [r for r in rows if "step_time_s" in r] if isinstance(rows, list) else []
    full = identities == paper.backbone.identities_per_batch  # only the paper's own batch is a reference rate
    record["step_time_s"] = {r["dtype"]: r["step_time_s"] for r in measured
                             if full and r["cudnn_benchmark"] in (True, None)}
    with tempfile.TemporaryDirectory(prefix="vfcross-gpu-check-") as scratch:
        cfg = data_config(Path(scratch), Path(args.root) if args.root else None)
        record["data"] = {"source": "real slice" if args.root else "synthetic population (smoke preset)",
                          "root": Path(args.root).name if args.root else None}
        dataset = prepare_dataset(cfg, progress=False, evaluation=False)
        faces = list(dataset.manifest[dataset.manifest.modality == "face"].path)
        stage("mtcnn", mtcnn_check, faces, cfg, dev, 256 if gpu else 48)
        result = stage("preprocess", lambda: run_preprocessing(dataset.manifest, cfg, Path(scratch) / "report",
                                                               progress=False))
        if not isinstance(result, dict):
            record["preprocess"] = {"samples": len(result.manifest), "seconds": round(result.seconds, 1)}
            trained = result.manifest.loc[result.manifest.split == "train", "identity"].nunique()
            loader = stage("loader", loader_rate, result.manifest,
                           override(cfg, {"backbone.identities_per_batch": min(identities, trained)}))
            if measured and "samples_per_s" in loader:  # what the fastest measured step consumes
                loader["step_samples_per_s"] = round(max(r["batch"] / r["step_time_s"] for r in measured), 1)
                loader["keeps_up"] = loader["samples_per_s"] >= loader["step_samples_per_s"]
            stage("torchrun", torchrun_smoke, cfg.manifest_path, Path(scratch) / "run")
    record["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    atomic_write(out, lambda stream: stream.write((json.dumps(record, indent=2) + "\n").encode()))
    print(f"written {out} in {record['seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
