"""Do the seeds agree? The 7 claims' seed SD under weight averaging and a low final learning rate (issue 30).

A claim's seed SD is the SD over training seeds of its per-seed paired
difference (fusion seed s on backbone seed s). This trains S seeds of every
compared system (single- and dual-stream backbones, the 4 Table 6 fusion
variants on single-stream seed s) on the development population (synthetic
seed 0 in the default preset's shape, 216 / 84 / 300 identities; never the
published seed 1), once per lever configuration (:data:`CONFIGS`, each a set of
``--set`` overrides of the default preset), and scores the claims as notebook
05 does (:func:`score_seeds`, :func:`paired_decision`, :func:`judge`). Per
configuration it reports each claim's seed SD, difference, half-width and
label, the median seed SD, the backbones' validation AUC per validated epoch,
and the seconds per seed of each part (backbones, embeddings, fusion).

Resumable: the population and its preprocessing are shared by every
configuration (``<work>/shared``); each configuration's runs live in
``<work>/<name>/runs`` and are reused when their settings match; a part's
first measured time is kept in ``<work>/<name>/timings.jsonl``. Run from the
repository root (hours on 2 shared cores)::

    .venv/bin/python benchmarks/seed_spread.py --work /tmp/seeds/work --out docs/seed_spread.json

``--profile`` instead times the backbone's training step, split into loading the
batch (``task.inputs``) and the rest, for each architecture.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from vfcross.backbone.task import BackboneTask, backbone_run, stage_embeddings, train_backbone
from vfcross.config import override, preset
from vfcross.data import prepare_dataset
from vfcross.data.manifest import read_manifest
from vfcross.evaluation.evaluate import score_seeds
from vfcross.evaluation.intervals import paired_decision
from vfcross.preprocess.run import run_preprocessing
from vfcross.reporting.claims import judge, paper_claims
from vfcross.training import autocast_dtype, device, make_optimizer, precision, read_log
from vfcross.workflows.compare import train_backbones, train_variants

#: Lever configurations: overrides of the default preset. The backbone trains 25 epochs, 9 steps each.
EMA = {"backbone.loop.average_epochs": 10, "backbone.loop.average_decay": 0.98}  # ~50-step (5.5-epoch) memory
COSINE = {"backbone.loop.lr_schedule": "cosine", "backbone.loop.lr_min": 1e-5}
#: The fusion heads' EMA (30 epochs of ~26 steps; ~20-step memory), still validated and selected every epoch.
FUSION_EMA = {"fusion.loop.average_epochs": 30, "fusion.loop.average_decay": 0.95}
CONFIGS = {"baseline": {}, "both": {**EMA, **COSINE}, "both+fusion": {**EMA, **COSINE, **FUSION_EMA}, "ema": EMA,
           "cosine": COSINE}
#: Configurations whose backbones are another's (the same settings): only their fusion heads are trained.
BACKBONES_OF = {"both+fusion": "both"}
#: Folders every configuration shares: the population, its preprocessing and the caches (keyed by content).
SHARED = ("synth-n600-s{population}", "preprocess", "cache")


def configuration(work: Path, name: str, population: int, seeds: list[int]):
    """The default preset on the development population with configuration ``name``'s levers, in ``work/name``."""
    changes = {"synth.seed": population, "backbone.seeds": seeds, "fusion.seeds": seeds,
               "backbone.loop.seed": seeds[0], "fusion.loop.seed": seeds[0]}
    cfg = override(preset("default"), {**changes, "work_dir": str(work / "shared")})
    if name == "shared":
        return cfg
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    for shared in SHARED:
        link = folder / shared.format(population=population)
        if not link.exists():
            link.symlink_to((work / "shared" / link.name).resolve())
    return override(cfg, {**CONFIGS[name], "work_dir": str(folder)})


def timed(log: Path, seed: int, part: str, fn):
    """Run ``fn``; keep its seconds in ``log`` unless an earlier run measured this part already."""
    done = {(r["seed"], r["part"]) for r in map(json.loads, log.read_text().splitlines())} if log.exists() else set()
    t0 = time.perf_counter()
    out = fn()
    if (seed, part) not in done:
        with log.open("a") as stream:
            stream.write(json.dumps({"seed": seed, "part": part, "s": round(time.perf_counter() - t0, 1)}) + "\n")
    return out


def train_seed(cfg, manifest, table, seed: int, log: Path) -> None:
    """One seed of every system, as notebooks 02, 03 and 05 make it, each part timed."""
    one = override(cfg, {"backbone.seeds": [seed], "fusion.seeds": [seed]})
    owner = BACKBONES_OF.get(Path(cfg.work_dir).name)
    for architecture in ("single", "dual") if owner else ():
        link = backbone_run(cfg, architecture, seed)[1]
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to((Path(cfg.work_dir).parent / owner / "runs" / link.name).resolve())
    timed(log, seed, "single backbone", lambda: train_backbone(one, manifest, "single", seed, progress=False))
    emb = timed(log, seed, "single embeddings (all rows)", lambda: stage_embeddings(one, manifest, seed, progress=False))
    timed(log, seed, "4 fusion variants", lambda: train_variants(one, {seed: emb}, cfg.eval.split))
    timed(log, seed, "dual backbone", lambda: train_backbone(one, manifest, "dual", seed, progress=False))
    for architecture in ("single", "dual"):
        timed(log, seed, f"{architecture} test embeddings",
              lambda: stage_embeddings(one, table, seed, architecture, progress=False))


def score(cfg, manifest, table) -> dict:
    """The 7 claims of notebook 05 on every trained seed, and the backbones' validation curves."""
    e = cfg.eval
    embs = {seed: stage_embeddings(cfg, manifest, seed, progress=False) for seed in cfg.fusion.seeds}
    systems = {**train_variants(cfg, embs, e.split), **train_backbones(cfg, manifest, table)}
    scored = score_seeds(systems, table, "random", e.n_pairs, e.seed, e.split)
    claims = {}
    for claim in paper_claims():
        verdict = judge(claim, paired_decision(scored, claim.claim.a, claim.claim.b, "auc", e.n_boot, e.seed))
        d = verdict.decision
        claims[claim.key] = {"label": verdict.outcome, "difference": d.difference, "ci": verdict.ci,
                             "half_width": d.half_width(claim.claim.level), "seed_sd": d.seed_sd,
                             "per_seed": {p["seed"]: p["difference"] for p in d.per_seed}}
    curves = {}
    for architecture in ("single", "dual"):
        for seed in cfg.backbone.seeds:
            history = read_log(backbone_run(cfg, architecture, seed)[1])
            curves[f"{architecture} {seed}"] = {"val_auc": {h["epoch"]: h["val_auc"] for h in history if "val_auc" in h},
                                                "epoch_s": [h["time_s"] for h in history]}
    sds = [c["seed_sd"] for c in claims.values()]
    return {"seeds": list(cfg.fusion.seeds), "claims": claims, "median_seed_sd": statistics.median(sds),
            "median_seed_sd_leave_one_seed_out": leave_one_out(claims), "curves": curves}


def leave_one_out(claims: dict) -> dict:
    """The median seed SD over claims with each seed left out in turn: how much one seed moves it."""
    seeds = list(next(iter(claims.values()))["per_seed"])
    if len(seeds) < 3:
        return {}
    return {s: statistics.median(float(np.std([v for k, v in c["per_seed"].items() if k != s], ddof=1))
                                 for c in claims.values()) for s in seeds}


def summarise(name: str, result: dict, log: Path) -> str:
    """The configuration's claims and seconds per seed as Markdown."""
    lines = [f"### {name}: seeds {result['seeds']}, median seed SD {100 * result['median_seed_sd']:.2f} points",
             "| claim | difference | seed SD | half-width | label | per seed |", "|---|---|---|---|---|---|"]
    for key, c in result["claims"].items():
        per_seed = ", ".join(f"{100 * v:+.1f}" for v in c["per_seed"].values())
        lines.append(f"| {key} | {100 * c['difference']:+.2f} | {100 * c['seed_sd']:.2f} | "
                     f"{100 * c['half_width']:.2f} | {c['label']} | {per_seed} |")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    parts = {r["part"]: [x["s"] for x in rows if x["part"] == r["part"]] for r in rows}
    lines.append("seconds per seed (median over seeds): " + "; ".join(f"{p} {statistics.median(v):.0f}"
                                                                     for p, v in parts.items()))
    return "\n".join(lines)


def profile(cfg, manifest, steps: int = 6) -> dict:
    """Seconds per backbone training step: loading the batch (``task.inputs``) and the step itself, per architecture."""
    dev, out = device(), {}
    for architecture in ("single", "dual"):
        task = BackboneTask(manifest, override(cfg, {"backbone.architecture": architecture}).backbone)
        optimizer = make_optimizer(list(task.objective.parameters()), task.cfg.loop)
        batches = task.batches(0, np.random.default_rng(0))[: steps + 1]
        load, step = [], []
        for batch in batches:
            t0 = time.perf_counter()
            inputs = task.inputs(batch, dev)
            t1 = time.perf_counter()
            with precision(dev, autocast_dtype(task.cfg.loop.amp, dev)):
                parts = task.objective(*inputs)
            optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            optimizer.step()
            load.append(t1 - t0)
            step.append(time.perf_counter() - t1)
        out[architecture] = {"load_s": statistics.median(load[1:]), "step_s": statistics.median(step[1:]),
                             "steps_per_epoch": len(task.batches(0, np.random.default_rng(0)))}
        print(f"{architecture}: {out[architecture]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/seeds/work"))
    parser.add_argument("--out", type=Path, default=Path("docs/seed_spread.json"))
    parser.add_argument("--population", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.population == 1:
        raise SystemExit("population 1 is the published run's: no tuning looks at it")
    shared = configuration(args.work, "shared", args.population, args.seeds)
    dataset = prepare_dataset(shared, progress=False)
    run_preprocessing(dataset.manifest, shared, args.work / "shared" / "preprocess-report", progress=False)
    manifest = read_manifest(shared.manifest_path)
    table = manifest[manifest.split == shared.eval.split].reset_index(drop=True)
    machine = {"cpu_bf16": "avx512_bf16" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists()
               else None, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "platform": platform.platform()}
    if args.profile:
        print(json.dumps({"machine": machine, "profile": profile(shared, manifest)}))
        return
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["machine"] = machine
    cfgs = {name: configuration(args.work, name, args.population, args.seeds) for name in args.configs}
    for count, seed in enumerate(args.seeds, 1):  # seed by seed, so that every configuration has as many
        for name, cfg in cfgs.items():
            train_seed(cfg, manifest, table, seed, args.work / name / "timings.jsonl")
            print(f"{name} seed {seed} trained", flush=True)
        if count < 2:
            continue
        for name, cfg in cfgs.items():
            now = override(cfg, {"backbone.seeds": args.seeds[:count], "fusion.seeds": args.seeds[:count]})
            results[name] = {"overrides": CONFIGS[name], **score(now, manifest, table),
                             "timings": [json.loads(x) for x in (args.work / name / "timings.jsonl").read_text()
                                         .splitlines()]}
            print(summarise(name, results[name], args.work / name / "timings.jsonl"), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
