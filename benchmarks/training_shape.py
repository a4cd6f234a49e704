"""More training identities with fewer samples each, at the same budget: what does the backbone learn? (issue 18)

On the development population (synthetic seed 0, never the published run's
seed 1) it trains the default preset's single-stream backbone on populations
of T training identities rendered with F faces and V voices each:

    216 x (9 + 6)   the default's shape (3 videos x 3 faces, 3 videos x 2 clips)
    432 x (5 + 3)   one video of 5 faces and 3 clips
    864 x (3 + 2)   one video of 3 faces and 2 clips

about 3,240 faces and 2,200-2,600 voices in every case. The training budget is
the same number of optimisation steps (20 epochs of 216 / 24 = 9
batches: 180 steps), so 432 identities get 10 epochs and 864 get 5; every
step sees 24 identities x 1 face + 1 voice, as in the default. Each population
has 100 validation identities of 2 faces + 2 voices (``synth.eval_*``) and 10
test identities that it never reads (preprocessing requires some): the curve is read on validation identities only (all
voice-face pairs, cosine of the 512-d embeddings), with 95% intervals from 1,000
resamples of those identities, for random negatives and for same-gender
negatives (G). The validation identities differ between the populations, so
two shapes are compared as independent samples, not paired.

Run from the repository root (about 21 minutes on 2 float32 cores)::

    .venv/bin/python benchmarks/training_shape.py --work work/shape --out docs/training_shape

It writes ``<out>.json`` (every number, the machine) and ``<out>.png`` (the
curve), and prints a Markdown table for docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vfcross.backbone.embedding import extract_embeddings  # noqa: E402
from vfcross.backbone.task import train_backbone  # noqa: E402
from vfcross.config import override, preset  # noqa: E402
from vfcross.data import prepare_dataset  # noqa: E402
from vfcross.data.manifest import read_manifest  # noqa: E402
from vfcross.evaluation.intervals import list_interval  # noqa: E402
from vfcross.evaluation.protocols import verification_pairs  # noqa: E402
from vfcross.preprocess.run import run_preprocessing  # noqa: E402

#: (training identities, videos, faces per video, clips per video, epochs): equal steps, equal samples.
SHAPES = ((216, 3, 3, 2, 20), (432, 1, 5, 3, 10), (864, 1, 3, 2, 5))
VAL_IDENTITIES = 100
#: The preprocessing stage requires test identities; the curve never reads them.
TEST_IDENTITIES = 10


def shape_config(work: Path, train: int, videos: int, faces: int, clips: int, epochs: int):
    """The default preset on a development population of ``train`` + 100 validation identities of this shape."""
    total = train + VAL_IDENTITIES + TEST_IDENTITIES
    return override(preset("default"), {
        "work_dir": str(work / f"t{train}"), "synth.identities": total, "synth.seed": 0,
        "synth.split_fractions": [train / total, VAL_IDENTITIES / total, TEST_IDENTITIES / total],
        "synth.videos_per_identity": videos, "synth.faces_per_video": faces, "synth.clips_per_video": clips,
        "synth.eval_videos_per_identity": 1, "synth.eval_faces_per_video": 2, "synth.eval_clips_per_video": 2,
        "backbone.loop.epochs": epochs})


def val_aucs(vectors: np.ndarray, table, n_boot: int) -> dict:
    """All-pairs AUC on the validation identities, random and same-gender negatives, with identity intervals."""
    out = {}
    for restriction in ("random", "G"):
        score = verification_pairs(table, restriction, 0, 0, split="val").score(table, vectors)
        ci = list_interval(score, "auc", restriction, [], n_boot, 0)  # identity-level (voice's identity) interval
        out[restriction] = {"auc": score.auc, "ci": ci, "pairs": len(score)}
    return out


def run_shape(work: Path, shape: tuple[int, int, int, int, int], n_boot: int) -> dict:
    """Render, preprocess, train and score one shape; returns its record."""
    train, videos, faces, clips, epochs = shape
    cfg = shape_config(work, *shape)
    t0 = time.perf_counter()
    dataset = prepare_dataset(cfg, progress=False)
    run_preprocessing(dataset.manifest, cfg, Path(cfg.work_dir) / "preprocess-report", progress=False)
    manifest = read_manifest(cfg.manifest_path)
    t1 = time.perf_counter()
    run_dir, history = train_backbone(cfg, manifest, "single", progress=False)
    t2 = time.perf_counter()
    val = manifest[manifest.split == "val"].reset_index(drop=True)
    emb = extract_embeddings(run_dir, val, cfg.backbone, cfg.cache_dir / "embeddings", progress=False)
    train_rows = manifest[manifest.split == "train"]
    return {"train_identities": train, "videos": videos, "faces_per_identity": videos * faces,
            "voices_per_identity": videos * clips, "epochs": epochs, "steps": -(-train // cfg.backbone.identities_per_batch) * epochs,
            "train_faces": int((train_rows.modality == "face").sum()),
            "train_voices": int((train_rows.modality == "voice").sum()),
            "val_identities": int(val.identity.nunique()), "val": val_aucs(emb.vectors, emb.table, n_boot),
            "history_val_auc": [h.get("val_auc") for h in history], "last_ce": history[-1].get("ce"),
            "seconds": {"data": round(t1 - t0, 1), "training": round(t2 - t1, 1)}}


def figure(records: list[dict], path: Path) -> None:
    """Validation AUC (random and G negatives) against training identities, with 95% identity intervals."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = np.array([r["train_identities"] for r in records])
    for restriction, label, shift in (("random", "random negatives", -0.02), ("G", "same-gender negatives", 0.02)):
        y = np.array([100 * r["val"][restriction]["auc"] for r in records])
        lo = np.array([100 * r["val"][restriction]["ci"][0] for r in records])
        hi = np.array([100 * r["val"][restriction]["ci"][1] for r in records])
        ax.errorbar(x * (1 + shift), y, yerr=[y - lo, hi - y], marker="o", capsize=3, label=label)
    ax.axhline(50, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(x, [f"{r['train_identities']}\n{r['faces_per_identity']}+{r['voices_per_identity']}" for r in records])
    ax.set_xlabel("training identities (faces + voices each), 180 steps each")
    ax.set_ylabel("validation AUC % (100 identities)")
    ax.set_title("single-stream backbone, development population", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("work/shape"))
    parser.add_argument("--out", type=Path, default=Path("docs/training_shape"))
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--plot-only", action="store_true", help="redraw <out>.png from an existing <out>.json")
    args = parser.parse_args()
    if args.plot_only:
        figure(json.loads(args.out.with_suffix(".json").read_text())["shapes"], args.out.with_suffix(".png"))
        return
    records = []
    for shape in SHAPES:
        record = run_shape(args.work, shape, args.boot)
        records.append(record)
        v = record["val"]
        print(f"{shape[0]} identities: val AUC {100 * v['random']['auc']:.1f} "
              f"[{100 * v['random']['ci'][0]:.1f}, {100 * v['random']['ci'][1]:.1f}], "
              f"G {100 * v['G']['auc']:.1f} [{100 * v['G']['ci'][0]:.1f}, {100 * v['G']['ci'][1]:.1f}]; "
              f"{record['seconds']}", flush=True)
    machine = {"cpu_bf16": "avx512_bf16" in Path("/proc/cpuinfo").read_text(), "cores": os.cpu_count(),
               "platform": platform.platform()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"machine": machine, "shapes": records}, indent=1))
    figure(records, args.out.with_suffix(".png"))
    print("| training identities | faces + voices each | train faces / voices | epochs (steps) | val AUC % | G AUC % |")
    print("|---|---|---|---|---|---|")
    for r in records:
        v = r["val"]
        print(f"| {r['train_identities']} | {r['faces_per_identity']} + {r['voices_per_identity']} | "
              f"{r['train_faces']} / {r['train_voices']} | {r['epochs']} ({r['steps']}) | "
              f"{100 * v['random']['auc']:.1f} [{100 * v['random']['ci'][0]:.1f}, {100 * v['random']['ci'][1]:.1f}] | "
              f"{100 * v['G']['auc']:.1f} [{100 * v['G']['ci'][0]:.1f}, {100 * v['G']['ci'][1]:.1f}] |")


if __name__ == "__main__":
    main()
