"""``vfcross evaluate``: score a trained model (as notebook 04 does, without the notebooks), or an ``.npz`` of
anyone's embeddings, on a dataset; write tables and summary.json. Outputs and rules: ``docs/workflows.md``,
``docs/evaluation.md``.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vfcross.config import EvalConfig, RunConfig, override, preset, to_dict
from vfcross.data.dataset import prepare_dataset
from vfcross.data.voxceleb import FACE_DIR, FACE_VERSION, WAV_DIR, read_meta
from vfcross.evaluation.evaluate import compare, evaluate, trained_identities_note
from vfcross.evaluation.protocols import (OfficialLists, find_meta, generated_protocols, official_protocols, protocols_for,
                                          read_official_lists)
from vfcross.workflows.inference import VoiceFaceModel, load
from vfcross.io import atomic_write
from vfcross.preprocess.run import MODALITIES, PreprocessResult, preprocess, write_report
from vfcross.reporting.environment import package_versions
from vfcross.reporting.summary import data_record
from vfcross.reporting.tables import evaluation_tables, write_table

#: Configuration sections a trained model fixes: they come from the model, never from the command line.
MODEL_SECTIONS = ("face", "voice", "backbone", "fusion")


def evaluation_config(model: VoiceFaceModel, preset_name: str | None = None,
                      changes: Mapping[str, Any] | None = None) -> RunConfig:
    """The model's configuration with the ``eval`` and ``preprocess`` sections of ``preset_name`` (default: the
    model's own) and ``changes``; ValueError for a change to a section the model fixes (:data:`MODEL_SECTIONS`)."""
    fixed = sorted(k for k in changes or {} if k.split(".")[0] in MODEL_SECTIONS)
    if fixed:
        raise ValueError(f"{', '.join(fixed)}: the model fixes its {'/'.join(MODEL_SECTIONS)} settings")
    sections = {}
    if preset_name is not None:
        base = preset(preset_name)
        sections = {"preset": preset_name, "eval": to_dict(base.eval), "preprocess": to_dict(base.preprocess)}
    return override(model.cfg, {**sections, **(changes or {})})


def default_out(model_path: str | os.PathLike) -> Path:
    """``<work or run folder>/evaluation``, or ``<model file stem>-evaluation`` beside a model file."""
    path = Path(model_path)
    return path / "evaluation" if path.is_dir() else path.with_name(f"{path.stem}-evaluation")


def _rows_needed(manifest: pd.DataFrame, cfg: RunConfig, lists: OfficialLists | None, root: Path) -> pd.DataFrame:
    """The manifest rows the protocols use: the files the lists reference, or the evaluation split."""
    if lists is not None:
        rows = manifest[manifest["relpath"].isin(lists.relpaths())]
        if rows.empty:
            raise ValueError(f"none of the files the lists in {lists.folder} reference is in {root}")
        return rows
    rows = manifest[manifest["split"].eq(cfg.eval.split).fillna(False).to_numpy(dtype=bool)]
    if rows.empty:
        raise ValueError(f"no identity of {root} is in split {cfg.eval.split!r}: give its split file with --splits, "
                         "or official lists with --lists")
    return rows


def _preprocess(rows: pd.DataFrame, cfg: RunConfig, progress: bool) -> PreprocessResult:
    """Preprocess ``rows`` one modality at a time, so that every usable file is kept (a training set drops an
    identity's samples lacking the other modality; a list may use such a file, e.g. in a retrieval gallery)."""
    parts = [preprocess(rows[rows["modality"] == m].reset_index(drop=True), cfg, progress=progress)
             for m in MODALITIES if (rows["modality"] == m).any()]
    return PreprocessResult(pd.concat([p.manifest for p in parts], ignore_index=True),
                            pd.concat([p.report for p in parts], ignore_index=True), sum(p.seconds for p in parts))


def evaluate_model(model_path: str | os.PathLike, root: str | os.PathLike, out: str | os.PathLike | None = None,
                   splits: str | os.PathLike | None = None, lists: str | os.PathLike | None = None,
                   preset_name: str | None = None, changes: Mapping[str, Any] | None = None, progress: bool = True,
                   allow_trained_identities: bool = False) -> dict:
    """Score the model at ``model_path`` on the dataset ``root``; write tables and ``summary.json`` to ``out``.

    ``preset_name`` and ``changes`` are :func:`evaluation_config`'s. ValueError when the protocols would score
    identities the model trained or validated on, unless ``allow_trained_identities``. Returns the summary.
    """
    model_path, root = Path(model_path), Path(root)
    out = Path(out) if out is not None else default_out(model_path)
    model = load(model_path)
    cfg = evaluation_config(model, preset_name, changes)
    if lists is not None:
        if cfg.eval.lists and Path(cfg.eval.lists) != Path(lists):
            raise ValueError(f"--lists {lists} and eval.lists={cfg.eval.lists} disagree: give one")
        cfg = override(cfg, {"eval.lists": str(lists)})
    cache_home = model_path if model_path.is_dir() and (model_path / "cache").is_dir() else out  # holds cache/
    cfg = override(cfg, {"work_dir": str(cache_home), "data_root": str(root), "splits_file": str(splits or "")})

    # nothing is trained here; the official lists name their own identities, generated protocols need the split
    dataset = prepare_dataset(cfg, progress, training=False, evaluation=not cfg.eval.lists)
    official = read_official_lists(cfg.eval.lists, root) if cfg.eval.lists else None
    needed = _rows_needed(dataset.manifest, cfg, official, root)
    trained = trained_identities_note(model.trained_on, needed["identity"].unique(), f"model {model_path}")
    if trained and not allow_trained_identities:
        raise ValueError(f"{trained}; pass --allow-trained-identities to score them anyway")
    prepared = _preprocess(needed, cfg, progress)
    table = prepared.manifest
    skipped = prepared.report[prepared.report["outcome"] == "skipped"]
    protocols = protocols_for(table, cfg.eval, root, dict(zip(skipped["relpath"], skipped["reason"])), official)
    result = evaluate(model.embed_preprocessed(table), table, cfg.eval, protocols)

    name = f"VoxCeleb1 layout at {root.name}"
    provenance = {"dataset": name, "preset": cfg.preset, "eval seed": str(cfg.eval.seed)}
    method = f"vfcross model {model_path.name}" + (" (scored on identities it may have trained on)" if trained else "")
    if trained:
        result["notes"] = [trained, *result["notes"]]
    write_report(prepared, out / "preprocess")
    return _write(out, method, result, provenance, protocols, {
        "model": {"path": str(model_path), "preset": model.cfg.preset, "sources": model.sources},
        "trained_identities": {"allowed": allow_trained_identities, "note": trained or "none of the identities "
                               "scored is one that the model's runs trained or validated on"},
        "data": data_record(dataset, prepared, name), "eval": to_dict(cfg.eval), "provenance": provenance})


def _write(out: Path, method: str, result: dict, provenance: dict, protocols, record: dict) -> dict:
    """Write the tables of ``result``, the rows left unscored and summary.json (``record`` and ``result``)."""
    out.mkdir(parents=True, exist_ok=True)
    for table_name, frame in evaluation_tables({method: result}, None, provenance).items():
        write_table(frame, table_name, out)
    summary = {"method": method, "protocols": protocols.source, "missing_rows": protocols.write_missing(out).name,
               **record, "python": platform.python_version(), "packages": package_versions(), **result}
    atomic_write(out / "summary.json", lambda stream: stream.write((json.dumps(summary, indent=2) + "\n").encode()))
    return summary


def read_embeddings(path: str | os.PathLike, meta: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows (a manifest-like table in split "test") and L2-normalised vectors of an embeddings file in
    docs/evaluation.md's format; anything else is a ValueError naming the file and the reason."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such embeddings file") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npz of plain arrays ({error})") from None
    missing = [key for key in ("relpath", "embedding") if key not in arrays]
    if missing:
        raise ValueError(f"{path}: missing key {', '.join(map(repr, missing))} (it holds {sorted(arrays) or 'nothing'})")
    relpaths, vectors = arrays["relpath"], arrays["embedding"]
    if relpaths.ndim != 1 or relpaths.dtype.kind not in "US":
        raise ValueError(f"{path}: relpath must be a 1-d array of strings, got {relpaths.dtype} of shape {relpaths.shape}")
    if vectors.ndim != 2 or vectors.dtype.kind != "f" or len(vectors) != len(relpaths) or not vectors.shape[1]:
        raise ValueError(f"{path}: embedding must be one float row per relpath ({len(relpaths)}), got {vectors.dtype} "
                         f"of shape {vectors.shape}")

    def refuse(bad, what: str) -> None:
        if (bad := np.flatnonzero(bad)).size:
            raise ValueError(f"{path}: {len(bad)} {what}, e.g. {relpaths[bad[0]]}")

    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    refuse(~np.isfinite(vectors).all(axis=1) | (norms == 0), "embeddings are not finite or all zero")
    relpaths = relpaths.astype(str)
    refuse(pd.Series(relpaths).duplicated().to_numpy(), "rows repeat a path that occurs more than once")
    parts = pd.Series(relpaths).str.split("/", expand=True).reindex(columns=range(5))
    voice = (parts[0] == WAV_DIR) & parts[3].notna() & parts[4].isna() & parts[3].str.lower().str.endswith(".wav")
    face = (parts[0] == FACE_DIR) & (parts[2] == FACE_VERSION) & parts[4].notna()
    refuse(~(voice | face).to_numpy(), "paths are not in the VoxCeleb1 layout (wav/<id>/<video>/<n>.wav or "
                                        f"{FACE_DIR}/<name>/{FACE_VERSION}/<video>/<frame>.jpg)")
    identity = np.where(voice, parts[1], parts[1].map(dict(zip(meta["name"], meta["identity"])))).astype(object)
    refuse(~pd.Series(identity).isin(set(meta["identity"])).to_numpy(),
           "paths name identities the meta table does not know")
    table = pd.DataFrame({"identity": identity.astype(str), "modality": np.where(voice, "voice", "face"),
                          "relpath": relpaths, "split": "test"})
    attributes = meta.set_index("identity")[[c for c in ("gender", "nationality", "age") if c in meta]]
    table = table.join(attributes, on="identity").reindex(columns=[*table.columns, "gender", "nationality", "age"])
    return table, (vectors / norms[:, None]).astype(vectors.dtype)


def evaluate_embeddings(path: str | os.PathLike, root: str | os.PathLike, out: str | os.PathLike,
                        lists: str | os.PathLike | None = None, against: str | os.PathLike | None = None,
                        eval_cfg: EvalConfig | None = None) -> dict:
    """Score an embeddings file (:func:`read_embeddings`) as a model is scored; write tables and summary.json.
    ``against`` (a file of the same paths) adds paired differences. Every input is checked before any writing."""
    cfg = eval_cfg or EvalConfig()
    meta = read_meta(find_meta(root, lists))
    table, vectors = read_embeddings(path, meta)
    other = None
    if against is not None:
        other_table, other_vectors = read_embeddings(against, meta)
        order = pd.Index(other_table["relpath"]).get_indexer(table["relpath"])
        if len(other_table) != len(table) or (order < 0).any():
            raise ValueError(f"{against}: holds other paths than {path} ({len(other_table)} vs {len(table)} rows): "
                             "a paired comparison needs the same rows")
        other = other_vectors[order]
    official = read_official_lists(lists, root) if lists else None
    protocols = (official_protocols(official, table, None) if official is not None
                 else generated_protocols(table, cfg.seed, cfg.n_pairs, cfg.n_trials, "test"))
    result = evaluate(vectors, table, cfg, protocols)
    record = {"embeddings": str(path), "rows": {m: int((table["modality"] == m).sum()) for m in ("voice", "face")},
              "eval": to_dict(cfg)}
    if other is not None:
        record["against"] = {"embeddings": str(against), **compare(vectors, other, table, cfg, protocols)}
    return _write(Path(out), Path(path).stem, result, {"embeddings": str(path), "eval seed": str(cfg.seed)},
                  protocols, record)
