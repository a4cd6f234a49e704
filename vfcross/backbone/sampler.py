"""Training and test inputs from the preprocessing cache.

The preprocessed manifest (see :func:`vfcross.preprocess.run.preprocess`) has
one row per usable sample with a ``cache_path`` to an ``.npy`` array: an
aligned uint8 face crop (H, W, 3) or a normalised spectrogram (F, T). This
module turns rows into backbone inputs and draws the batches of the
single-stream training: P identities, each with K faces and K voices, so that
every identity center sees both modalities at every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from vfcross.preprocess import load_face, load_spectrogram


def load_faces(paths: list[str], size: int, flips: np.ndarray | None = None) -> Tensor:
    """Cached face crops as standardised float tensors (B, 3, size, size), optionally mirrored."""
    return face_batch([load_face(p) for p in paths], size, flips)


def face_batch(crops: Sequence[np.ndarray], size: int, flips: np.ndarray | None = None) -> Tensor:
    """Aligned uint8 face crops (H, W, 3) as the backbone's input (B, 3, size, size), optionally mirrored.

    The one conversion of crops into network input, shared by training, the
    cached embeddings and :mod:`vfcross.workflows.inference`'s raw files.
    """
    images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if flips is not None:
        mirror = torch.from_numpy(np.asarray(flips, dtype=bool))
        images[mirror] = images[mirror].flip(-1)
    return (images - 127.5) / 128.0


def fit_frames(spec: np.ndarray, frames: int, offset: float) -> np.ndarray:
    """A window of ``frames`` columns starting at fraction ``offset`` of the free range.

    Utterances shorter than the window are repeated (wrapped) to fill it,
    rather than zero-padded, so no crop is mostly silence.
    """
    if spec.shape[1] < frames:
        spec = np.pad(spec, ((0, 0), (0, frames - spec.shape[1])), mode="wrap")
    start = int(round(offset * (spec.shape[1] - frames)))
    return spec[:, start:start + frames]


def load_voice_crops(paths: list[str], frames: int, offsets: np.ndarray) -> Tensor:
    """Fixed-length spectrogram crops (B, 1, F, frames), one per path."""
    crops = [fit_frames(load_spectrogram(p), frames, o) for p, o in zip(paths, offsets)]
    return torch.from_numpy(np.stack(crops)).unsqueeze(1)


def utterance_offsets(length: int, frames: int) -> np.ndarray:
    """Offsets (fractions, see :func:`fit_frames`) of the test-time crops of a ``length``-frame utterance.

    Crops start at evenly spaced offsets from the first to the last possible
    one, about half a crop apart; an utterance no longer than a crop gives one
    (wrapped) crop.
    """
    n = max(1, math.ceil((length - frames) / (frames // 2)) + 1) if length > frames else 1
    return np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)


def utterance_crops(path: str, frames: int) -> Tensor:
    """All half-overlapping crops (n, 1, F, frames) of one cached utterance, at :func:`utterance_offsets`.

    The test-time voice input, one utterance at a time; the embedding stage
    makes the same crops in bounded chunks of many utterances.
    """
    spec = load_spectrogram(path)
    crops = [fit_frames(spec, frames, offset) for offset in utterance_offsets(spec.shape[1], frames)]
    return torch.from_numpy(np.stack(crops)).unsqueeze(1)


def holdout_mask(manifest: pd.DataFrame, fraction: float, seed: int) -> pd.Series:
    """Mark ``fraction`` of each (identity, modality) group as held out.

    At least one sample of every group stays in training, so every identity
    keeps both modalities for the cross-modal center loss.
    """
    rng = np.random.default_rng(seed)
    held = pd.Series(False, index=manifest.index)
    for _, group in manifest.groupby(["identity", "modality"], sort=True):
        n_out = min(int(round(fraction * len(group))), len(group) - 1)
        if n_out > 0:
            held[rng.choice(group.index.to_numpy(), n_out, replace=False)] = True
    return held


@dataclass(frozen=True)
class PKBatch:
    """One training batch: rows of the faces and voices, their class labels and augmentations."""

    face_rows: np.ndarray
    voice_rows: np.ndarray
    face_labels: np.ndarray
    voice_labels: np.ndarray
    flips: np.ndarray
    offsets: np.ndarray


def pk_batches(table: pd.DataFrame, identities_per_batch: int, samples_per_identity: int,
               rng: np.random.Generator, repeats: int = 1) -> list[PKBatch]:
    """One epoch of P x (K faces + K voices) batches over ``table``.

    ``table`` has columns ``label`` (class index) and ``modality``; its
    positional row numbers are returned. Identities are shuffled and visited
    ``repeats`` times; samples are drawn without replacement within a batch
    when an identity has enough of them. A single identity left over at the
    end of a pass joins the previous batch rather than forming a batch alone
    (which would teach nothing to contrast) or being dropped.
    """
    p, k = identities_per_batch, samples_per_identity
    pools = {m: _pools(table, m) for m in ("face", "voice")}
    labels = np.array(sorted(set(pools["face"]) & set(pools["voice"])))
    if len(labels) < 2:
        raise ValueError("need at least two identities with both modalities to form a batch")
    batches = []
    for _ in range(repeats):
        order = rng.permutation(labels)
        chunks = [order[start:start + p] for start in range(0, len(order), p)]
        if len(chunks) > 1 and len(chunks[-1]) == 1:
            chunks[-2:] = [np.concatenate(chunks[-2:])]
        for chunk in chunks:
            faces = np.concatenate([_draw(pools["face"][c], k, rng) for c in chunk])
            voices = np.concatenate([_draw(pools["voice"][c], k, rng) for c in chunk])
            batches.append(PKBatch(faces, voices, np.repeat(chunk, k), np.repeat(chunk, k),
                                   rng.random(len(faces)) < 0.5, rng.random(len(voices))))
    return batches


def _pools(table: pd.DataFrame, modality: str) -> dict[int, np.ndarray]:
    """Positional row numbers of each label's samples of one modality."""
    positions = np.flatnonzero(table["modality"].to_numpy() == modality)
    labels = table["label"].to_numpy()[positions]
    return {int(c): positions[labels == c] for c in np.unique(labels)}


def _draw(pool: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` rows of ``pool``, without replacement when possible."""
    return rng.choice(pool, k, replace=len(pool) < k)
