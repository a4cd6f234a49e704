"""The dataset of a run: the synthetic population written if needed, then read through the one reader."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from vfcross.config import RunConfig
from vfcross.data.splits import check_splits
from vfcross.data.synthetic.writer import write_population
from vfcross.data.voxceleb import scan_dataset


@dataclass(frozen=True)
class Dataset:
    """A run's manifest, the files skipped with their reasons, the seconds it took, and the split check's notes."""

    manifest: pd.DataFrame
    skipped: pd.DataFrame
    seconds: float
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line: identities, samples per modality, files skipped, time (and the notes, one line each)."""
        counts = self.manifest["modality"].value_counts().to_dict()
        line = (f"{self.manifest['identity'].nunique()} identities, {counts.get('face', 0)} faces and "
                f"{counts.get('voice', 0)} voices; {len(self.skipped)} files skipped; ready in {self.seconds:.1f} s")
        return "\n".join([line, *(f"note: {note}" for note in self.notes)])


def prepare_dataset(cfg: RunConfig, progress: bool = True, training: bool = True, evaluation: bool = True) -> Dataset:
    """Write the synthetic population when ``cfg.data_root`` is empty (reused if made alike), read the dataset,
    and check its splits for ``training`` and ``evaluation`` before any further work."""
    start = time.perf_counter()
    if not cfg.data_root:
        write_population(cfg.dataset_root, cfg.synth, progress=progress)
    manifest, skipped = scan_dataset(cfg.dataset_root, cfg.splits_file or None, cfg.skip_unlisted_identities)
    notes = check_splits(manifest, cfg.eval.split if evaluation else None, training)
    return Dataset(manifest, skipped, time.perf_counter() - start, tuple(notes))
