"""What a run will cost before it starts (``vfcross plan``, printed first by ``reproduce``): the dataset counted
(nothing decoded), a few steps timed here, the run projected stage by stage. The model: ``docs/voxceleb_scale.md``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import soundfile as sf
import torch
from torch.utils.flop_counter import FlopCounterMode

from vfcross.backbone.embedding import all_pairs_auc
from vfcross.backbone.objective import BackboneObjective
from vfcross.backbone.sampler import utterance_offsets
from vfcross.config import TABLE6_VARIANTS, RunConfig
from vfcross.data.synthetic.population import sample_population
from vfcross.data.voxceleb import SPLIT_CODES, scan_dataset
from vfcross.fusion.task import FusionObjective
from vfcross.scores import exact_pairs
from vfcross.reporting.tables import markdown
from vfcross.preprocess.cache import bytes_per_sample
from vfcross.preprocess.faces import FaceDetector, crop_faces, open_rgb, single_torch_thread
from vfcross.preprocess.voices import process_voice
from vfcross.training import autocast_dtype, device, make_optimizer, planned_schedules, precision

SPLITS = ("train", "val", "test")
#: One reference GPU (A100/H100 class) beside 16 CPU cores: estimates until ``benchmarks/gpu_check.py`` measures one.
REFERENCE_GPU = {"source": "estimate", "flops_per_s": 40e12, "mtcnn_frames_per_s": 300.0, "fusion_step_s": 1e-3,
                 "cpu_cores": 16}
#: Host memory (bytes): a process with torch imported; a manifest row; CPU training per input pixel of a batch
#: image; an ``all_pairs_auc`` pair (up to ``eval.memory_gb``); an MTCNN worker (docs/voxceleb_scale.md).
PROCESS_BYTES, ROW_BYTES, ACTIVATION_BYTES_PER_PIXEL = 0.65e9, 500, 1800
AUC_PAIR_BYTES, MTCNN_WORKER_BYTES = 80, 0.4e9
#: A synthetic clip's mean seconds; single-core seconds per face and per second of audio (for a population not yet
#: written).
SYNTH_CLIP_SECONDS, TYPICAL_FACE_S, TYPICAL_VOICE_S_PER_S = 5.3, 0.02, 0.002
_GB = 2**30


def validated(split: dict, modality: str, loop, share: float = 1.0) -> float:
    """Samples of ``modality`` a validation on ``split``'s counts embeds: ``share`` of each identity's, at most
    ``loop.val_voices``/``val_faces`` a person (0 = all)."""
    n, limit = split["identities"], getattr(loop, f"val_{modality}s")
    per = share * split[f"{modality}s"] / max(1, n)
    return n * (min(per, limit) if limit else per)


def validation_work(cfg: RunConfig, counts: dict) -> tuple[float, float, float]:
    """Faces and voices one backbone validation embeds (its fixed subsets of the held-out training samples and of
    the validation samples), and the voice-face pairs its AUC scores."""
    loop, held, (train, val) = cfg.backbone.loop, cfg.backbone.holdout_fraction, (counts["train"], counts["val"])
    faces, voices = (validated(val, m, loop) for m in ("face", "voice"))
    return (validated(train, "face", loop, held) + faces, validated(train, "voice", loop, held) + voices,
            faces * voices)


def count_dataset(cfg: RunConfig, manifest: pd.DataFrame | None = None) -> tuple[dict, dict, pd.DataFrame | None]:
    """(counts by split, facts of the data, manifest) of ``cfg``'s dataset (or ``manifest``), nothing decoded; a
    synthetic population not yet written is counted from its settings (manifest None)."""
    if manifest is None and not cfg.dataset_root.is_dir():
        s, people = cfg.synth, Counter(SPLIT_CODES[str(p.split)] for p in sample_population(cfg.synth))
        shapes = {split: (people.get(split, 0), *s.samples(split != "train")) for split in SPLITS}
        counts = {split: {"identities": n, "voices": n * v * c * max(1, len(s.languages)),
                          "faces": n * v * f * max(1, len(s.languages))} for split, (n, v, f, c) in shapes.items()}
        return counts, {"mean_voice_s": SYNTH_CLIP_SECONDS, "source_gb": None}, None
    if manifest is None:
        manifest, _ = scan_dataset(cfg.dataset_root, cfg.splits_file or None, cfg.skip_unlisted_identities)
    counts = {split: {"identities": 0, "voices": 0, "faces": 0} for split in SPLITS}
    for (split, modality), group in manifest.groupby([manifest["split"].fillna("none"), "modality"]):
        part = counts.setdefault(split, {"identities": 0, "voices": 0, "faces": 0})
        part.update({f"{modality}s": len(group), "identities": group["identity"].nunique()})
    sizes = np.fromiter((os.stat(p).st_size for p in manifest["path"]), dtype=np.int64, count=len(manifest))
    voices = (manifest["modality"] == "voice").to_numpy()
    sample = manifest.loc[voices, "path"].sample(min(32, voices.sum()), random_state=0)  # wav headers: s per byte
    per_byte = sum(sf.info(p).duration for p in sample) / max(1, sum(os.stat(p).st_size for p in sample))
    return counts, {"mean_voice_s": per_byte * sizes[voices].mean(), "source_gb": sizes.sum() / _GB}, manifest


def list_rows(lists: str | os.PathLike | None) -> int:
    """Voice-face comparisons the official lists in ``lists`` hold (verification pairs, matching candidates)."""
    if not lists:
        return 0
    return (sum(len(p.read_text().splitlines()) - 1 for p in Path(lists).glob("veriflist_test_*unseen*"))
            + sum(len(line.split()) - 1 for p in Path(lists).glob("matching_*.csv") for line in p.open()))


def measure_here(cfg: RunConfig, manifest: pd.DataFrame | None, samples: int = 6) -> dict:
    """Rates measured on this machine: a few training steps, MTCNN frames, spectrograms, fusion steps, an AUC."""
    return {**_backbone_rates(cfg), **_preprocess_rates(cfg, manifest, samples), **_fusion_and_auc_rates(cfg)}


def _timed(step, repeats: int, warm_up: bool = True) -> float:
    """Mean seconds of ``step()`` over ``repeats`` calls (after one warm-up call)."""
    if warm_up:
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def _backbone_rates(cfg: RunConfig) -> dict:
    """Seconds of a training step (fixed, and per image), of a forward pass per image; the network's size, FLOPs."""
    torch.manual_seed(0)
    dev, b, k = device(), cfg.backbone, cfg.backbone.samples_per_identity
    objective, sync = BackboneObjective(b, 4).to(dev), torch.cuda.synchronize if dev.type == "cuda" else lambda: None
    size = b.input_size
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        objective.net.eval().features(torch.zeros(1, 3, size, size, device=dev), "face")
    optimizer = make_optimizer(list(objective.parameters()), b.loop)
    faces = torch.randn(4 * k, 3, size, size, device=dev)
    voices = torch.randn(4 * k, 1, cfg.voice.frequency_rows, b.voice_crop_frames, device=dev)
    labels = torch.arange(4 * k, device=dev) % 4

    def train_step(n: int) -> None:
        with precision(dev, autocast_dtype(b.loop.amp, dev)):
            loss = objective(faces[:n], voices[:n], labels[:n], labels[:n])["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sync()

    def forward() -> None:
        with torch.no_grad(), precision(dev, autocast_dtype(b.loop.amp, dev)):
            objective.net.features(faces, "face")
        sync()

    objective.train()
    times = {2 * k: [], 4 * k: []}
    for n in times:
        train_step(n)  # warm-up of each shape
    while not times[4 * k] or (len(times[4 * k]) < 2 and times[4 * k][0] < 1.0):  # cheap steps are timed twice
        for n in times:
            times[n].append(_timed(lambda: train_step(n), 1, warm_up=False))
    small, large = min(times[2 * k]), min(times[4 * k])
    per_image = max((large - small) / (4 * k), large / (16 * k))  # at least half of a step's time per image
    objective.eval()
    return {"device": dev.type, "train_step_s": max(0.0, large - 8 * k * per_image), "train_image_s": per_image,
            "forward_image_s": _timed(forward, 1) / (4 * k), "params": sum(p.numel() for p in objective.net.parameters()),
            "forward_gflops": counter.get_total_flops() / 1e9}


def _preprocess_rates(cfg: RunConfig, manifest: pd.DataFrame | None, samples: int) -> dict:
    """Single-core seconds per face (MTCNN + alignment) and per second of audio, on a few of the dataset's files."""
    if manifest is None:
        return {"face_s": TYPICAL_FACE_S, "voice_s_per_s": TYPICAL_VOICE_S_PER_S, "preprocess_source": "typical"}
    faces, clips = (manifest.loc[manifest["modality"] == m, "path"].sample(samples, replace=True, random_state=0)
                    .tolist() for m in ("face", "voice"))
    with single_torch_thread():
        detector, images = FaceDetector(cfg.face, "cpu"), [open_rgb(p) for p in faces]
        face_s = _timed(lambda: crop_faces(images, detector), 1) / len(images)
        seconds = _timed(lambda: [process_voice(clip, cfg.voice) for clip in clips], 1, warm_up=False)
        voice_s = seconds / max(1e-3, sum(sf.info(c).duration for c in clips))
    return {"face_s": face_s, "voice_s_per_s": voice_s, "preprocess_source": f"{samples} of its faces and clips"}


def _fusion_and_auc_rates(cfg: RunConfig) -> dict:
    """Seconds of one fusion training step, and of one voice-face pair of a validation AUC."""
    torch.manual_seed(0)
    objective, n = FusionObjective(cfg.fusion, 100), cfg.fusion.batch_size
    optimizer = make_optimizer(list(objective.parameters()), cfg.fusion.loop)
    inputs = torch.randn(n, 512), torch.randn(n, 512), torch.arange(n) % 100

    def step() -> None:
        optimizer.zero_grad()
        objective(*inputs)["loss"].backward()
        optimizer.step()

    table = pd.DataFrame({"modality": ["voice"] * 200 + ["face"] * 1000, "identity": np.arange(1200) % 50})
    vectors = np.random.default_rng(0).standard_normal((1200, 16)).astype(np.float32)
    return {"fusion_step_s": _timed(step, 5), "auc_pair_s": _timed(lambda: all_pairs_auc(vectors, table), 1) / 200_000}


def reference_rates(here: dict, gpu_check: str | os.PathLike | None = None, cfg: RunConfig | None = None) -> dict:
    """The reference GPU's rates: :data:`REFERENCE_GPU`'s estimates, or a ``gpu_check.py`` measurement's
    ``step_time_s[float32 | bfloat16 (backbone.loop.amp)]`` per ``batch`` images (default: the preset's batch)."""
    forward = here["forward_gflops"] * 1e9 / REFERENCE_GPU["flops_per_s"]  # training: forward + backward (2x)
    ref = {**REFERENCE_GPU, "train_step_s": 0.0, "train_image_s": 3 * forward, "forward_image_s": forward}
    if gpu_check:
        dtype = "bfloat16" if cfg.backbone.loop.amp else "float32"
        record = json.loads(Path(gpu_check).read_text())
        seconds = record.get("step_time_s", {}).get(dtype)
        if seconds is None:
            raise ValueError(f"{gpu_check}: no step_time_s[{dtype!r}] (the paper preset's measured step time)")
        per_image = seconds / (record.get("batch") or 2 * cfg.backbone.identities_per_batch
                                  * cfg.backbone.samples_per_identity)
        ref.update(source=f"measured ({gpu_check})", train_image_s=per_image, forward_image_s=per_image / 3)
    return ref


def project(cfg: RunConfig, counts: dict, data: dict, here: dict, ref: dict, lists_rows: int = 0) -> dict:
    """The plan of the run ``reproduce`` makes: ``counts``, ``stages`` and ``total`` (keys of DESIGN.md)."""
    b, f, (tr, va, te) = cfg.backbone, cfg.fusion, (counts[s] for s in SPLITS)
    faces, voices = (sum(c[m] for c in counts.values()) for m in ("faces", "voices"))
    rows, seconds, auc_s, cpu = faces + voices, data["mean_voice_s"], here["auc_pair_s"], here["device"] == "cpu"
    crops = len(utterance_offsets(int(seconds * 1000 / cfg.voice.hop_ms), b.voice_crop_frames))  # test-time crops
    base = PROCESS_BYTES + ROW_BYTES * rows
    activations = cpu * b.input_size**2 * ACTIVATION_BYTES_PER_PIXEL  # host bytes per image in a CPU batch
    stages = []

    def stage(name: str, hours: tuple[float, float], disk: float, ram: float, **extra) -> None:
        stages.append({"name": name, **extra, "hours_here": hours[0] / 3600, "hours_reference_gpu": hours[1] / 3600,
                       "disk_gb": disk / _GB, "peak_ram_gb": ram / _GB})

    workers = min(cfg.preprocess.workers, os.cpu_count() or 1)
    face_s, voice_s = faces * here["face_s"], voices * seconds * here["voice_s_per_s"]
    entry = bytes_per_sample(cfg.face, cfg.voice, seconds)
    face_bytes, voice_bytes = (math.ceil(entry[m] / 4096) * 4096 for m in ("face", "voice"))  # in 4 KiB blocks
    stage("preprocess", ((face_s + voice_s) / workers, max(faces / ref["mtcnn_frames_per_s"], voice_s / ref["cpu_cores"])),
          faces * face_bytes + voices * voice_bytes,
          base + 2 * ROW_BYTES * rows + MTCNN_WORKER_BYTES + (workers - 1) * (PROCESS_BYTES + MTCNN_WORKER_BYTES),
          runs=1, samples=rows)

    schedules, (v_faces, v_voices, v_pairs) = planned_schedules(cfg, counts), validation_work(cfg, counts)
    steps, per_step = schedules["backbone"]["steps_per_epoch"], schedules["backbone"]["images_per_step"]
    images, runs = schedules["backbone"]["images"], 2 * len(b.seeds)  # single and dual stream, every seed
    checks = math.ceil(b.loop.epochs / b.loop.validate_every)
    train_samples = (1 - b.holdout_fraction) * (tr["faces"] + tr["voices"])
    train = {m: b.loop.epochs * steps * r["train_step_s"] + images * r["train_image_s"]
             for m, r in (("here", here), ("ref", ref))}
    check = {m: checks * ((v_faces + v_voices * crops) * r["forward_image_s"] + v_pairs * auc_s)
             for m, r in (("here", here), ("ref", ref))}
    stage(f"backbone training x {runs}", (runs * (train["here"] + check["here"]), runs * (train["ref"] + check["ref"])),
          runs * 4 * here["params"] * (3 + bool(b.loop.select_best)),
          base + 16 * here["params"] + per_step * activations + 2048 * (v_faces + v_voices)
          + AUC_PAIR_BYTES * min(v_pairs, exact_pairs(cfg.eval.memory_gb)),
          runs=runs, samples=int(train_samples), steps_per_epoch=steps, images_per_step=per_step, epochs=b.loop.epochs,
          images_trained_on=images, passes_over_training_set=images / max(1, train_samples),
          validation_share_here=check["here"] / max(1e-9, train["here"]),
          validation_share_reference_gpu=check["ref"] / max(1e-9, train["ref"]))

    everything, tests = len(f.seeds), 2 * len(b.seeds)  # notebook 03 embeds all samples, 02 and 05 the test split
    embedded = everything * (faces + voices * crops) + tests * (te["faces"] + te["voices"] * crops)
    stage("embedding", (embedded * here["forward_image_s"], embedded * ref["forward_image_s"]),
          2048 * (everything * rows + tests * (te["faces"] + te["voices"])),
          base + 2048 * rows + 4096 * voices + b.embed_chunk_crops * activations / 3,
          runs=everything + tests, samples=rows)

    pairs = tr["faces"] + tr["voices"]  # an epoch pairs every training face and every training voice
    f_steps = min(math.ceil(pairs / f.batch_size), f.loop.max_batches_per_epoch or math.inf)
    f_runs, f_epochs = len(TABLE6_VARIANTS) * len(f.seeds), f.loop.epochs
    f_pairs = validated(va, "voice", f.loop) * validated(va, "face", f.loop)  # the fusion's validation subset
    f_checks = math.ceil(f_epochs / f.loop.validate_every) * f_pairs
    stage(f"fusion training x {f_runs}", tuple(f_runs * (f_epochs * f_steps * r["fusion_step_s"] + f_checks * auc_s)
                                               for r in (here, ref)),
          f_runs * 2e7, base + 2048 * rows + AUC_PAIR_BYTES * min(f_pairs, exact_pairs(cfg.eval.memory_gb)),
          runs=f_runs, samples=pairs, images_trained_on=f_epochs * f_steps * f.batch_size,
          passes_over_training_set=f_epochs * f_steps * f.batch_size / max(1, pairs))

    scored = lists_rows or 5 * te["voices"] * te["faces"]  # generated: every pair of five lists, at most
    systems = 2 + len(TABLE6_VARIANTS) * len(f.seeds) + 2 * len(b.seeds)  # notebook 04's two, 05's Table 6 and backbones
    stage("evaluation", (systems * scored * auc_s,) * 2, 0.0,
          base + 2048 * (te["faces"] + te["voices"]) + cfg.eval.memory_gb * 1e9,  # scored block by block (vfcross.scores)
          runs=systems, samples=te["faces"] + te["voices"])

    total = {key: sum(s[key] for s in stages) for key in ("hours_here", "hours_reference_gpu", "disk_gb")}
    return {"preset": cfg.preset, "counts": counts, "data": data, "stages": stages,
            "total": {**total, "peak_ram_gb": max(s["peak_ram_gb"] for s in stages)}, "rates_here": here,
            "reference_gpu": ref}


def make_plan(cfg: RunConfig, lists: str | os.PathLike | None = None, gpu_check: str | os.PathLike | None = None,
              manifest: pd.DataFrame | None = None) -> dict:
    """Count ``cfg``'s dataset (or its ``manifest``), measure the rates here and project the run ``reproduce`` makes."""
    start = time.perf_counter()
    counts, data, manifest = count_dataset(cfg, manifest)
    data["count_seconds"] = time.perf_counter() - start
    here = measure_here(cfg, manifest)
    plan = project(cfg, counts, data, here, reference_rates(here, gpu_check, cfg), list_rows(lists or cfg.eval.lists))
    return {**plan, "seconds": time.perf_counter() - start}


def shortfall(plan: dict, work_dir: str | os.PathLike) -> str | None:
    """Why the run cannot fit here (disk under ``work_dir``, memory), in one line; None when it fits."""
    folder = Path(work_dir).resolve()
    while not folder.exists():
        folder = folder.parent
    free, memory, need = shutil.disk_usage(folder).free / _GB, psutil.virtual_memory().total, plan["total"]
    if need["disk_gb"] > free:
        return f"the run needs {need['disk_gb']:.1f} GB of disk and {folder} has {free:.1f} GB free"
    if need["peak_ram_gb"] > memory / _GB:
        stage = max(plan["stages"], key=lambda s: s["peak_ram_gb"])["name"]
        return f"the run needs {need['peak_ram_gb']:.1f} GB of memory ({stage}) and this machine has {memory / _GB:.1f} GB"
    return None


def describe(plan: dict) -> str:
    """The plan for a terminal: the counts, a table of the stages and the total, and where the rates come from."""
    c, data, here, ref = plan["counts"], plan["data"], plan["rates_here"], plan["reference_gpu"]
    columns = {"samples": ("samples", 0), "images trained on": ("images_trained_on", 0),
               "passes": ("passes_over_training_set", 2), "hours here": ("hours_here", 2),
               "hours, reference GPU": ("hours_reference_gpu", 2), "disk GB": ("disk_gb", 1),
               "peak RAM GB": ("peak_ram_gb", 1)}
    table = pd.DataFrame([{"stage": s["name"], **{c: f"{s[k]:,.{d}f}" if k in s else "" for c, (k, d) in columns.items()}}
                          for s in [*plan["stages"], {"name": "total", **plan["total"]}]])
    splits = ", ".join(f"{s} {n['identities']:,} identities / {n['faces']:,} faces / {n['voices']:,} voices"
                       for s, n in c.items())
    source = f"{data['source_gb']:.1f} GB of files" if data["source_gb"] is not None else "not written yet"
    estimate = (f" ({ref['flops_per_s'] / 1e12:.0f} TFLOP/s effective assumed, MTCNN {ref['mtcnn_frames_per_s']:.0f} "
                f"frames/s, {ref['cpu_cores']} CPU cores)") if ref["source"] == "estimate" else ""
    return (f"plan of `reproduce --preset {plan['preset']}`: {splits}; voices {data['mean_voice_s']:.1f} s on average; "
            f"{source}\n\n{markdown(table)}\nhours here from rates measured on this machine ({here['device']}: "
            f"{here['train_step_s'] * 1e3:.0f} ms a training step + {here['train_image_s'] * 1e3:.0f} ms an image, MTCNN {here['face_s'] * 1e3:.0f} ms a frame on one "
            f"core, from {here['preprocess_source']}); reference GPU: {ref['source']}{estimate}")
