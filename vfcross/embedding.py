"""Stage 2: learn the shared face/voice embedding, then extract it.

The backbone (single-stream by default, dual-stream as the baseline) is
trained by :func:`vfcross.training.train` with softmax cross-entropy over the
training identities plus the cross-modal center loss, on batches of P
identities x (K faces + K voices). Validation reports per-modality
identification accuracy on held-out samples of the training identities and
cross-modal verification AUC over all voice-face pairs of the validation
identities. :func:`extract_embeddings` then embeds every face and voice of a
manifest, caching the result with the checkpoint it came from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from vfcross.config import BackboneConfig
from vfcross.data.samples import holdout_mask, load_faces, load_voice_crops, pk_batches, utterance_crops
from vfcross.evaluation.metrics import roc_auc
from vfcross.losses import CrossModalCenterLoss
from vfcross.models.dual_stream import DualStream
from vfcross.models.single_stream import SingleStream
from vfcross.preprocess.cache import atomic_write
from vfcross.training import CHECKPOINT, device, objective_state

ARCHITECTURES = {"single": SingleStream, "dual": DualStream}


def build_network(cfg: BackboneConfig, num_classes: int) -> nn.Module:
    """The backbone network named by ``cfg.architecture``."""
    if cfg.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {cfg.architecture!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[cfg.architecture](num_classes, cfg.input_size, cfg.dropout, cfg.spectrogram_input)


class BackboneObjective(nn.Module):
    """Network + identity classifier loss + cross-modal center loss, as one module.

    ``forward`` returns ``loss = CE + center`` and its components. In training
    mode it also moves the identity centers towards the batch (the center
    update of Wen et al.), after the loss has been computed with the old ones.
    """

    def __init__(self, cfg: BackboneConfig, num_classes: int) -> None:
        super().__init__()
        self.net = build_network(cfg, num_classes)
        self.center = CrossModalCenterLoss(num_classes, 512, cfg.center_weight, cfg.center_lr,
                                           cfg.center_reduction)

    def forward(self, faces: Tensor, voices: Tensor, face_labels: Tensor,
                voice_labels: Tensor) -> dict[str, Tensor]:
        """Loss components of one batch of faces and voices with their identity labels."""
        face_raw, voice_raw = self.net(faces, voices)
        raw = torch.cat([face_raw, voice_raw])
        labels = torch.cat([face_labels, voice_labels])
        logits = self.net.classifier(raw)
        embedded = F.normalize(raw.float(), dim=1)
        ce = F.cross_entropy(logits.float(), labels)
        center = self.center(embedded, labels)
        if self.training:
            self.center.update_centers(embedded, labels)
        accuracy = (logits.argmax(1) == labels).float().mean()
        return {"loss": ce + center, "ce": ce.detach(), "center": center.detach(),
                "train_accuracy": accuracy}


class BackboneTask:
    """The training task of the backbone on a preprocessed manifest."""

    def __init__(self, manifest: pd.DataFrame, cfg: BackboneConfig) -> None:
        train = manifest[manifest["split"] == "train"].reset_index(drop=True)
        if train.empty:
            raise ValueError("the manifest has no training identities (split == 'train')")
        self.cfg = cfg
        self.classes = sorted(train["identity"].unique())
        held = holdout_mask(train, cfg.holdout_fraction, cfg.loop.seed)
        train = train.assign(label=train["identity"].map({c: i for i, c in enumerate(self.classes)}))
        self.train_table = train[~held].reset_index(drop=True)
        self.heldout_table = train[held].reset_index(drop=True)
        self.val_table = manifest[manifest["split"] == "val"].reset_index(drop=True)
        torch.manual_seed(cfg.loop.seed)  # weight initialisation is part of the run's determinism
        self.objective = BackboneObjective(cfg, len(self.classes))

    def batches(self, epoch: int, rng: np.random.Generator) -> list:
        """P x (K + K) batches over the training identities."""
        return pk_batches(self.train_table, self.cfg.identities_per_batch, self.cfg.samples_per_identity,
                          rng, self.cfg.epoch_repeats)

    def inputs(self, batch, dev: torch.device) -> tuple[Tensor, ...]:
        """Load the batch's face crops (mirrored at random) and voice crops (random offsets)."""
        paths = self.train_table["cache_path"].to_numpy()
        faces = load_faces(list(paths[batch.face_rows]), self.cfg.input_size, batch.flips)
        voices = load_voice_crops(list(paths[batch.voice_rows]), self.cfg.voice_crop_frames, batch.offsets)
        return (faces.to(dev), voices.to(dev), torch.as_tensor(batch.face_labels, device=dev),
                torch.as_tensor(batch.voice_labels, device=dev))

    def validate(self, dev: torch.device) -> dict[str, float]:
        """Held-out identification accuracy per modality and validation-identity AUC."""
        net = self.objective.net
        out: dict[str, float] = {}
        for modality in ("face", "voice"):
            rows = self.heldout_table[self.heldout_table["modality"] == modality]
            if len(rows):
                raw = embed_rows(net, rows, self.cfg, dev, normalise=False, progress=False)
                pred = net.classifier(torch.from_numpy(raw).to(dev)).argmax(1).cpu().numpy()
                out[f"val_{modality}_id_accuracy"] = float((pred == rows["label"].to_numpy()).mean())
        if self.val_table["identity"].nunique() >= 2:
            emb = embed_rows(net, self.val_table, self.cfg, dev, progress=False)
            out["val_auc"] = all_pairs_auc(emb, self.val_table)
        return out


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
               normalise: bool = True, batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """Embeddings (N, 512) of a manifest's faces and whole voice utterances, in row order.

    A face is embedded from its (unmirrored) crop. A voice is embedded as the
    mean of the embeddings of its half-overlapping ``voice_crop_frames`` crops
    (re-normalised), so every utterance is used whole at the length the
    network was trained on.
    """
    was_training = net.training
    net.eval()
    out = np.zeros((len(rows), 512), dtype=np.float32)
    modality, paths = rows["modality"].to_numpy(), rows["cache_path"].to_numpy()
    faces = np.flatnonzero(modality == "face")
    bar = tqdm(total=len(rows), desc="embedding", disable=not progress, leave=False)
    for start in range(0, len(faces), batch_size):
        idx = faces[start:start + batch_size]
        feats = net.features(load_faces(list(paths[idx]), cfg.input_size).to(dev), "face").float()
        out[idx] = (F.normalize(feats, dim=1) if normalise else feats).cpu().numpy()
        bar.update(len(idx))
    voices = np.flatnonzero(modality == "voice")
    per_batch = max(1, batch_size // 4)  # an utterance gives several crops
    for start in range(0, len(voices), per_batch):
        idx = voices[start:start + per_batch]
        crops = [utterance_crops(paths[i], cfg.voice_crop_frames) for i in idx]
        feats = net.features(torch.cat(crops).to(dev), "voice").float()
        owner = torch.repeat_interleave(torch.arange(len(idx), device=dev),
                                        torch.tensor([len(c) for c in crops], device=dev))
        if normalise:
            feats = F.normalize(feats, dim=1)
        pooled = torch.zeros(len(idx), feats.shape[1], device=dev).index_add_(0, owner, feats)
        pooled /= torch.bincount(owner, minlength=len(idx)).unsqueeze(1)
        out[idx] = (F.normalize(pooled, dim=1) if normalise else pooled).cpu().numpy()
        bar.update(len(idx))
    bar.close()
    net.train(was_training)
    return out


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
    recorded beside the vectors.
    """
    ckpt = Path(run_dir) / CHECKPOINT
    if not ckpt.exists():
        raise FileNotFoundError(f"no checkpoint in {run_dir}: train the backbone first")
    sha = _sha256(ckpt)
    rows = manifest.reset_index(drop=True)
    key = hashlib.sha256((sha + "\n".join(rows["cache_path"].astype(str))).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"embeddings-{key}.npz"
    if cache.exists():
        vectors = np.load(cache)["vectors"]
    else:
        state = objective_state(run_dir)
        objective = BackboneObjective(cfg, state["center.centers"].shape[0])
        objective.load_state_dict(state)
        dev = device()
        vectors = embed_rows(objective.net.to(dev), rows, cfg, dev, progress=progress)
        atomic_write(cache, lambda stream: np.savez(stream, vectors=vectors))
        cache.with_suffix(".json").write_text(json.dumps({"checkpoint": str(ckpt), "sha256": sha}) + "\n")
    return Embeddings(rows, vectors, str(ckpt), sha)


def measure_training_step(cfg: BackboneConfig, num_classes: int, steps: int = 3,
                          freq_bins: int = 257) -> dict[str, float]:
    """Parameters, seconds per training step and peak memory of one architecture.

    Runs in a fresh spawned process so that the peak-memory reading belongs to
    this model alone: on CUDA ``max_memory_allocated``; on CPU (Linux) the
    kernel's resident-memory high-water mark, reset just before the model is
    built, minus the resident size at that moment. Steps use random inputs of
    the configured batch shape (P x K faces and as many voice crops); the
    first step is a warm-up and not timed.
    """
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure_in_process, (cfg, num_classes, steps, freq_bins))


def _measure_in_process(cfg: BackboneConfig, num_classes: int, steps: int, freq_bins: int) -> dict[str, float]:
    """The body of :func:`measure_training_step` (runs in the child process)."""
    import time

    torch.manual_seed(0)
    dev = device()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident size
    rss_before = _proc_status_kb("VmRSS")
    objective = BackboneObjective(cfg, num_classes).to(dev).train()
    optimizer = torch.optim.Adam(objective.parameters(), lr=1e-4)
    n = cfg.identities_per_batch * cfg.samples_per_identity
    labels = torch.arange(n, device=dev) % num_classes
    faces = torch.randn(n, 3, cfg.input_size, cfg.input_size, device=dev)
    voices = torch.randn(n, 1, freq_bins, cfg.voice_crop_frames, device=dev)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss = objective(faces, voices, labels, labels)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = (_proc_status_kb("VmHWM") - rss_before) / 1024
    return {"params": sum(p.numel() for p in objective.net.parameters()),
            "step_time_s": float(np.median(times[1:])), "peak_memory_mb": round(peak_mb, 1),
            "batch": 2 * n, "device": dev.type}


def _proc_status_kb(field: str) -> int:
    """A memory field of /proc/self/status (Linux), in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(f"{field} not in /proc/self/status")
