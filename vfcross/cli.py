"""``vfcross`` command line: every stage the notebooks drive, without a notebook."""

from __future__ import annotations

import argparse
import json
import sys

from vfcross.config import (
    PRESETS,
    RunConfig,
    SynthConfig,
    override,
    preset,
    save_config,
)


def _changes(items: list[str] | None) -> dict:
    """``--set key=value`` items as dotted-key changes (values parsed as JSON where they are JSON)."""
    changes = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            changes[key] = json.loads(raw)
        except json.JSONDecodeError:
            changes[key] = raw
    return changes


def _config(args: argparse.Namespace) -> RunConfig:
    """The preset named by ``--preset`` with every ``--set key=value`` applied."""
    return override(preset(args.preset), _changes(args.set))


def _synth(args: argparse.Namespace) -> None:
    """Write a synthetic population in the VoxCeleb1 layout."""
    from vfcross.data.synthetic.writer import write_population

    base = preset(args.preset).synth
    cfg = SynthConfig(**{**base.__dict__, "identities": args.identities, "seed": args.seed,
                         "workers": args.workers or base.workers})
    out = write_population(args.out, cfg)
    print(f"population of {cfg.identities} identities (seed {cfg.seed}) in {out}")


def _ingest(args: argparse.Namespace) -> None:
    """Read a dataset into a manifest CSV and report what was skipped."""
    from vfcross.data.manifest import write_manifest
    from vfcross.data.voxceleb import scan_dataset

    manifest, skipped = scan_dataset(args.root, args.splits)
    out = write_manifest(manifest, args.out)
    counts = manifest.groupby(["modality"]).size().to_dict()
    print(f"{manifest.identity.nunique()} identities, {counts} samples -> {out}")
    if len(skipped):
        print(f"skipped {len(skipped)}:\n{skipped.groupby('reason').size().to_string()}")


def _preprocess(args: argparse.Namespace) -> None:
    """Preprocess a dataset (or the preset's synthetic population) into the cache."""
    from vfcross.data.manifest import write_manifest
    from vfcross.data.synthetic.writer import write_population
    from vfcross.data.voxceleb import read_dataset
    from vfcross.preprocess.run import preprocess, write_report

    cfg = _config(args)
    if args.root:
        cfg.data_root = args.root
    if not cfg.data_root:
        write_population(cfg.dataset_root, cfg.synth)
    result = preprocess(read_dataset(cfg.dataset_root, args.splits), cfg)
    out = cfg.manifest_path.parent
    write_report(result, out)
    write_manifest(result.manifest, cfg.manifest_path)
    save_config(cfg, out)
    print(result.summary().to_string())


def _train(args: argparse.Namespace) -> None:
    """Train the backbone on a preprocessed manifest (runs under torchrun too)."""
    from vfcross.backbone.task import BackboneTask
    from vfcross.data.manifest import read_manifest
    from vfcross.training import train

    cfg = _config(args)
    task = BackboneTask(read_manifest(args.manifest), cfg.backbone)
    history = train(task, cfg.backbone.loop, args.out, resume=not args.no_resume)
    if history:
        save_config(cfg, args.out)
        print(json.dumps(history[-1]))


def _export(args: argparse.Namespace) -> None:
    """Export a trained model (backbone + fusion + preprocessing settings) to one safetensors file."""
    from vfcross.inference import export

    out = export(args.run, args.out, args.backbone)
    print(f"model of {args.run} -> {out} ({out.stat().st_size / 2**20:.1f} MiB)")


def _match(args: argparse.Namespace) -> None:
    """Rank faces for a voice (or voices for a face) by the cosine similarity of a trained model."""
    from vfcross.inference import load, match
    from vfcross.io import markdown_table

    if args.voice and (args.voices or not args.faces):
        raise ValueError("--voice needs --faces (and no --voices)")
    if args.face and (args.faces or not args.voices):
        raise ValueError("--face needs --voices (and no --faces)")
    modality, other = ("voice", "face") if args.voice else ("face", "voice")
    query, candidates = (args.voice, args.faces) if args.voice else (args.face, args.voices)
    ranking = match(load(args.model), query, candidates, modality).rename(columns={"candidate": other})
    if args.json:
        print(json.dumps({"model": args.model, "query": {"modality": modality, "path": query},
                          "ranking": ranking.to_dict(orient="records")}, indent=2))
    else:
        print(f"{modality} {query} against {len(candidates)} {other}s (cosine similarity, model {args.model})\n")
        print(markdown_table(ranking.assign(similarity=ranking["similarity"].map("{:.4f}".format))), end="")


def _evaluate(args: argparse.Namespace) -> None:
    """Score a trained model on a dataset (generated protocols or the official lists): tables and summary.json."""
    from vfcross.scoring import default_out, evaluate_model

    out = args.out or default_out(args.model)
    summary = evaluate_model(args.model, args.root, out, args.splits, args.lists, args.preset,
                             _changes(args.set))
    print(f"{summary['method']} on {args.root}: {summary['protocols']}")
    for c in summary["coverage"]:
        print(f"  {c['protocol']}: {c['scored']} of {c['rows']} rows scored" + (f" ({c['note']})" if "note" in c else ""))
    print(f"tables, summary.json and missing_rows.csv.gz in {out}")


def _reproduce(args: argparse.Namespace) -> None:
    """Run every notebook headlessly and publish reports/."""
    from vfcross.pipeline import reproduce

    timings = reproduce(args.preset, args.reports, args.work_dir, args.root or "", args.splits or "")
    print(json.dumps(timings, indent=2))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``vfcross`` command."""
    parser = argparse.ArgumentParser(prog="vfcross", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help=_synth.__doc__)
    p.add_argument("--out", required=True, help="folder to create")
    p.add_argument("--identities", type=int, default=SynthConfig.identities)
    p.add_argument("--seed", type=int, default=SynthConfig.seed)
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: the preset's)")
    p.add_argument("--preset", choices=PRESETS, default="default", help="sizes other than the count")
    p.set_defaults(func=_synth)

    p = sub.add_parser("ingest", help=_ingest.__doc__)
    p.add_argument("--root", required=True, help="dataset in the VoxCeleb1 layout")
    p.add_argument("--splits", default=None, help="identity_splits.txt (default: the one in --root, if any)")
    p.add_argument("--out", default="work/manifest.csv")
    p.set_defaults(func=_ingest)

    p = sub.add_parser("preprocess", help=_preprocess.__doc__)
    p.add_argument("--preset", choices=PRESETS, default="default")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. face.size=128")
    p.add_argument("--root", default="", help="dataset root (default: the synthetic population)")
    p.add_argument("--splits", default=None)
    p.set_defaults(func=_preprocess)

    p = sub.add_parser("train", help=_train.__doc__)
    p.add_argument("--manifest", required=True, help="manifest.csv written by `vfcross preprocess`")
    p.add_argument("--out", required=True, help="run folder (checkpoint, metrics.jsonl, config.json)")
    p.add_argument("--preset", choices=PRESETS, default="default")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting, e.g. backbone.architecture=dual")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    p.set_defaults(func=_train)

    p = sub.add_parser("export", help=_export.__doc__)
    p.add_argument("--run", required=True,
                   help="work folder holding runs/backbone-single and runs/fusion-full, or a fusion run folder")
    p.add_argument("--out", required=True, help="model file to write, e.g. model.safetensors")
    p.add_argument("--backbone", default=None, help="backbone run folder, if not beside the fusion run")
    p.set_defaults(func=_export)

    p = sub.add_parser("match", help=_match.__doc__)
    p.add_argument("model", help="model file from `vfcross export`, a work folder or a fusion run folder")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--voice", help="audio file to match against --faces")
    query.add_argument("--face", help="image file to match against --voices")
    p.add_argument("--faces", nargs="+", default=[], metavar="IMAGE")
    p.add_argument("--voices", nargs="+", default=[], metavar="AUDIO")
    p.add_argument("--json", action="store_true", help="print the ranking as JSON")
    p.set_defaults(func=_match)

    p = sub.add_parser("evaluate", help=_evaluate.__doc__)
    p.add_argument("model", help="model file from `vfcross export`, a work folder or a fusion run folder")
    p.add_argument("--root", required=True, help="dataset in the VoxCeleb1 layout")
    p.add_argument("--splits", default=None, help="identity_splits.txt (default: the one in --root, if any)")
    p.add_argument("--lists", default=None,
                   help="folder of the official lists (veriflist_test_*, matching_*, wav_20k.csv, jpg_20k.csv): "
                        "scored instead of protocols generated from the test split")
    p.add_argument("--out", default=None,
                   help="output folder (default: <work folder>/evaluation, or <model file stem>-evaluation)")
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="evaluation settings (eval.*, preprocess.*) of a preset (default: the model's own)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override an eval.* or preprocess.* setting")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("reproduce", help=_reproduce.__doc__)
    p.add_argument("--preset", choices=PRESETS, default="default")
    p.add_argument("--reports", default="reports")
    p.add_argument("--work-dir", default="work")
    p.add_argument("--root", default="", help="dataset root (default: the synthetic population)")
    p.add_argument("--splits", default="")
    p.set_defaults(func=_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vfcross`` console script."""
    from vfcross.pipeline import NotebookFailed

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, NotebookFailed) as err:
        print(f"vfcross {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
