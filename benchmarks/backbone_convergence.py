"""Does the single-stream backbone converge past 20 epochs, the default before this check? (issue 18)

The check on a second population found the default single-stream backbone
still learning at epoch 20 for half its seeds (validation AUC +2.5 to +5.2
points over the last five epochs, cross-entropy still falling), while the
dual stream was flat by epoch 15. This trains the default preset's backbones
for longer on the development population (synthetic seed 0, never the
published run's seed 1), with the default's shape (216 training identities of
9 faces + 6 voices, 84 validation identities of 2 + 2) and 10 test identities
that it never reads (preprocessing requires some). Everything else is the
default preset, including the learning-rate decay of 0.95 per epoch, which
keeps decaying past epoch 20. It records the training loop's own validation
AUC (:func:`vfcross.metrics.roc_auc`, all voice-face pairs of the validation
identities) every ``--every`` epochs and the last epoch's cross-entropy.

Run from the repository root (about 10 minutes per 40-epoch single-stream
seed on 2 float32 cores)::

    .venv/bin/python benchmarks/backbone_convergence.py --work work/convergence \\
        --out docs/backbone_convergence --epochs 40 --seeds 0 1

It writes ``<out>.json`` (every history, the machine) and prints a Markdown
table for docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from vfcross.backbone.task import train_backbone
from vfcross.config import override, preset
from vfcross.data import prepare_dataset
from vfcross.data.manifest import read_manifest
from vfcross.preprocess.run import run_preprocessing

#: Training, validation and test identities: the default's 216 and 84, and 10 test identities never read.
SPLIT = (216, 84, 10)


def development_config(work: Path, epochs: int, every: int):
    """The default preset on the development population (seed 0), trained for ``epochs`` epochs."""
    total = sum(SPLIT)
    return override(preset("default"), {
        "work_dir": str(work), "synth.identities": total, "synth.seed": 0,
        "synth.split_fractions": [n / total for n in SPLIT],
        "backbone.loop.epochs": epochs, "backbone.loop.validate_every": every})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("work/convergence"))
    parser.add_argument("--out", type=Path, default=Path("docs/backbone_convergence"))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--architectures", nargs="+", default=["single"], choices=["single", "dual"])
    args = parser.parse_args()
    cfg = development_config(args.work, args.epochs, args.every)
    t0 = time.perf_counter()
    dataset = prepare_dataset(cfg, progress=False)
    run_preprocessing(dataset.manifest, cfg, Path(cfg.work_dir) / "preprocess-report", progress=False)
    manifest = read_manifest(cfg.manifest_path)
    print(f"data: {time.perf_counter() - t0:.0f} s; identities per split "
          f"{manifest.drop_duplicates('identity').split.value_counts().to_dict()}", flush=True)
    runs = []
    for architecture in args.architectures:
        for seed in args.seeds:
            t1 = time.perf_counter()
            _, history = train_backbone(cfg, manifest, architecture, seed=seed, progress=False)
            curve = {h["epoch"]: h["val_auc"] for h in history if h.get("val_auc") is not None}
            runs.append({"architecture": architecture, "seed": seed, "val_auc": curve,
                         "ce": [h.get("ce") for h in history], "seconds": round(time.perf_counter() - t1, 1)})
            print(f"{architecture} seed {seed}: " + ", ".join(f"{e}: {100 * a:.1f}" for e, a in curve.items())
                  + f"; last CE {history[-1].get('ce'):.2f}; {runs[-1]['seconds']} s", flush=True)
    machine = {"cpu_bf16": "avx512_bf16" in Path("/proc/cpuinfo").read_text(), "cores": os.cpu_count(),
               "platform": platform.platform()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"machine": machine, "epochs": args.epochs,
                                                          "runs": runs}, indent=1))
    epochs = sorted({e for r in runs for e in r["val_auc"]})
    print("| run | " + " | ".join(str(e) for e in epochs) + " | last CE |")
    print("|---|" + "---|" * (len(epochs) + 1))
    for r in runs:
        cells = [f"{100 * r['val_auc'][e]:.1f}" if e in r["val_auc"] else "" for e in epochs]
        print(f"| {r['architecture']} seed {r['seed']} | " + " | ".join(cells) + f" | {r['ce'][-1]:.2f} |")


if __name__ == "__main__":
    main()
