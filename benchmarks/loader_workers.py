"""Seconds per training epoch, and per batch loaded alone, by DataLoader worker count (docs/training.md).

    python benchmarks/loader_workers.py [--preset default] [--workers 0 1 2] [--rounds 3]

On a fake preprocessed population of the preset's training shape (its face
crop size, spectrogram rows, faces and voices per identity, training
identities), it times whole backbone epochs through :func:`vfcross.training.loader`
for each worker count in turn (round after round, so a drifting machine
affects every count alike), and the loading of an epoch's batches without
training. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes import fake_preprocessed  # noqa: E402

from vfcross.backbone.task import BackboneTask  # noqa: E402
from vfcross.config import override, preset  # noqa: E402
from vfcross.training import _run_epoch, _seed_epoch, autocast_dtype, loader, make_optimizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cfg = preset(args.preset)
    s = cfg.synth
    videos, faces, clips = s.samples(False)
    identities = round(s.identities * s.split_fractions[0])
    dev = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        table = fake_preprocessed(Path(tmp), {"train": identities}, n_face=videos * faces, n_voice=videos * clips,
                                  face_size=cfg.face.size, freq=cfg.voice.frequency_rows)
        task = BackboneTask(table, override(cfg, {"backbone.holdout_fraction": 0.0}).backbone)
        objective = task.objective.train()
        optimizer = make_optimizer(list(objective.parameters()), cfg.backbone.loop)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        amp = autocast_dtype(cfg.backbone.loop.amp, dev)
        batches = task.batches(0, _seed_epoch(0, 0))
        _run_epoch(objective, loader(task.load, batches, 0, dev), optimizer, scaler, amp, dev, "warm-up", False)
        epochs = {w: [] for w in args.workers}
        loading = {w: [] for w in args.workers}
        for _ in range(args.rounds):
            for w in args.workers:
                start = time.perf_counter()
                _run_epoch(objective, loader(task.load, batches, w, dev), optimizer, scaler, amp, dev, "", False)
                epochs[w].append(time.perf_counter() - start)
                start = time.perf_counter()
                for _ in loader(task.load, batches, w, dev):
                    pass
                loading[w].append(time.perf_counter() - start)
    print(json.dumps({"preset": args.preset, "batches_per_epoch": len(batches), "threads": torch.get_num_threads(),
                      "images_per_batch": float(np.mean([len(b.face_rows) * 2 for b in batches])),
                      "epoch_s": {w: [round(t, 2) for t in v] for w, v in epochs.items()},
                      "epoch_s_median": {w: round(float(np.median(v)), 2) for w, v in epochs.items()},
                      "loading_only_s_median": {w: round(float(np.median(v)), 3) for w, v in loading.items()}},
                     indent=2))


if __name__ == "__main__":
    main()
