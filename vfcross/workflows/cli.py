"""``vfcross`` command line: every stage the notebooks drive, without a notebook."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from vfcross.config import (PRESETS, ConfigError, RunConfig, SpokenLanguage, SynthConfig, choices, override,
                            parse_setting, preset, save_config)

SHOWN_SKIPS = 5  # skipped files the terminal names before pointing at the full list


class _Terminated(BaseException):
    """SIGTERM, turned into an exception so that temporary files and worker pools are cleaned up."""


def _changes(items: list[str] | None) -> dict:
    """``--set key=value`` items as dotted-key changes, each value read as its setting's type."""
    changes = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        changes[key] = parse_setting(key, raw)
    return changes


def _config(args: argparse.Namespace) -> RunConfig:
    """The ``--preset`` with every ``--set`` and the dataset flags applied; a flag sets its setting (so the saved
    configuration records it), and a flag and a ``--set`` of different values are an error."""
    changes = _changes(getattr(args, "set", None))
    cfg = override(preset(args.preset), changes)
    for flag, key in (("root", "data_root"), ("splits", "splits_file"),
                      ("skip_unlisted_identities", "skip_unlisted_identities")):
        value = getattr(args, flag, None)
        if value in (None, "", False):
            continue
        if key in changes and changes[key] != value:
            raise ValueError(f"--{flag.replace('_', '-')} {value} and --set {key}={changes[key]} disagree: give one")
        cfg = override(cfg, {key: value})
    return cfg


def _print_notes(notes: list[str]) -> None:
    print("".join(f"note: {note}\n" for note in notes), end="")


def _synth(args: argparse.Namespace) -> None:
    """Write a synthetic population in the VoxCeleb1 layout."""
    from vfcross.data.synthetic.writer import write_population

    base = preset(args.preset).synth
    cfg = SynthConfig(**{**base.__dict__, "identities": args.identities, "seed": args.seed,
                         "workers": args.workers or base.workers, "languages": tuple(args.languages)})
    out = write_population(args.out, cfg)
    spoken = f", speaking {' and '.join(cfg.languages)}" if cfg.languages else ""
    print(f"population of {cfg.identities} identities (seed {cfg.seed}){spoken} in {out}")


def _ingest(args: argparse.Namespace) -> None:
    """Read a dataset into a manifest CSV, the files left out listed beside it."""
    from vfcross.data.manifest import write_manifest
    from vfcross.data.voxceleb import scan_dataset
    from vfcross.reporting.tables import describe_skips

    manifest, skipped = scan_dataset(args.root, args.splits, args.skip_unlisted_identities)
    out = write_manifest(manifest, args.out)
    skipped_path = Path(out).with_name(Path(out).stem + "_skipped.csv")
    skipped.to_csv(skipped_path, index=False)
    counts = manifest.groupby(["modality"]).size().to_dict()
    print(f"{manifest.identity.nunique()} identities, {counts} samples -> {out}")
    print(describe_skips(skipped, "path", skipped_path, SHOWN_SKIPS))


def _preprocess(args: argparse.Namespace) -> None:
    """Preprocess a dataset (default: the preset's synthetic population) into the cache."""
    from vfcross.data.dataset import prepare_dataset
    from vfcross.data.splits import check_splits
    from vfcross.reporting.tables import describe_skips
    from vfcross.preprocess.run import run_preprocessing

    cfg = _config(args)
    dataset = prepare_dataset(cfg)  # the splits are checked here, before any work
    ingest_skipped, notes, out = dataset.skipped, list(dataset.notes), cfg.manifest_path.parent
    _print_notes(notes)
    result = run_preprocessing(dataset.manifest, cfg, out, ingest_skipped=ingest_skipped)
    print(result.summary().to_string())
    if len(ingest_skipped):
        print("when reading the dataset, " + describe_skips(ingest_skipped, "path", out / "ingest_skipped.csv",
                                                           SHOWN_SKIPS))
    skipped = result.report[result.report["outcome"] == "skipped"]
    print("when preprocessing, " + describe_skips(skipped, "relpath", out / "preprocess_report.csv", SHOWN_SKIPS))
    _print_notes([n for n in check_splits(result.manifest, cfg.eval.split) if n not in notes])
    print(f"manifest for training: {cfg.manifest_path}")


def _train(args: argparse.Namespace) -> None:
    """Train the backbone on a preprocessed manifest (under torchrun too)."""
    from vfcross.backbone.task import BackboneTask
    from vfcross.data.manifest import read_manifest
    from vfcross.data.splits import check_splits
    from vfcross.training import train

    cfg = _config(args)
    manifest = read_manifest(args.manifest)
    _print_notes(check_splits(manifest, evaluation_split=None))
    history = train(BackboneTask(manifest, cfg.backbone), cfg.backbone.loop, args.out, resume=not args.no_resume)
    if history:  # under torchrun only rank 0 keeps the history and writes
        save_config(cfg, args.out)
        print(json.dumps(history[-1]))


def _export(args: argparse.Namespace) -> None:
    """Export a trained model (backbone, fusion, preprocessing settings) to one safetensors file."""
    from vfcross.workflows.inference import export

    out = export(args.run, args.out, args.backbone)
    print(f"model of {args.run} -> {out} ({out.stat().st_size / 2**20:.1f} MiB)")


def _match(args: argparse.Namespace) -> None:
    """Rank faces for a voice (or voices for a face) by a trained model's cosine similarity."""
    from vfcross.workflows.inference import load, match
    from vfcross.reporting.tables import markdown

    modality, other = ("voice", "face") if args.voice else ("face", "voice")
    query, candidates, same = ((args.voice, args.faces, args.voices) if args.voice
                               else (args.face, args.voices, args.faces))
    if same or not candidates:
        raise ValueError(f"--{modality} needs --{other}s (and no --{modality}s)")
    ranking = match(load(args.model), query, candidates, modality).rename(columns={"candidate": other})
    if args.json:
        print(json.dumps({"model": args.model, "query": {"modality": modality, "path": query},
                          "ranking": ranking.to_dict(orient="records")}, indent=2))
    else:
        print(f"{modality} {query} against {len(candidates)} {other}s (cosine similarity, model {args.model})\n")
        print(markdown(ranking.assign(similarity=ranking["similarity"].map("{:.4f}".format))), end="")


def _evaluate(args: argparse.Namespace) -> None:
    """Score a trained model, or anyone's embeddings, on a dataset (generated protocols or the official lists)."""
    from vfcross.workflows.scoring import default_out, evaluate_embeddings, evaluate_model

    if (args.model is None) == (args.embeddings is None):
        raise ValueError("give a model or --embeddings FILE.npz (one of them)")
    if args.embeddings:
        changes = _changes(args.set)
        if any(not key.startswith("eval.") for key in changes):
            raise ValueError("--embeddings takes eval.* settings only")
        cfg = override(preset(args.preset or "default"), changes).eval
        out = args.out or default_out(args.embeddings)
        summary = evaluate_embeddings(args.embeddings, args.root, out, args.lists, args.against, cfg)
        auc = summary["verification"].get("auc")
        print(f"{args.embeddings}: {summary['protocols']}; verification AUC "
              f"{'n/a' if auc is None else f'{100 * auc:.2f}%'}; tables and summary.json in {out}")
        return
    if args.against:
        raise ValueError("--against compares two embeddings files: use it with --embeddings")
    out = args.out or default_out(args.model)
    summary = evaluate_model(args.model, args.root, out, args.splits, args.lists, args.preset,
                             _changes(args.set), allow_trained_identities=args.allow_trained_identities)
    print(f"{summary['method']} on {args.root}: {summary['protocols']}")
    for c in summary["coverage"]:
        print(f"  {c['protocol']}: {c['scored']} of {c['rows']} rows scored" + (f" ({c['note']})" if "note" in c else ""))
    print(f"tables, summary.json and missing_rows.csv.gz in {out}")


def _plan(args: argparse.Namespace, cfg: RunConfig | None = None, manifest=None) -> None:
    """Print what a run will cost (counts; hours, disk and memory per stage); stop if it cannot fit here."""
    from vfcross.io import atomic_write
    from vfcross.workflows.plan import describe, make_plan, shortfall

    cfg = cfg or _config(args)
    plan = make_plan(cfg, args.lists or None, getattr(args, "gpu_check", None), manifest)
    print(describe(plan), flush=True)
    if getattr(args, "json", None):
        atomic_write(Path(args.json), lambda stream: stream.write((json.dumps(plan, indent=2) + "\n").encode()))
    why = shortfall(plan, cfg.work_dir)
    if why and not args.force:
        raise ValueError(f"{why}: the run does not fit here (--force goes on anyway)")
    if why:
        print(f"note: {why}; going on (--force)")


def _reproduce(args: argparse.Namespace) -> None:
    """Print the plan, then run every notebook headlessly and publish reports/."""
    from vfcross.data.dataset import prepare_dataset
    from vfcross.workflows.pipeline import reproduce

    if args.lists:
        args.set = [*(args.set or []), f"eval.lists={Path(args.lists).resolve()}"]
    cfg = _config(args)  # every setting is checked before the notebooks start
    dataset = prepare_dataset(cfg) if cfg.data_root else None  # a real dataset can be checked too
    if dataset:
        _print_notes(list(dataset.notes))
    _plan(args, override(cfg, {"work_dir": args.work_dir}), dataset and dataset.manifest)
    overrides = _changes(args.set)
    overrides.pop("data_root", None), overrides.pop("splits_file", None)  # passed as the notebooks' own parameters
    if cfg.skip_unlisted_identities:
        overrides["skip_unlisted_identities"] = True
    timings = reproduce(args.preset, args.reports, args.work_dir, cfg.data_root, cfg.splits_file, overrides)
    print(json.dumps(timings, indent=2))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``vfcross`` command."""
    parser = argparse.ArgumentParser(prog="vfcross", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    model_help = "model file from `vfcross export`, a work folder or a fusion run folder"

    def command(func, settings: str | None = None, preset_default: str | None = "default") -> argparse.ArgumentParser:
        p = sub.add_parser(func.__name__[1:], help=func.__doc__)
        p.set_defaults(func=func)
        if settings:
            p.add_argument("--preset", choices=PRESETS, default=preset_default)
            p.add_argument("--set", action="append", metavar="KEY=VALUE", help=f"override a setting, e.g. {settings}")
        return p

    def dataset_flags(p: argparse.ArgumentParser, root_required: bool = False) -> None:
        p.add_argument("--root", required=root_required, default="",
                       help="dataset in the VoxCeleb1 layout (sets data_root; default: the synthetic population)")
        p.add_argument("--splits", default=None, help="identity_splits.txt (sets splits_file; default: the dataset's)")
        p.add_argument("--skip-unlisted-identities", action="store_true",
                       help="leave out (and record) identities the split file does not list instead of stopping")

    p = command(_synth)
    p.add_argument("--out", required=True, help="folder to create")
    p.add_argument("--identities", type=int, default=SynthConfig.identities)
    p.add_argument("--seed", type=int, default=SynthConfig.seed)
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: the preset's)")
    p.add_argument("--preset", choices=PRESETS, default="default", help="sizes other than the count")
    p.add_argument("--languages", nargs="+", default=[], choices=choices(SpokenLanguage), metavar="LANGUAGE",
                   help=f"every identity speaks each of these ({', '.join(choices(SpokenLanguage))}) in videos of "
                        "its own (default: English only)")

    p = command(_ingest)
    dataset_flags(p, root_required=True)
    p.add_argument("--out", default="work/manifest.csv", help="manifest to write (skip list: <name>_skipped.csv)")

    dataset_flags(command(_preprocess, "face.size=128"))

    p = command(_train, "backbone.architecture=dual")
    p.add_argument("--manifest", required=True, help="manifest.csv written by `vfcross preprocess`")
    p.add_argument("--out", required=True, help="run folder (checkpoint, metrics.jsonl, config.json)")
    p.add_argument("--no-resume", action="store_true", help="start afresh, replacing the folder's model")

    p = command(_export)
    p.add_argument("--run", required=True, help="work folder (runs/backbone-single, runs/fusion-full) or fusion run")
    p.add_argument("--out", required=True, help="model file to write, e.g. model.safetensors")
    p.add_argument("--backbone", default=None, help="backbone run folder, if not beside the fusion run")

    p = command(_match)
    p.add_argument("model", help=model_help)
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--voice", help="audio file to match against --faces")
    query.add_argument("--face", help="image file to match against --voices")
    p.add_argument("--faces", nargs="+", default=[], metavar="IMAGE")
    p.add_argument("--voices", nargs="+", default=[], metavar="AUDIO")
    p.add_argument("--json", action="store_true", help="print the ranking as JSON")

    p = command(_evaluate, "eval.n_boot=200 (eval.* and preprocess.* only; default preset: the model's)", None)
    p.add_argument("model", nargs="?", help=model_help)
    p.add_argument("--embeddings", help="an .npz of anyone's embeddings (relpath, embedding) to score instead")
    p.add_argument("--against", help="a second embeddings file of the same paths: adds paired differences")
    p.add_argument("--root", required=True, help="dataset in the VoxCeleb1 layout (for --embeddings, vox1_meta.csv)")
    p.add_argument("--splits", default=None, help="identity_splits.txt (default: the one in --root, if any)")
    p.add_argument("--lists", default=None, help="folder of the official lists, scored instead of generated protocols")
    p.add_argument("--out", default=None, help="output folder (default: <work folder>/evaluation, "
                                               "or <model file stem>-evaluation)")
    p.add_argument("--allow-trained-identities", action="store_true",
                   help="score identities the model trained or validated on (refused otherwise), and say so")

    plan, reproduce = (command(func, "backbone.loop.epochs=40 (in every notebook)") for func in (_plan, _reproduce))
    for p in (plan, reproduce):
        dataset_flags(p)
        p.add_argument("--lists", default="", help="folder of the official VoxCeleb1 lists to score (sets eval.lists)")
        p.add_argument("--force", action="store_true", help="go on where the disk or the memory would not suffice")
    plan.add_argument("--json", default=None, help="also write the plan as JSON (counts, stages, total)")
    plan.add_argument("--gpu-check", default=None, help="JSON of benchmarks/gpu_check.py: its measured step time "
                                                        "replaces the reference GPU's estimate")
    reproduce.add_argument("--reports", default="reports")
    reproduce.add_argument("--work-dir", default="work")
    return parser


def _raise_terminated(signum: int, frame: object) -> None:
    """SIGTERM handler: unwind like an exception, so that cleanup code runs."""
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    """The ``vfcross`` console script: an error a user can fix ends with one line and exit status 2, Ctrl-C with 130,
    SIGTERM with 143; finished work (cache entries, epoch checkpoints) is kept for the same command to resume."""
    from vfcross.workflows.pipeline import NotebookFailed

    args = build_parser().parse_args(argv)
    name = f"vfcross {args.command}"
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        args.func(args)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError, KeyError, NotebookFailed) as err:
        print(f"{name}: error: {err.args[0] if isinstance(err, KeyError) and err.args else err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted; finished work is kept, run the same command to resume", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"{name}: terminated; finished work is kept, run the same command to resume", file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
