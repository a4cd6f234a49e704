"""Throughput of every stage on a real VoxCeleb1-layout folder, and hours projected for all of VoxCeleb1.

    python benchmarks/throughput.py /data/voxceleb1-slice --out throughput.json [--workers 1 2]

Measures, on this machine (and on its GPU when torch sees one):

* preprocessing: face images/s (MTCNN + alignment) and voice clips/s (read,
  VAD, spectrogram) through :func:`vfcross.preprocess.preprocess`, for each
  ``--workers`` count (``PreprocessConfig.workers``), into a fresh cache. The
  folder's samples are repeated to make the runs long enough; each rate is
  the steady one, from the difference of a run of N samples and one of 3N
  (so start-up costs such as spawning workers and loading MTCNN cancel), with
  the plain rate of the 3N run beside it;
* backbone training: samples/s of one training step (faces + voice crops,
  forward, backward, Adam) at the ``default`` and ``paper`` presets' sizes
  (:func:`vfcross.workflows.cost.measure_training_step`); on a CPU the
  batch is capped (``--max-batch-identities``) to keep the run short;
* embedding: faces/s and whole utterances/s of a network at each preset's
  input size, on the crops and spectrograms preprocessed above;
* fusion training: pairs/s of the fusion + FOP step.

and projects the hours each preset would take on the whole of VoxCeleb1
(about 153,500 utterances and 1.3 million face frames of 1,251 identities,
901 of them for training): preprocessing, backbone training, the validation
the training loop runs, embedding everything once, fusion training. Voice
costs grow with clip length, so they are scaled by the ratio of VoxCeleb1's
mean utterance length (8.2 s) to the folder's. Timings on a shared machine
are noisy: read them as a guide to within a factor of about 1.5.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from vfcross.backbone.embedding import embed_rows
from vfcross.backbone.objective import BackboneObjective
from vfcross.workflows.cost import measure_training_step
from vfcross.config import RunConfig, override, preset
from vfcross.data.voxceleb import read_dataset
from vfcross.fusion.task import FusionObjective
from vfcross.io import atomic_write
from vfcross.markdown import markdown_table
from vfcross.preprocess.run import preprocess
from vfcross.training import device, make_optimizer

#: The whole of VoxCeleb1 (Nagrani et al. 2017): utterances, face-track frames,
#: identities, the Learnable-PINs split, and the mean utterance length.
VOXCELEB1 = {"utterances": 153_500, "faces": 1_300_000, "identities": 1251, "train": 901, "val": 100,
             "test": 250, "mean_utterance_s": 8.2}
PRESETS = ("default", "paper")


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    """Seconds taken by ``fn(*args, **kwargs)`` and its result."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def repeat_rows(rows: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` rows cycling through ``rows`` (a sample repeated is processed again: the cache is fresh)."""
    return rows.iloc[np.arange(n) % len(rows)].reset_index(drop=True)


def preprocess_rate(rows: pd.DataFrame, cfg: RunConfig, n: int, scratch: Path) -> dict:
    """Steady and plain samples/s of preprocessing ``rows``, from runs of ``n`` and ``3n`` samples."""
    times = {}
    result = None
    for size in (n, 3 * n):
        run_cfg = override(cfg, {"work_dir": str(scratch / f"{rows.modality.iloc[0]}-w{cfg.preprocess.workers}-{size}")})
        times[size], result = timed(preprocess, repeat_rows(rows, size), run_cfg, progress=False)
        skipped = (result.report.outcome == "skipped").sum()
        if skipped:
            print(f"  note: {skipped} of {size} samples skipped:\n{result.summary().to_string()}", file=sys.stderr)
    plain = 3 * n / times[3 * n]
    # Noise in the start-up (spawning workers on a busy machine) can make the longer run no slower than the
    # shorter one; then the steady rate was not measured (None), and a larger N is needed.
    steady = 2 * n / (times[3 * n] - times[n]) if times[3 * n] > times[n] else None
    return {"steady_per_s": steady, "plain_per_s": plain, "seconds": {str(k): round(v, 2) for k, v in times.items()},
            "samples": [n, 3 * n], "manifest": result.manifest}


def training_rate(cfg: RunConfig, max_identities: int, steps: int) -> dict:
    """Samples/s of one backbone training step at ``cfg``'s sizes (batch capped at ``max_identities``)."""
    backbone = cfg.backbone
    if max_identities and backbone.identities_per_batch > max_identities:
        backbone = dataclasses.replace(backbone, identities_per_batch=max_identities)
    cost = measure_training_step(backbone, VOXCELEB1["train"], steps=steps, freq_bins=cfg.voice.n_fft // 2 + 1)
    return {"samples_per_s": cost["batch"] / cost["step_time_s"], "batch_measured": cost["batch"],
            "batch_configured": 2 * cfg.backbone.identities_per_batch * cfg.backbone.samples_per_identity,
            "input_size": backbone.input_size, "step_time_s": cost["step_time_s"], "device": cost["device"]}


@torch.no_grad()
def embedding_rate(cfg: RunConfig, manifest: pd.DataFrame, faces: int, voices: int) -> dict:
    """Faces/s and utterances/s of embedding preprocessed samples with a network of ``cfg``'s size."""
    torch.manual_seed(0)
    dev = device()
    net = BackboneObjective(cfg.backbone, VOXCELEB1["train"]).net.to(dev).eval()
    out = {}
    for modality, count in (("face", faces), ("voice", voices)):
        rows = manifest[manifest.modality == modality].head(count)
        embed_rows(net, rows.head(2), cfg.backbone, dev, progress=False)  # warm-up
        seconds, _ = timed(embed_rows, net, rows, cfg.backbone, dev, progress=False)
        out[f"{modality}s_per_s"] = len(rows) / seconds
    return out


def fusion_rate(cfg: RunConfig, steps: int = 20) -> float:
    """Pairs/s of the fusion + FOP training step (batch ``cfg.fusion.batch_size``, Adam)."""
    torch.manual_seed(0)
    dev = device()
    objective = FusionObjective(cfg.fusion, VOXCELEB1["train"]).to(dev).train()
    optimizer = make_optimizer(list(objective.parameters()), cfg.fusion.loop)
    n = cfg.fusion.batch_size
    faces, voices = torch.randn(n, 512, device=dev), torch.randn(n, 512, device=dev)
    labels = torch.randint(0, VOXCELEB1["train"], (n,), device=dev)
    t0 = 0.0
    for step in range(steps + 1):
        if step == 1:
            t0 = time.perf_counter()
        loss = objective(faces, voices, labels)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps * n / (time.perf_counter() - t0)


def project_hours(cfg: RunConfig, rates: dict, voice_scale: float) -> dict[str, float]:
    """Hours of each stage of ``cfg`` on all of VoxCeleb1 at the measured ``rates``."""
    v = VOXCELEB1
    faces, voices = v["faces"], v["utterances"]
    train_frac, val_frac = v["train"] / v["identities"], v["val"] / v["identities"]
    b = cfg.backbone
    face_pre, voice_pre = rates["preprocess_faces_per_s"], rates["preprocess_voices_per_s"]
    embed = rates["embedding"][cfg.preset]
    face_emb, voice_emb = embed["faces_per_s"], embed["voices_per_s"]

    def embed_s(fraction: float) -> float:
        return fraction * (faces / face_emb + voices * voice_scale / voice_emb)

    steps = math.ceil(v["train"] / b.identities_per_batch) * b.epoch_repeats * b.loop.epochs
    samples = steps * 2 * b.identities_per_batch * b.samples_per_identity
    validations = b.loop.epochs // b.loop.validate_every + (1 if b.loop.epochs % b.loop.validate_every else 0)
    hours = {
        "preprocessing": (faces / face_pre + voices * voice_scale / voice_pre) / 3600,
        "backbone training": samples / rates["training"][cfg.preset]["samples_per_s"] / 3600,
        # each validation embeds the held-out part of the training samples and every validation sample
        "backbone validation": validations * embed_s(b.holdout_fraction * train_frac + val_frac) / 3600,
        "embedding (all samples once)": embed_s(1.0) / 3600,
        "fusion training": cfg.fusion.loop.epochs * train_frac * (faces + voices) / rates["fusion_pairs_per_s"] / 3600,
    }
    hours["total"] = sum(hours.values())
    # As configured, an epoch visits every training identity once (P x K faces and voices per batch); on
    # VoxCeleb1 that is a small part of its samples. For scale: one pass over all training samples.
    hours["backbone, one pass over all training samples"] = train_frac * (faces + voices) / \
        rates["training"][cfg.preset]["samples_per_s"] / 3600
    hours["backbone steps"] = steps
    hours["backbone samples"] = samples
    return hours


def best_rate(measured: list[dict]) -> float:
    """The best steady rate of several worker counts, or the best plain rate where none was measurable."""
    steady = [m["steady_per_s"] for m in measured if m["steady_per_s"] is not None]
    return max(steady) if steady else max(m["plain_per_s"] for m in measured)


def mean_seconds(paths: list[str]) -> float:
    """Mean duration of audio files."""
    return float(np.mean([sf.info(p).duration for p in paths]))


def main(argv: list[str] | None = None) -> int:
    """Run the measurements, print the tables, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="a folder in the VoxCeleb1 layout (wav/, unzippedFaces/, vox1_meta.csv)")
    parser.add_argument("--out", default="throughput.json", help="JSON file to write")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="preprocessing worker counts")
    parser.add_argument("--faces", type=int, default=0, help="N for the face runs (default: the folder's faces)")
    parser.add_argument("--clips", type=int, default=0,
                        help="N for the voice runs (default: 64 per worker, where the pool starts)")
    parser.add_argument("--max-batch-identities", type=int, default=-1,
                        help="cap on identities per measured training batch (default: 4 on CPU, none on CUDA)")
    parser.add_argument("--train-steps", type=int, default=2, help="timed training steps (after one warm-up)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for training and embedding (default: torch's own, one per core)")
    parser.add_argument("--embed", type=int, nargs=2, default=[16, 4], metavar=("FACES", "VOICES"),
                        help="samples embedded per preset")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # for the spawned process of the training step
    dev = device()
    cap = args.max_batch_identities if args.max_batch_identities >= 0 else (0 if dev.type == "cuda" else 4)
    manifest = read_dataset(args.root)
    face_rows, voice_rows = manifest[manifest.modality == "face"], manifest[manifest.modality == "voice"]
    slice_seconds = mean_seconds(list(voice_rows.path))
    voice_scale = VOXCELEB1["mean_utterance_s"] / slice_seconds
    cfg = preset("paper")  # its face and voice settings are the ones VoxCeleb1 would be preprocessed with
    started = time.perf_counter()
    record: dict = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(dev),
                    "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
                    "platform": platform.platform(), "load_average_at_start": os.getloadavg()},
        "data": {"root": str(args.root), "faces": len(face_rows), "voices": len(voice_rows),
                 "mean_voice_s": round(slice_seconds, 2)},
        "voxceleb1": VOXCELEB1,
        "rates": {"preprocess": {}},
    }
    rates = record["rates"]
    with tempfile.TemporaryDirectory(prefix="vfcross-bench-") as scratch:
        preprocessed = {}
        for workers in args.workers:
            wcfg = override(cfg, {"preprocess.workers": workers})
            print(f"preprocessing with {workers} worker(s) ...", file=sys.stderr)
            face = preprocess_rate(face_rows, wcfg, args.faces or len(face_rows), Path(scratch))
            voice = preprocess_rate(voice_rows, wcfg, args.clips or 64 * max(args.workers), Path(scratch))
            preprocessed = {"face": face.pop("manifest"), "voice": voice.pop("manifest")}
            rates["preprocess"][str(workers)] = {"faces": face, "voices": voice}
        best = {m: best_rate([rates["preprocess"][str(w)][m] for w in args.workers]) for m in ("faces", "voices")}
        rates["preprocess_faces_per_s"], rates["preprocess_voices_per_s"] = best["faces"], best["voices"]
        both = pd.concat([preprocessed["face"].drop_duplicates("path"), preprocessed["voice"].drop_duplicates("path")])
        rates["training"], rates["embedding"] = {}, {}
        for name in PRESETS:
            print(f"training and embedding at the {name} preset's sizes ...", file=sys.stderr)
            rates["training"][name] = training_rate(preset(name), cap, args.train_steps)
            rates["embedding"][name] = embedding_rate(preset(name), both, *args.embed)
        rates["fusion_pairs_per_s"] = fusion_rate(cfg)
    record["projected_hours"] = {name: project_hours(preset(name), rates, voice_scale) for name in PRESETS}
    record["benchmark_seconds"] = round(time.perf_counter() - started, 1)

    print(report(record))
    out = Path(args.out)
    atomic_write(out, lambda stream: stream.write((json.dumps(record, indent=2) + "\n").encode()))
    print(f"\nwritten {out}")
    return 0


def _fmt(rate: float | None) -> str:
    """A rate for the table; "n/a" where it could not be measured."""
    return "n/a" if rate is None else f"{rate:.1f}"


def report(record: dict) -> str:
    """The measured rates and the projected hours as Markdown tables."""
    rates, machine = record["rates"], record["machine"]
    rows = []
    for workers, r in rates["preprocess"].items():
        for modality, unit in (("faces", "images/s"), ("voices", "clips/s")):
            m = r[modality]
            rows.append((f"preprocess {modality}, {workers} worker(s)", _fmt(m["steady_per_s"]),
                         f"{m['plain_per_s']:.1f}", unit))
    for name in PRESETS:
        t = rates["training"][name]
        rows.append((f"backbone training, {name} ({t['input_size']}², batch {t['batch_measured']})",
                     f"{t['samples_per_s']:.1f}", "", "samples/s"))
        e = rates["embedding"][name]
        rows.append((f"embedding faces, {name}", f"{e['faces_per_s']:.1f}", "", "faces/s"))
        rows.append((f"embedding voices, {name}", f"{e['voices_per_s']:.1f}", "", "utterances/s"))
    rows.append(("fusion training", f"{rates['fusion_pairs_per_s']:.0f}", "", "pairs/s"))
    table = pd.DataFrame(rows, columns=["what", "steady rate", "plain rate", "unit"])
    hours = pd.DataFrame(record["projected_hours"]).T
    extra = ["backbone steps", "backbone samples", "backbone, one pass over all training samples"]
    counts = hours[extra].round(1)
    hours = hours.drop(columns=extra).T.map(lambda h: f"{h:,.1f}")
    where = machine["gpu"] or f"{machine['cpus']} CPU cores"
    data = record["data"]
    return (f"## Measured on {where} ({data['faces']} faces, {data['voices']} clips of {data['mean_voice_s']} s "
            f"mean; load average {machine['load_average_at_start'][0]:.1f} at start)\n\n{markdown_table(table)}\n"
            f"## Projected hours for all of VoxCeleb1 ({VOXCELEB1['faces']:,} faces, "
            f"{VOXCELEB1['utterances']:,} utterances) on this machine\n\n"
            f"{markdown_table(hours.reset_index(names='stage'))}\n"
            f"Backbone steps and samples as configured, and the hours one pass over all training samples "
            f"would take:\n\n{markdown_table(counts.reset_index(names='preset'))}")


if __name__ == "__main__":
    sys.exit(main())
