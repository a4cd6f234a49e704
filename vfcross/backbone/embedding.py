"""Embeddings of a trained backbone: whole utterances and faces into the shared 512-d space.

:func:`extract_embeddings` embeds every face and voice of a manifest with a run's checkpoint, caching the result
with the checkpoint it came from; a voice is the mean embedding of its half-overlapping training-length crops.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from vfcross.backbone.inception import EMBEDDING_DIM
from vfcross.backbone.objective import backbone_from_state
from vfcross.backbone.sampler import load_faces, spectrogram_crops, utterance_crops
from vfcross.config import BackboneConfig, run_config
from vfcross.io import atomic_write, sha256_file
from vfcross.metrics import roc_auc
from vfcross.scores import every_pair, exact_pairs
from vfcross.training import (autocast_dtype, check_run, device, dtype_name, loader, objective_state, precision,
                              stage_settings, state_path)


def all_pairs_auc(embeddings: np.ndarray, table: pd.DataFrame, memory_gb: float = 2.0) -> float:
    """Verification AUC of cosine similarity over every voice-face pair of ``table`` (it picks the kept epoch);
    block by block (:mod:`vfcross.scores`) where the pairs do not fit ``memory_gb``, exactly."""
    is_voice = (table["modality"] == "voice").to_numpy()
    if is_voice.sum() * (~is_voice).sum() > exact_pairs(memory_gb):
        return every_pair(table).score(table, embeddings, memory_gb=memory_gb).auc
    ids = table["identity"].to_numpy()
    same = ids[is_voice][:, None] == ids[~is_voice][None, :]
    return roc_auc((embeddings[is_voice] @ embeddings[~is_voice].T).ravel(), same.ravel().astype(int))


@torch.no_grad()
def embed_rows(net: nn.Module, rows: pd.DataFrame, cfg: BackboneConfig, dev: torch.device,
               normalise: bool = True, batch_size: int | None = None, progress: bool = True) -> np.ndarray:
    """Embeddings (N, 512) of a manifest's faces and whole voice utterances, in row order. A voice is the
    re-normalised mean of its half-overlapping ``voice_crop_frames`` crops. At most ``batch_size`` images (default
    ``cfg.embed_chunk_crops``) go through the network at once, so memory does not grow with the rows or an utterance's
    length; files are read by ``cfg.loop.workers`` processes."""
    chunk = batch_size or cfg.embed_chunk_crops
    was_training = net.training
    net.eval()
    out = np.zeros((len(rows), EMBEDDING_DIM), dtype=np.float32)
    modality, paths = rows["modality"].to_numpy(), rows["cache_path"].to_numpy()
    faces = np.flatnonzero(modality == "face")
    bar = tqdm(total=len(rows), desc="embedding", disable=not progress, leave=False)
    chunks = [paths[faces[start:start + chunk]] for start in range(0, len(faces), chunk)]
    start = 0
    for images in loader(partial(load_faces, size=cfg.input_size), chunks, cfg.loop.workers, dev):
        out[faces[start:start + len(images)]] = embed_face_batch(net, images, dev, normalise, cfg.loop.amp)
        start += len(images)
        bar.update(len(images))
    voices = np.flatnonzero(modality == "voice")
    crops = loader(partial(utterance_crops, frames=cfg.voice_crop_frames), paths[voices], cfg.loop.workers, dev)
    out[voices] = _pooled(net, _crop_chunks(crops, chunk), len(voices), dev, normalise, bar.update, cfg.loop.amp)
    bar.close()
    net.train(was_training)
    return out


def _crop_chunks(utterances: Iterable[Tensor], chunk: int) -> Iterator[tuple[np.ndarray, Tensor]]:
    """``(owners, crops)``: the crops of consecutive utterances regrouped in chunks of at most ``chunk``, with the
    position of each crop's utterance."""
    owners: list[int] = []
    pieces: list[Tensor] = []
    for position, crops in enumerate(utterances):
        for crop in crops.split(1):
            owners.append(position)
            pieces.append(crop)
            if len(pieces) == chunk:
                yield np.asarray(owners), torch.cat(pieces)
                owners, pieces = [], []
    if pieces:
        yield np.asarray(owners), torch.cat(pieces)


def _pooled(net: nn.Module, chunks: Iterable[tuple[np.ndarray, Tensor]], count: int, dev: torch.device,
            normalise: bool, finished: Callable[[int], object] = lambda n: None, amp: bool = False) -> np.ndarray:
    """Utterance embeddings (count, 512): the mean of their crops' (normalised) embeddings fed in ``chunks``;
    ``finished(n)`` is told of every ``n`` utterances done."""
    sums = torch.zeros(count, EMBEDDING_DIM, dtype=torch.float64)
    counts = torch.zeros(count, dtype=torch.float64)
    done = 0
    for owners, crops in chunks:
        with precision(dev, autocast_dtype(amp, dev)):
            feats = net.features(crops.to(dev), "voice").float()
        feats = (F.normalize(feats, dim=1) if normalise else feats).cpu().double()
        sums.index_add_(0, torch.from_numpy(owners), feats)
        counts.index_add_(0, torch.from_numpy(owners), torch.ones(len(owners), dtype=torch.float64))
        finished(int(owners[-1]) - done)  # utterances before the chunk's last one are complete
        done = int(owners[-1])
    if not count:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    finished(count - done)
    pooled = (sums / counts.unsqueeze(1)).float()
    return (F.normalize(pooled, dim=1) if normalise else pooled).numpy()


@torch.no_grad()
def embed_face_batch(net: nn.Module, faces: Tensor, dev: torch.device, normalise: bool = True,
                     amp: bool = False) -> np.ndarray:
    """Embeddings (B, 512) of face inputs (B, 3, S, S), in the mixed precision ``amp`` trained in (the caller
    puts ``net`` in eval mode)."""
    with precision(dev, autocast_dtype(amp, dev)):
        feats = net.features(faces.to(dev), "face").float()
    return (F.normalize(feats, dim=1) if normalise else feats).cpu().numpy()


@torch.no_grad()
def embed_utterances(net: nn.Module, spectrograms: Iterable[np.ndarray], frames: int, dev: torch.device,
                     normalise: bool = True, chunk: int = 64, amp: bool = False) -> np.ndarray:
    """Embeddings (B, 512) of whole utterances given as float32 spectrograms (F, T), as :func:`embed_rows`
    embeds a cached voice (at most ``chunk`` crops at once; ``net`` in eval mode)."""
    crops = [spectrogram_crops(spec, frames) for spec in spectrograms]
    return _pooled(net, _crop_chunks(crops, chunk), len(crops), dev, normalise, amp=amp)


@dataclass(frozen=True)
class Embeddings:
    """Embeddings of a manifest's samples and where they came from."""
    table: pd.DataFrame  # the manifest rows, in the order of ``vectors``
    vectors: np.ndarray  # (N, 512), L2-normalised
    checkpoint: str  # path of the checkpoint used
    checkpoint_sha256: str


def extract_embeddings(run_dir: str | Path, manifest: pd.DataFrame, cfg: BackboneConfig | None,
                       cache_dir: str | Path, progress: bool = True) -> Embeddings:
    """Embed every row of ``manifest`` with the backbone in ``run_dir`` (``cfg`` None: the run's own), cached. The
    cache key is the checkpoint's hash, the precision computed in on this device and the manifest's samples. The run
    must have been trained from ``cfg``, cached or not."""
    cfg = run_config(run_dir).backbone if cfg is None else cfg
    ckpt = state_path(run_dir)
    check_run(run_dir, stage_settings("backbone", cfg))  # the settings only: no network built for a cache hit
    sha = sha256_file(ckpt)
    rows = manifest.reset_index(drop=True)
    dev = device()
    computed_in = dtype_name(autocast_dtype(cfg.loop.amp, dev))
    key = hashlib.sha256("\n".join([sha, computed_in, *rows["cache_path"].astype(str)]).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"embeddings-{key}.npz"
    if cache.exists():
        vectors = np.load(cache)["vectors"]
    else:
        objective = backbone_from_state(objective_state(run_dir), cfg)
        vectors = embed_rows(objective.net.to(dev), rows, cfg, dev, progress=progress)
        atomic_write(cache, lambda stream: np.savez(stream, vectors=vectors))
        record = {"checkpoint": str(ckpt), "sha256": sha, "precision": computed_in}
        cache.with_suffix(".json").write_text(json.dumps(record) + "\n")
    return Embeddings(rows, vectors, str(ckpt), sha)
