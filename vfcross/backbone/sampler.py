"""Training and test inputs from the preprocessing cache, and the batches of the single-stream training.

A batch holds P identities, each with K faces and K voices, so that every identity center sees both modalities
at every step. An epoch passes over the identities (:func:`pk_batches`) or over the training voices
(:func:`voice_pass_batches`); :func:`subset_mask` draws the validation subset.
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
    """Aligned uint8 face crops (H, W, 3) as the backbone's input (B, 3, size, size), optionally mirrored: the
    one conversion, shared by training, cached embeddings and :mod:`vfcross.workflows.inference`."""
    images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if flips is not None:
        mirror = torch.from_numpy(np.asarray(flips, dtype=bool))
        images[mirror] = images[mirror].flip(-1)
    return (images - 127.5) / 128.0


def fit_frames(spec: np.ndarray, frames: int, offset: float) -> np.ndarray:
    """A window of ``frames`` columns at fraction ``offset`` of the free range; a shorter utterance is wrapped to
    fill it (not zero-padded, so no crop is mostly silence)."""
    if spec.shape[1] < frames:
        spec = np.pad(spec, ((0, 0), (0, frames - spec.shape[1])), mode="wrap")
    start = int(round(offset * (spec.shape[1] - frames)))
    return spec[:, start:start + frames]


def load_voice_crops(paths: list[str], frames: int, offsets: np.ndarray) -> Tensor:
    """Fixed-length spectrogram crops (B, 1, F, frames), one per path."""
    crops = [fit_frames(load_spectrogram(p), frames, o) for p, o in zip(paths, offsets)]
    return torch.from_numpy(np.stack(crops)).unsqueeze(1)


def utterance_offsets(length: int, frames: int) -> np.ndarray:
    """Offsets (see :func:`fit_frames`) of the test-time crops of a ``length``-frame utterance: evenly spaced from
    first to last, about half a crop apart; one crop when it is no longer than a crop."""
    n = max(1, math.ceil((length - frames) / (frames // 2)) + 1) if length > frames else 1
    return np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)


def utterance_crops(path: str, frames: int) -> Tensor:
    """All half-overlapping crops (n, 1, F, frames) of one cached utterance: the test-time voice input."""
    return spectrogram_crops(load_spectrogram(path), frames)


def spectrogram_crops(spec: np.ndarray, frames: int) -> Tensor:
    """All crops (n, 1, F, frames) of a spectrogram (F, T) at :func:`utterance_offsets`."""
    crops = [fit_frames(spec, frames, offset) for offset in utterance_offsets(spec.shape[1], frames)]
    return torch.from_numpy(np.stack(crops)).unsqueeze(1)


def holdout_mask(manifest: pd.DataFrame, fraction: float, seed: int) -> pd.Series:
    """Mark ``fraction`` of each (identity, modality) group as held out, keeping at least one of each in training."""
    rng = np.random.default_rng(seed)
    held = pd.Series(False, index=manifest.index)
    for _, group in manifest.groupby(["identity", "modality"], sort=True):
        n_out = min(int(round(fraction * len(group))), len(group) - 1)
        if n_out > 0:
            held[rng.choice(group.index.to_numpy(), n_out, replace=False)] = True
    return held


def subset_mask(table: pd.DataFrame, voices: int, faces: int, seed: int = 0) -> np.ndarray:
    """At most ``voices`` voices and ``faces`` faces of each identity of ``table`` (0 = all), as a row mask: the
    validation subset, drawn with a fixed ``seed`` so every epoch, seed and stage validates the same rows."""
    keep = np.ones(len(table), dtype=bool)
    rng = np.random.default_rng(seed)
    for (_, modality), rows in sorted(table.groupby(["identity", "modality"]).indices.items()):
        limit = voices if modality == "voice" else faces
        if 0 < limit < len(rows):
            keep[rows] = False
            keep[rng.choice(rows, limit, replace=False)] = True
    return keep


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
    """One epoch of P x (K faces + K voices) batches, positional rows of ``table`` (columns ``label``, ``modality``).
    Identities are shuffled and visited ``repeats`` times, samples drawn without replacement where enough; a lone
    identity left at the end of a pass joins the previous batch."""
    p, k = identities_per_batch, samples_per_identity
    pools, labels = _pools(table)
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


def voice_pass_batches(table: pd.DataFrame, identities_per_batch: int, samples_per_identity: int,
                       rng: np.random.Generator) -> list[PKBatch]:
    """One epoch that shows every training voice once, in batches of P identities x (K voices + K faces). Each
    identity's shuffled voices are cut into groups of K; a batch takes a group from each of P identities drawn in
    proportion to the groups they have left, so they run out together. Faces: each identity's in a shuffled order, K
    per group (repeated when it has fewer faces than voices)."""
    p, k = identities_per_batch, samples_per_identity
    pools, labels = _pools(table)
    voices = [np.resize(rng.permutation(pools["voice"][c]), -(-len(pools["voice"][c]) // k) * k) for c in labels]
    left = np.array([len(v) // k for v in voices])
    plan: list[np.ndarray] = []
    while np.count_nonzero(left) >= 2:
        live = np.flatnonzero(left)
        plan.append(np.sort(rng.choice(live, min(p, len(live)), replace=False, p=left[live] / left[live].sum())))
        left[plan[-1]] -= 1
    for lone in np.flatnonzero(left):  # at most one identity: its groups join the last batches without it
        spare = [j for j in range(len(plan) - 1, -1, -1) if lone not in plan[j]] or range(len(plan) - 1, -1, -1)
        for j in range(left[lone]):
            plan[spare[j % len(spare)]] = np.append(plan[spare[j % len(spare)]], lone)
    owner = np.concatenate(plan)  # the identity of every group taken, batch after batch
    order = np.argsort(owner, kind="stable")
    nth = np.empty_like(owner)  # how many of its identity's groups came before it
    nth[order] = np.arange(len(owner)) - np.searchsorted(owner[order], owner[order])
    faces = [rng.permutation(pools["face"][c]) for c in labels]
    within = nth[:, None] * k + np.arange(k)
    voice_rows = np.concatenate(voices)[_starts(voices)[owner][:, None] + within]
    counts = np.array([len(f) for f in faces])
    face_rows = np.concatenate(faces)[_starts(faces)[owner][:, None] + within % counts[owner][:, None]]
    flips, offsets = rng.random(within.shape) < 0.5, rng.random(within.shape)
    names = np.broadcast_to(labels[owner][:, None], within.shape)
    ends = np.cumsum([len(b) for b in plan])
    return [PKBatch(*(x[a:b].ravel() for x in (face_rows, voice_rows, names, names, flips, offsets)))
            for a, b in zip(np.r_[0, ends[:-1]], ends)]


def _starts(arrays: list[np.ndarray]) -> np.ndarray:
    """Where each of ``arrays`` starts in their concatenation."""
    return np.r_[0, np.cumsum([len(a) for a in arrays])[:-1]]


def pk_inputs(paths: np.ndarray, size: int, frames: int, batch: PKBatch) -> tuple[Tensor, ...]:
    """A batch's backbone inputs: face crops (mirrored as drawn), voice crops (at its offsets), labels."""
    return (load_faces(list(paths[batch.face_rows]), size, batch.flips),
            load_voice_crops(list(paths[batch.voice_rows]), frames, batch.offsets),
            torch.as_tensor(batch.face_labels), torch.as_tensor(batch.voice_labels))


def _pools(table: pd.DataFrame) -> tuple[dict[str, dict[int, np.ndarray]], np.ndarray]:
    """Positional rows (ascending) of each label's faces and of its voices, and the labels that have both."""
    pools = {}
    for modality in ("face", "voice"):
        mask = table["modality"].to_numpy() == modality
        groups = table[mask].groupby("label").indices
        pools[modality] = {int(c): np.flatnonzero(mask)[rows] for c, rows in groups.items()}
    labels = np.array(sorted(set(pools["face"]) & set(pools["voice"])))
    if len(labels) < 2:
        raise ValueError("need at least two identities with both modalities to form a batch")
    return pools, labels


def _draw(pool: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` rows of ``pool``, without replacement when possible."""
    return rng.choice(pool, k, replace=len(pool) < k)
