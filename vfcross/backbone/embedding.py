"""Embeddings of a trained backbone: whole utterances and faces into the shared 512-d space.

:func:`extract_embeddings` embeds every face and voice of a manifest with a
run's checkpoint, caching the result with the checkpoint it came from; a
voice is the mean embedding of its half-overlapping training-length crops.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from vfcross.backbone.objective import load_backbone
from vfcross.preprocess import load_spectrogram
from vfcross.backbone.sampler import fit_frames, load_faces, utterance_offsets
from vfcross.config import BackboneConfig
from vfcross.evaluation.metrics import roc_auc
from vfcross.io import atomic_write
from vfcross.training import CHECKPOINT, device


def all_pairs_scores(embeddings: np.ndarray, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity and same-identity label (0/1) of every voice-face pair of ``table``."""
    is_voice = (table["modality"] == "voice").to_numpy()
    ids = table["identity"].to_numpy()
    sims = embeddings[is_voice] @ embeddings[~is_voice].T
    same = ids[is_voice][:, None] == ids[~is_voice][None, :]
    return sims.ravel(), same.ravel().astype(int)


def all_pairs_auc(embeddings: np.ndarray, table: pd.DataFrame) -> float:
    """Verification AUC of cosine similarity over every voice-face pair of ``table``."""
    return roc_auc(*all_pairs_scores(embeddings, table))


@torch.no_grad()
def embed_rows(net: nn.Module, rows: pd.DataFrame, cfg: BackboneConfig, dev: torch.device,
               normalise: bool = True, batch_size: int | None = None, progress: bool = True) -> np.ndarray:
    """Embeddings (N, 512) of a manifest's faces and whole voice utterances, in row order.

    A face is embedded from its (unmirrored) crop. A voice is embedded as the
    mean of the embeddings of its half-overlapping ``voice_crop_frames`` crops
    (re-normalised), so every utterance is used whole at the length the
    network was trained on. At most ``batch_size`` images (default
    ``cfg.embed_chunk_crops``) go through the network at once: the crops of
    consecutive utterances are streamed through it in chunks, one spectrogram
    in memory at a time, so memory does not grow with an utterance's length.
    """
    chunk = batch_size or cfg.embed_chunk_crops
    was_training = net.training
    net.eval()
    out = np.zeros((len(rows), 512), dtype=np.float32)
    modality, paths = rows["modality"].to_numpy(), rows["cache_path"].to_numpy()
    faces = np.flatnonzero(modality == "face")
    bar = tqdm(total=len(rows), desc="embedding", disable=not progress, leave=False)
    for start in range(0, len(faces), chunk):
        idx = faces[start:start + chunk]
        feats = net.features(load_faces(list(paths[idx]), cfg.input_size).to(dev), "face").float()
        out[idx] = (F.normalize(feats, dim=1) if normalise else feats).cpu().numpy()
        bar.update(len(idx))
    voices = np.flatnonzero(modality == "voice")
    sums = torch.zeros(len(voices), 512, dtype=torch.float64)
    counts = torch.zeros(len(voices), dtype=torch.float64)
    finished = 0  # utterances before the current chunk's last one are complete
    for owners, crops in _crop_chunks([paths[i] for i in voices], cfg.voice_crop_frames, chunk):
        feats = net.features(crops.to(dev), "voice").float()
        feats = (F.normalize(feats, dim=1) if normalise else feats).cpu().double()
        owner = torch.from_numpy(owners)
        sums.index_add_(0, owner, feats)
        counts.index_add_(0, owner, torch.ones(len(owners), dtype=torch.float64))
        bar.update(int(owners[-1]) - finished)
        finished = int(owners[-1])
    if len(voices):
        bar.update(len(voices) - finished)
        pooled = (sums / counts.unsqueeze(1)).float()
        out[voices] = (F.normalize(pooled, dim=1) if normalise else pooled).numpy()
    bar.close()
    net.train(was_training)
    return out


def _crop_chunks(paths: list[str], frames: int, chunk: int) -> Iterator[tuple[np.ndarray, Tensor]]:
    """The test-time crops of utterances ``paths`` in chunks of at most ``chunk``.

    Yields ``(owners, crops)``: the position in ``paths`` of each crop's
    utterance and the crops (n, 1, F, frames). Only one spectrogram is loaded
    at a time, and only ``chunk`` crops exist at once.
    """
    owners: list[int] = []
    crops: list[np.ndarray] = []
    for position, path in enumerate(paths):
        spec = load_spectrogram(path)
        for offset in utterance_offsets(spec.shape[1], frames):
            owners.append(position)
            crops.append(fit_frames(spec, frames, offset))
            if len(crops) == chunk:
                yield np.asarray(owners), torch.from_numpy(np.stack(crops)).unsqueeze(1)
                owners, crops = [], []
    if crops:
        yield np.asarray(owners), torch.from_numpy(np.stack(crops)).unsqueeze(1)


@dataclass(frozen=True)
class Embeddings:
    """Embeddings of a manifest's samples and where they came from."""

    table: pd.DataFrame  # the manifest rows, in the order of ``vectors``
    vectors: np.ndarray  # (N, 512), L2-normalised
    checkpoint: str  # path of the checkpoint used
    checkpoint_sha256: str


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extract_embeddings(run_dir: str | Path, manifest: pd.DataFrame, cfg: BackboneConfig,
                       cache_dir: str | Path, progress: bool = True) -> Embeddings:
    """Embed every row of ``manifest`` with the backbone checkpoint in ``run_dir``.

    Results are cached in ``cache_dir`` under a key made of the checkpoint's
    hash and the manifest's sample list, with the checkpoint path and hash
    recorded beside the vectors. The run must have been trained from ``cfg``
    (see :func:`~vfcross.backbone.objective.load_backbone`), cached or not.
    """
    ckpt = Path(run_dir) / CHECKPOINT
    if not ckpt.exists():
        raise FileNotFoundError(f"no checkpoint in {run_dir}: train the backbone first")
    objective = load_backbone(run_dir, cfg)
    sha = _sha256(ckpt)
    rows = manifest.reset_index(drop=True)
    key = hashlib.sha256((sha + "\n".join(rows["cache_path"].astype(str))).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"embeddings-{key}.npz"
    if cache.exists():
        vectors = np.load(cache)["vectors"]
    else:
        dev = device()
        vectors = embed_rows(objective.net.to(dev), rows, cfg, dev, progress=progress)
        atomic_write(cache, lambda stream: np.savez(stream, vectors=vectors))
        cache.with_suffix(".json").write_text(json.dumps({"checkpoint": str(ckpt), "sha256": sha}) + "\n")
    return Embeddings(rows, vectors, str(ckpt), sha)
