"""The preprocessing stage: a manifest in, cached tensors and a report out.

:func:`preprocess` turns every manifest row into a cache entry (a face crop or a clip) or a recorded reason why not. The
work is cut into tasks, one cache pack each, shared by this process and ``workers - 1`` spawned helpers
(:func:`_schedule`); finished work is found in the cache by path, size and mtime. A script calling it must guard its
entry point with ``if __name__ == "__main__":`` (spawn). See docs/preprocessing.md."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass
from itertools import zip_longest
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import torch
from tqdm.auto import tqdm

from vfcross.config import FaceConfig, RunConfig, save_config
from vfcross.data.manifest import write_manifest
from vfcross.data.splits import check_splits
from vfcross.processes import worker_pool
from vfcross.training import device
from vfcross.preprocess.cache import Outcome, change_key, open_folder, read_index, store
from vfcross.preprocess.faces import (FALLBACK_REASON, IMAGE_ERRORS, NO_FACE_REASON, FaceDetector, crop_faces,
                                     describe_image_error, encode_face, open_rgb, single_torch_thread)
from vfcross.preprocess.voices import encode_voice, speech

MODALITIES = ("face", "voice")
#: Outcomes that leave a usable tensor.
USABLE = ("processed", "cached")
#: Samples per task (one pack): enough to amortise the hand-over, few enough to balance the load.
_FACES_PER_TASK, _CLIPS_PER_TASK = 32, 16
#: Single-core seconds per face and per clip, and the least work worth spawning helpers for (each needs seconds
#: to import torch).
_FACE_SECONDS, _CLIP_SECONDS, _MIN_POOL_SECONDS = 0.02, 0.005, 10.0
#: MTCNN batches' worth of pixels (``FaceConfig.batch_pixels``) a face task decodes before detecting: bounded memory.
_BATCHES_PER_CHUNK = 8

#: A sample still to be processed: manifest position, source path, cache key.
Job = tuple[int, str, str]
#: A result for a pack: key, entry bytes (None: skipped), suffix, reason.
Entry = tuple[str, bytes | None, str, str]
#: A unit of work for a worker: modality, its jobs, the cache folder, the modality's settings.
Task = tuple[str, list[Job], Path, Any]


@dataclass
class PreprocessResult:
    """What :func:`preprocess` produced, and its wall seconds. ``manifest``: the usable rows, with ``cache_path`` and
    ``fallback`` (a crop without a detected face). ``report``: per input sample ``relpath, modality, identity, outcome
    ('processed' | 'cached' | 'skipped'), reason``."""

    manifest: pd.DataFrame
    report: pd.DataFrame
    seconds: float = 0.0

    def describe(self) -> str:
        """One line: processed, taken from the cache, skipped (and face crops without a detected face)."""
        done = self.report["outcome"].value_counts()
        return (f"{done.get('processed', 0)} processed, {done.get('cached', 0)} from the cache, "
                f"{done.get('skipped', 0)} skipped; {int(self.manifest['fallback'].sum())} face crops without a "
                f"detected face; {self.seconds:.1f} s")

    def summary(self) -> pd.DataFrame:
        """Sample counts per modality, outcome and reason."""
        return (self.report.groupby(["modality", "outcome", "reason"], dropna=False).size() .reset_index(name="count"))


def run_preprocessing(manifest: pd.DataFrame, cfg: RunConfig, report_dir: str | Path,
                      progress: bool = True, ingest_skipped: pd.DataFrame | None = None) -> PreprocessResult:
    """:func:`preprocess`, its report (and ``ingest_skipped``) to ``report_dir``, the manifest to ``cfg.manifest_path``.
    The splits are checked again, since unusable samples may have cost identities (a ValueError naming the report)."""
    result = preprocess(manifest, cfg, progress)
    report_csv, _ = write_report(result, report_dir, ingest_skipped)
    write_manifest(result.manifest, cfg.manifest_path)
    save_config(cfg, cfg.manifest_path.parent)
    try:
        check_splits(result.manifest, cfg.eval.split)
    except ValueError as err:
        raise ValueError(f"after preprocessing, {err}; see {report_csv}") from None
    return result


def preprocess(manifest: pd.DataFrame, cfg: RunConfig, progress: bool = True) -> PreprocessResult:
    """Preprocess every sample of ``manifest`` into the cache under ``cfg.cache_dir``; unusable ones get a reason. A
    face without a detection is skipped unless ``cfg.face.no_face == "fallback"`` (its centre crop, flagged). An
    identity left without a usable sample of a modality leaves the manifest (its tensors stay cached)."""
    start = time.perf_counter()
    folders = {m: open_folder(cfg.cache_dir, m, getattr(cfg, m)) for m in MODALITIES}
    outcomes, todo, copies = _triage(manifest, folders)
    outcomes.update(_process(todo, folders, cfg, progress))
    outcomes.update({index: outcomes[first] for index, first in copies.items()})

    ordered = [_apply_no_face(outcomes[i], cfg.face) if modality == "face" else outcomes[i]
               for i, modality in enumerate(manifest["modality"])]
    report = pd.DataFrame({**{c: manifest[c].to_numpy() for c in ("relpath", "modality", "identity")},
                           "outcome": [o.outcome for o in ordered], "reason": [o.reason for o in ordered]})
    report = _drop_incomplete_identities(report)
    usable = report["outcome"].isin(USABLE).to_numpy()
    kept = manifest.reset_index(drop=True).assign(
        cache_path=[o.cache_path for o in ordered], fallback=[o.reason == FALLBACK_REASON for o in ordered],
    )
    return PreprocessResult(manifest=kept[usable].reset_index(drop=True), report=report,
                            seconds=time.perf_counter() - start)


def _apply_no_face(outcome: Outcome, cfg: FaceConfig) -> Outcome:
    """A face outcome under the ``no_face`` policy: a fallback crop is skipped unless opted in."""
    if outcome.reason == FALLBACK_REASON and outcome.outcome in USABLE and cfg.no_face == "skip":
        return Outcome("skipped", NO_FACE_REASON)
    return outcome


def _triage(manifest: pd.DataFrame, folders: dict[str, Path]
            ) -> tuple[dict[int, Outcome], dict[str, list[Job]], dict[int, int]]:
    """Outcomes already known (by change key: one ``stat``), the work left, and rows repeating an earlier file."""
    outcomes: dict[int, Outcome] = {}
    todo: dict[str, list[Job]] = {m: [] for m in MODALITIES}
    known = {m: read_index(folders[m]) if (manifest["modality"] == m).any() else {} for m in MODALITIES}
    first: dict[str, int] = {}
    copies: dict[int, int] = {}
    for index, (modality, path) in enumerate(zip(manifest["modality"], manifest["path"].astype(str))):
        if modality not in MODALITIES:
            outcomes[index] = Outcome("skipped", f"unknown modality {modality!r}")
            continue
        try:
            key = change_key(path, folders[modality])
        except OSError as err:
            outcomes[index] = _unreadable(modality, err)
            continue
        if key in known[modality]:
            outcomes[index] = known[modality][key]
        elif key in first:
            copies[index] = first[key]
        else:
            first[key] = index
            todo[modality].append((index, path, key))
    return outcomes, todo, copies


def _unreadable(modality: str, err: OSError) -> Outcome:
    """The outcome of a source file that cannot be read (not cached: the next run tries again)."""
    return Outcome("skipped", f"unreadable {'image' if modality == 'face' else 'audio'}: {err.strerror or err}")


def _drop_incomplete_identities(report: pd.DataFrame) -> pd.DataFrame:
    """Mark the usable rows of identities lacking a usable sample of some modality as skipped."""
    report = report.copy()
    for modality in [m for m in MODALITIES if (report["modality"] == m).any()]:
        usable = report["outcome"].isin(USABLE)
        covered = report.loc[usable & (report["modality"] == modality), "identity"].unique()
        lost = usable & ~report["identity"].isin(covered)
        report.loc[lost, "outcome"] = "skipped"
        report.loc[lost, "reason"] = f"identity has no usable {modality} samples"
    return report


def _process(todo: dict[str, list[Job]], folders: dict[str, Path], cfg: RunConfig,
             progress: bool) -> dict[int, Outcome]:
    """Make the tensors of ``todo`` with ``cfg.preprocess.workers`` processes and return their outcomes."""
    dev = device()
    face_device = str(dev) if dev.type == "cuda" and todo["face"] else None
    face_tasks = _tasks("face", todo["face"], _FACES_PER_TASK, folders["face"], cfg.face)
    voice_tasks = _tasks("voice", todo["voice"], _CLIPS_PER_TASK, folders["voice"], cfg.voice)
    tasks = [t for pair in zip_longest(face_tasks, voice_tasks) for t in pair if t is not None]
    work = len(todo["face"]) * _FACE_SECONDS + len(todo["voice"]) * _CLIP_SECONDS
    helpers = min(cfg.preprocess.workers - 1, len(tasks) - 1) if work >= _MIN_POOL_SECONDS else 0
    bars = {m: tqdm(total=len(todo[m]), desc=f"{m}s", unit="img" if m == "face" else "clip",
                    disable=not progress or not todo[m]) for m in MODALITIES}
    results: dict[int, Outcome] = {}
    try:
        pool_block = worker_pool(helpers, "spawn") if helpers > 0 else contextlib.nullcontext()
        with single_torch_thread(), pool_block as pool:
            for modality, outcomes in _schedule(tasks, pool, helpers, face_device):
                results.update(outcomes)
                bars[modality].update(len(outcomes))
    finally:
        for bar in bars.values():
            bar.close()
    return results


def _schedule(tasks: list[Task], pool: Pool | None, helpers: int,
              face_device: str | None) -> Iterator[tuple[str, list[tuple[int, Outcome]]]]:
    """Run ``tasks`` here and in ``pool``'s ``helpers``; yield each task's outcomes. This process works from the end of
    the list at once; a helper gets tasks from the front, two at a time, once it reports ready, so a pool is never
    slower than this process alone. ``face_device``: CUDA for MTCNN."""
    waiting = deque(tasks)
    probes = [pool.apply_async(_ready) for _ in range(helpers)] if pool else []
    ready, running = 0, []
    while waiting or running:
        ready += sum(p.ready() for p in probes)
        probes = [p for p in probes if not p.ready()]
        while len(running) < 2 * ready and waiting:
            running.append(pool.apply_async(_run_task, (waiting.popleft(), face_device)))
        for finished in [r for r in running if r.ready()]:
            running.remove(finished)
            yield finished.get()
        if waiting:
            yield _run_task(waiting.pop(), face_device)
        elif running:
            running[0].wait(0.05)


def _tasks(modality: str, jobs: list[Job], size: int, folder: Path, settings: Any) -> list[Task]:
    """The tasks of one modality's jobs, at most ``size`` consecutive jobs each."""
    return [(modality, jobs[start:start + size], folder, settings) for start in range(0, len(jobs), size)]


def _ready() -> bool:
    """A helper's first task: it answers once the helper is up and has imported this module."""
    return True


def _run_task(task: Task, face_device: str | None = None) -> tuple[str, list[tuple[int, Outcome]]]:
    """Process one task and store its pack (an unreadable file is not stored: a later run tries again)."""
    torch.set_num_threads(1)  # processes are the parallelism; one thread each is fastest on CPU
    modality, jobs, folder, settings = task
    outcomes: dict[int, Outcome] = {}
    readable = []
    for index, path, key in jobs:
        try:
            readable.append((index, key, Path(path).read_bytes()))
        except OSError as err:
            outcomes[index] = _unreadable(modality, err)
    if modality == "face":
        entries = dict(_face_entries(readable, settings, face_device))
    else:
        entries = {}
        for index, key, data in readable:
            kept, reason = speech(data, settings)
            entries[index] = (key, None, "", reason) if kept is None else (key, *encode_voice(kept, settings), reason)
    if entries:
        outcomes.update(zip(entries, store(folder, list(entries.values()))))
    return modality, [(index, outcomes[index]) for index, _, _ in jobs]


_DETECTORS: dict[tuple[str, str | None], FaceDetector] = {}


def _detector(cfg: FaceConfig, device: str | None) -> FaceDetector:
    """The MTCNN detector for ``cfg`` on ``device``, built once per process."""
    key = (repr(cfg), device)
    if key not in _DETECTORS:
        _DETECTORS[key] = FaceDetector(cfg, device)
    return _DETECTORS[key]


def _face_entries(jobs: list[tuple[int, str, bytes]], cfg: FaceConfig,
                  device: str | None = None) -> Iterator[tuple[int, Entry]]:
    """Decode, detect, align and encode the faces of ``(index, key, file bytes)`` jobs, a bounded chunk at a time."""
    detector = _detector(cfg, device)
    images, waiting, pixels = [], [], 0
    for position, (index, key, data) in enumerate(jobs):
        try:
            image = open_rgb(data)
        except IMAGE_ERRORS as err:
            yield index, (key, None, "", f"unreadable image: {describe_image_error(err)}")
        else:
            images.append(image)
            waiting.append((index, key))
            pixels += image.width * image.height
        if waiting and (pixels >= _BATCHES_PER_CHUNK * cfg.batch_pixels or position == len(jobs) - 1):
            for (index, key), (crop, reason) in zip(waiting, crop_faces(images, detector)):
                yield index, (key, *encode_face(crop, cfg), reason)
            images, waiting, pixels = [], [], 0


def write_report(result: PreprocessResult, out_dir: str | Path,
                 ingest_skipped: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """Write ``preprocess_report.csv`` (every sample) and ``preprocess_summary.md`` (counts); with
    ``ingest_skipped`` (the files the scan left out) also ``ingest_skipped.csv``, counted in the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "preprocess_report.csv"
    result.report.to_csv(csv_path, index=False)
    markdown = lambda table: table.fillna("").to_markdown(index=False, stralign=None, numalign=None) + "\n"  # noqa: E731
    text = "# Preprocessing summary\n\n" + markdown(result.summary())
    if ingest_skipped is not None:
        ingest_skipped.to_csv(out / "ingest_skipped.csv", index=False)
        counts = ingest_skipped.groupby(["modality", "reason"], dropna=False).size().reset_index(name="count")
        text += ("\n## Left out when the dataset was read (`ingest_skipped.csv`)\n\n"
                 + (markdown(counts) if len(counts) else "nothing\n"))
    md_path = out / "preprocess_summary.md"
    md_path.write_text(text)
    return csv_path, md_path
