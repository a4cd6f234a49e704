"""The preprocessing stage: a manifest in, cached tensors and a report out.

:func:`preprocess` turns every manifest row into a cached tensor (a face crop
or a spectrogram) or a recorded reason why not. Faces go through batched MTCNN
in this process; meanwhile voices go through a pool of
``PreprocessConfig.workers`` spawned processes, so both kinds of work share
the CPU cores. Finished work is found in the cache
(:mod:`vfcross.preprocess.cache`) and not redone.

Torch runs single-threaded throughout (see
:func:`~vfcross.preprocess.faces.single_torch_thread`); parallelism comes
from the processes.

Because the pool uses the ``spawn`` start method, a script calling
:func:`preprocess` must guard its entry point with
``if __name__ == "__main__":``; notebooks and the command line need nothing.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Iterator

import pandas as pd
import torch
from tqdm.auto import tqdm

from vfcross.config import RunConfig, VoiceConfig, save_config
from vfcross.data.manifest import write_manifest
from vfcross.io import markdown_table
from vfcross.preprocess.cache import Outcome, cache_folder, content_hash, lookup, store
from vfcross.preprocess.faces import (
    FALLBACK_REASON,
    IMAGE_ERRORS,
    FaceDetector,
    crop_faces,
    describe_image_error,
    open_rgb,
    single_torch_thread,
)
from vfcross.preprocess.voices import process_voice

MODALITIES = ("face", "voice")
#: Outcomes that leave a usable tensor.
USABLE = ("processed", "cached")
#: How a modality's unreadable source is named in reasons.
_SOURCE_NOUN = {"face": "image", "voice": "audio"}
#: A spectrogram takes ~5 ms, starting a spawned worker (importing torch)
#: seconds, so the pool is used only with at least this many clips per worker.
_MIN_CLIPS_PER_WORKER = 64
#: Faces are decoded this many MTCNN batches at a time, bounding the memory
#: held by decoded images on large datasets.
_BATCHES_PER_CHUNK = 8

#: A sample still to be processed: manifest position, source path, content hash.
Job = tuple[int, str, str]


@dataclass
class PreprocessResult:
    """What :func:`preprocess` produced.

    ``manifest`` holds the input rows that yielded a tensor, with its file in
    ``cache_path`` and ``fallback`` marking face crops taken without a detected
    face. ``report`` has one row per input sample: ``relpath, modality,
    identity, outcome ('processed' | 'cached' | 'skipped'), reason``.
    """

    manifest: pd.DataFrame
    report: pd.DataFrame
    #: Wall time of the stage, in seconds.
    seconds: float = 0.0

    def describe(self) -> str:
        """One line: processed, taken from the cache, skipped (and face crops without a detected face)."""
        done = self.report["outcome"].value_counts()
        return (f"{done.get('processed', 0)} processed, {done.get('cached', 0)} from the cache, "
                f"{done.get('skipped', 0)} skipped; {int(self.manifest['fallback'].sum())} face crops without a "
                f"detected face; {self.seconds:.1f} s")

    def summary(self) -> pd.DataFrame:
        """Sample counts per modality, outcome and reason."""
        return (self.report.groupby(["modality", "outcome", "reason"], dropna=False).size()
                .reset_index(name="count"))


def run_preprocessing(manifest: pd.DataFrame, cfg: RunConfig, report_dir: str | Path,
                      progress: bool = True) -> PreprocessResult:
    """The preprocessing stage of a run: :func:`preprocess`, then its outputs written where the next stages look.

    The per-sample report and the summary go to ``report_dir``; the manifest
    of usable samples to ``cfg.manifest_path``, with the configuration
    beside it.
    """
    result = preprocess(manifest, cfg, progress)
    write_report(result, report_dir)
    write_manifest(result.manifest, cfg.manifest_path)
    save_config(cfg, cfg.manifest_path.parent)
    return result


def preprocess(manifest: pd.DataFrame, cfg: RunConfig, progress: bool = True) -> PreprocessResult:
    """Preprocess every sample of ``manifest`` into the cache under ``cfg.cache_dir``.

    Unusable samples are skipped with a reason, never fatal. Afterwards an
    identity left without any usable sample of a modality present in the
    manifest cannot be paired across modalities, so its remaining rows leave
    the returned manifest with reason "identity has no usable <modality>
    samples" (their tensors stay cached).
    """
    start = time.perf_counter()
    folders = {m: cache_folder(cfg.cache_dir, m, getattr(cfg, m)) for m in MODALITIES}
    outcomes, todo = _triage(manifest, folders)
    with single_torch_thread(), _voice_outcomes(todo["voice"], folders["voice"], cfg.voice,
                                            cfg.preprocess.workers) as voices:
        outcomes.update(_run_faces(todo["face"], folders["face"], cfg, progress))
        voices = tqdm(voices, total=len(todo["voice"]), desc="voices", unit="clip", disable=not progress)
        outcomes.update(zip([index for index, _, _ in todo["voice"]], voices))

    ordered = [outcomes[i] for i in range(len(manifest))]
    report = pd.DataFrame({
        "relpath": manifest["relpath"].to_numpy(),
        "modality": manifest["modality"].to_numpy(),
        "identity": manifest["identity"].to_numpy(),
        "outcome": [o.outcome for o in ordered],
        "reason": [o.reason for o in ordered],
    })
    report = _drop_incomplete_identities(report)
    usable = report["outcome"].isin(USABLE).to_numpy()
    kept = manifest.reset_index(drop=True).assign(
        cache_path=[o.cache_path for o in ordered],
        fallback=[o.reason == FALLBACK_REASON for o in ordered],
    )
    return PreprocessResult(manifest=kept[usable].reset_index(drop=True), report=report,
                            seconds=time.perf_counter() - start)


def _triage(manifest: pd.DataFrame, folders: dict[str, Path]) -> tuple[dict[int, Outcome], dict[str, list[Job]]]:
    """Outcomes already known (cache hits, remembered skips, unreadable files) and the work left."""
    outcomes: dict[int, Outcome] = {}
    todo: dict[str, list[Job]] = {m: [] for m in MODALITIES}
    for index, (modality, path) in enumerate(zip(manifest["modality"], manifest["path"].astype(str))):
        if modality not in MODALITIES:
            outcomes[index] = Outcome("skipped", f"unknown modality {modality!r}")
            continue
        try:
            key = content_hash(Path(path).read_bytes())
        except OSError as err:
            outcomes[index] = Outcome("skipped", f"unreadable {_SOURCE_NOUN[modality]}: {err.strerror or err}")
            continue
        known = lookup(folders[modality], key)
        if known is None:
            todo[modality].append((index, path, key))
        else:
            outcomes[index] = known
    return outcomes, todo


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


def _run_faces(todo: list[Job], folder: Path, cfg: RunConfig, progress: bool) -> dict[int, Outcome]:
    """Detect, align and cache the faces of ``todo`` in this process."""
    results: dict[int, Outcome] = {}
    if not todo:
        return results
    detector = FaceDetector(cfg.face)
    chunk = cfg.face.batch_size * _BATCHES_PER_CHUNK
    with tqdm(total=len(todo), desc="faces", unit="img", disable=not progress) as bar:
        for start in range(0, len(todo), chunk):
            images, waiting = [], []
            for index, path, key in todo[start:start + chunk]:
                try:
                    images.append(open_rgb(path))
                    waiting.append((index, key))
                except IMAGE_ERRORS as err:
                    results[index] = store(folder, key, None, f"unreadable image: {describe_image_error(err)}")
            for (index, key), (array, reason) in zip(waiting, crop_faces(images, detector)):
                results[index] = store(folder, key, array, reason)
            bar.update(len(todo[start:start + chunk]))
    return results


def _init_voice_worker() -> None:
    """Pool initialiser: one torch thread per worker, since the workers are the parallelism."""
    torch.set_num_threads(1)


def _voice_job(path: str, key: str, folder: Path, cfg: VoiceConfig) -> Outcome:
    """Make and cache the spectrogram of one audio file (runs in a worker)."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return Outcome("skipped", f"unreadable audio: {err.strerror or err}")
    array, reason = process_voice(data, cfg)
    return store(folder, key, array, reason)


@contextlib.contextmanager
def _voice_outcomes(todo: list[Job], folder: Path, cfg: VoiceConfig, workers: int) -> Iterator[Iterator[Outcome]]:
    """Start making the spectrograms of ``todo``; yields their outcomes, in order.

    With enough clips (:data:`_MIN_CLIPS_PER_WORKER`) a spawned pool starts on
    them at once, working while the caller goes on; otherwise they are made
    in this process as the outcomes are consumed.
    """
    args = ([path for _, path, _ in todo], [key for _, _, key in todo], repeat(folder), repeat(cfg))
    workers = min(workers, len(todo) // _MIN_CLIPS_PER_WORKER)
    if workers <= 1:
        yield map(_voice_job, *args)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_voice_worker) as pool:
        yield pool.map(_voice_job, *args, chunksize=max(1, min(16, len(todo) // (4 * workers))))


def write_report(result: PreprocessResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``preprocess_report.csv`` (every sample) and ``preprocess_summary.md`` (counts)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "preprocess_report.csv"
    result.report.to_csv(csv_path, index=False)
    md_path = out / "preprocess_summary.md"
    md_path.write_text("# Preprocessing summary\n\n" + markdown_table(result.summary()))
    return csv_path, md_path
