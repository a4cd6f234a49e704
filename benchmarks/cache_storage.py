"""What the cache's storage choices cost: bytes, load time, and a backbone's validation AUC (issue 28).

Preprocesses the default preset's development population (synthetic seed 0, never the published run's seed 1)
once per storage, exact (``face.storage = lossless``, ``voice.storage = spectrogram``: the default's) and compact
(``jpeg`` at ``face.jpeg_quality``, ``audio``: the paper preset's), and records for each: cache bytes per face and
per voice, seconds to load one face and one spectrogram (one process, CPU time), and a single-stream backbone
trained with the default's settings on it, same seeds (validation AUC at its validations, seconds). With
``--slice`` it also measures bytes per face and per second of speech on the real VoxCeleb1 slice at the paper
preset's 256x256 crops. Run from the repository root (about 10 minutes a backbone on 2 busy cores)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/cache_storage.py --work /tmp/storage --out docs/cache_storage.json \\
        --seeds 0 --slice ../shared/data/voxceleb1-mini
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vfcross.backbone.task import train_backbone
from vfcross.config import override, preset
from vfcross.data import prepare_dataset, read_dataset
from vfcross.data.manifest import read_manifest
from vfcross.preprocess import load_face, load_spectrogram, preprocess
from vfcross.preprocess.cache import read_entry
from vfcross.preprocess.run import run_preprocessing
from vfcross.preprocess.voices import read_audio, vad

#: Training, validation and test identities: the default's 216 and 84, and 10 test identities never read.
SPLIT = (216, 84, 10)
STORAGES = {"exact": {"face.storage": "lossless", "voice.storage": "spectrogram"},
            "compact": {"face.storage": "jpeg", "voice.storage": "audio"}}


def entry_bytes(manifest: pd.DataFrame) -> dict[str, float]:
    """Mean bytes of a cache entry, per modality."""
    sizes = manifest.cache_path.map(lambda p: len(read_entry(p)[0]))
    return {m: float(sizes[manifest.modality == m].mean()) for m in ("face", "voice")}


def load_seconds(manifest: pd.DataFrame, count: int = 200) -> dict[str, float]:
    """CPU seconds to load one face and one spectrogram (mean over ``count`` of each)."""
    out = {}
    for modality, load in (("face", load_face), ("voice", load_spectrogram)):
        paths = manifest.cache_path[manifest.modality == modality].head(count)
        start = time.process_time()
        for path in paths:
            load(path)
        out[modality] = (time.process_time() - start) / len(paths)
    return out


def real_slice(root: Path, work: Path) -> dict[str, dict[str, float]]:
    """Bytes per 256x256 face and per second of speech on the real slice, by storage (paper preset otherwise)."""
    manifest = read_dataset(root)
    seconds = {p: len(vad(read_audio(p, 16000), 16000, preset("paper").voice)[0]) / 16000
               for p in manifest.path[manifest.modality == "voice"]}
    out = {}
    for name, changes in STORAGES.items():
        cfg = override(preset("paper"), {"work_dir": str(work / f"slice-{name}"), "preprocess.workers": 1, **changes})
        made = preprocess(manifest, cfg, progress=False).manifest
        voices = made[made.modality == "voice"]
        out[name] = {"face_bytes": entry_bytes(made)["face"],
                     "voice_bytes_per_second": float(sum(len(read_entry(p)[0]) for p in voices.cache_path)
                                                     / sum(seconds[p] for p in voices.path)),
                     "kept_fraction": float(sum(seconds.values()) / sum(
                         len(read_audio(p, 16000)) / 16000 for p in seconds))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("work/storage"))
    parser.add_argument("--out", type=Path, default=Path("docs/cache_storage.json"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--slice", type=Path, help="the real VoxCeleb1 slice (voxceleb1-mini)")
    args = parser.parse_args()
    total = sum(SPLIT)
    record: dict = {"machine": {"cores": os.cpu_count(), "processor": platform.processor(),
                                "load_average_start": os.getloadavg()}, "storages": {}}
    if args.slice:
        record["real_slice"] = real_slice(args.slice, args.work)
        print(json.dumps(record["real_slice"]), flush=True)
    for name, changes in STORAGES.items():
        cfg = override(preset("default"), {
            "work_dir": str(args.work / name), "synth.identities": total, "synth.seed": 0,
            "synth.split_fractions": [n / total for n in SPLIT], **changes})
        if name != "exact":  # one population for both: the compact run reads the exact run's files
            cfg = override(cfg, {"data_root": str(args.work / "exact" / cfg.dataset_root.name)})
        dataset = prepare_dataset(cfg, progress=False)
        start = time.perf_counter()
        run_preprocessing(dataset.manifest, cfg, Path(cfg.work_dir) / "preprocess-report", progress=False)
        manifest = read_manifest(cfg.manifest_path)
        result = {"preprocess_seconds": time.perf_counter() - start, "bytes": entry_bytes(manifest),
                  "load_cpu_seconds": load_seconds(manifest), "runs": []}
        for seed in args.seeds:
            start = time.perf_counter()
            _, history = train_backbone(cfg, manifest, "single", seed=seed, progress=False)
            result["runs"].append({"seed": seed, "seconds": time.perf_counter() - start,
                                   "val_auc": {h["epoch"]: h["val_auc"] for h in history
                                               if h.get("val_auc") is not None}})
        record["storages"][name] = result
        print(name, json.dumps(result), flush=True)
    record["machine"]["load_average_end"] = os.getloadavg()
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
