"""Stage 3: learn the voice-face association with fusion and the orthogonal projection loss.

Each epoch pairs every training face with a random voice of its identity and every voice with a random face;
the loss is ``CE(identity | I) + alpha * L_OC`` or, for the Table 6 ablations, one part of it, with or without
fusion. Validation: the verification AUC of ``u``/``v`` over the validation identities' voice-face pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vfcross.backbone.embedding import Embeddings, all_pairs_auc
from vfcross.backbone.inception import EMBEDDING_DIM
from vfcross.backbone.sampler import subset_mask
from vfcross.backbone.task import FINGERPRINT_COLUMNS, validation_record
from vfcross.config import FULL_MODEL, TABLE6_VARIANTS, FusionConfig, RunConfig, override, run_config
from vfcross.data.splits import validation_note
from vfcross.fusion.model import FusionModel
from vfcross.losses import orthogonal_projection_loss
from vfcross.training import (objective_state, record_run_config, rows_fingerprint, stage_settings, task_fingerprint,
    train)

#: The evaluated fusion run's folder (the full model, the configuration's seed).
FUSION_RUN = "fusion-full"


class FusionObjective(nn.Module):
    """Fusion model + the configured loss; logs CE and OPL whether or not they are trained."""

    def __init__(self, cfg: FusionConfig, num_classes: int, in_dim: int = EMBEDDING_DIM) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = FusionModel(num_classes, in_dim, cfg.dim, cfg.fusion)

    def forward(self, faces: Tensor, voices: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Loss components of a batch of paired face and voice embeddings of identities ``labels``."""
        features, gate = self.model(faces, voices)
        if gate is None:
            labels = torch.cat([labels, labels])
        logits = self.model.classifier(features)
        ce = F.cross_entropy(logits, labels)
        opl = orthogonal_projection_loss(features, labels)
        loss = {"ce+opl": ce + self.cfg.alpha * opl, "ce": ce, "opl": opl}[self.cfg.loss]
        parts = {"loss": loss, "ce": ce.detach(), "opl": opl.detach(),
                 "train_accuracy": (logits.argmax(1) == labels).float().mean()}
        if gate is not None:
            parts["gate_mean"] = gate.detach().mean()
        return parts


@dataclass(frozen=True)
class PairBatch:
    """Positions (in the embedding table) of paired faces and voices, and their labels."""
    faces: np.ndarray
    voices: np.ndarray
    labels: np.ndarray


class FusionTask:
    """Training task of the fusion stage on backbone embeddings."""

    def __init__(self, embeddings: Embeddings, cfg: FusionConfig) -> None:
        table = embeddings.table.reset_index(drop=True)
        train = (table["split"] == "train").to_numpy()
        if not train.any():
            raise ValueError("the embeddings include no training identities (split == 'train')")
        self.cfg, self.embeddings, self.table = cfg, embeddings, table
        self.classes = sorted(table.loc[train, "identity"].unique())
        label_of = {c: i for i, c in enumerate(self.classes)}
        self.vectors = torch.from_numpy(embeddings.vectors)
        modality, ident = table["modality"].to_numpy(), table["identity"].to_numpy()
        self.pools = {m: {label_of[c]: np.flatnonzero(train & (modality == m) & (ident == c)) for c in self.classes}
                      for m in ("face", "voice")}
        missing = [c for c in self.classes if not (len(self.pools["face"][label_of[c]])
                                                   and len(self.pools["voice"][label_of[c]]))]
        if missing:
            raise ValueError(f"training identities without both modalities: {missing[:5]}")
        self.samples = {m: sum(len(pool) for pool in self.pools[m].values()) for m in ("face", "voice")}
        self.val = table["split"].eq("val").fillna(False).to_numpy()
        self.val[self.val] = subset_mask(table[self.val], cfg.loop.val_voices, cfg.loop.val_faces)
        self.validation = validation_record(table[self.val], cfg.loop.val_voices, cfg.loop.val_faces)
        self.load = partial(_pair_inputs, self.vectors)
        torch.manual_seed(cfg.loop.seed)  # weight initialisation is part of the run's determinism
        self.objective = FusionObjective(cfg, len(self.classes), embeddings.vectors.shape[1])

    def batches(self, epoch: int, rng: np.random.Generator) -> list[PairBatch]:
        """Every training face with a random same-identity voice, and vice versa, shuffled."""
        faces, voices, labels = [], [], []
        for label in range(len(self.classes)):
            own_faces, own_voices = self.pools["face"][label], self.pools["voice"][label]
            faces += [own_faces, rng.choice(own_faces, len(own_voices))]
            voices += [rng.choice(own_voices, len(own_faces)), own_voices]
            labels.append(np.full(len(own_faces) + len(own_voices), label))
        faces, voices, labels = np.concatenate(faces), np.concatenate(voices), np.concatenate(labels)
        order = rng.permutation(len(labels))
        size = self.cfg.batch_size
        return [PairBatch(faces[idx], voices[idx], labels[idx])
                for idx in (order[i:i + size] for i in range(0, len(order), size))]

    @staticmethod
    def shown(batch: PairBatch) -> dict[str, int]:
        """The faces and voices of a batch (one of each per pair)."""
        return {"face": len(batch.faces), "voice": len(batch.voices)}

    def fingerprint(self) -> dict:
        """This stage's settings, the backbone checkpoint and the embedding rows it trains and validates on."""
        used = self.table[self.table["split"].isin(["train", "val"]).fillna(False).to_numpy()]
        data = {"backbone_checkpoint_sha256": self.embeddings.checkpoint_sha256,
                **rows_fingerprint(used, FINGERPRINT_COLUMNS)}
        return task_fingerprint("fusion", self.cfg, data)

    def validate(self, dev: torch.device) -> dict[str, float | str]:
        """Verification AUC of u/v over all voice-face pairs of the validation identities (or a note why not)."""
        rows = self.table[self.val]
        note = validation_note(rows["identity"].nunique())
        if note:
            return {"note": note}
        projected = project(self.objective.model, self.embeddings.vectors[self.val], rows, dev)
        return {"val_auc": all_pairs_auc(projected, rows)}


def _pair_inputs(vectors: Tensor, batch: PairBatch) -> tuple[Tensor, ...]:
    """Embeddings of a batch's faces and voices, and their labels."""
    return vectors[batch.faces], vectors[batch.voices], torch.as_tensor(batch.labels)


@torch.no_grad()
def project(model: FusionModel, vectors: np.ndarray, table: pd.DataFrame,
            dev: torch.device | None = None) -> np.ndarray:
    """Test-time embeddings: ``u`` for the face rows, ``v`` for the voice rows (order kept)."""
    dev = dev or next(model.parameters()).device
    out = np.zeros((len(table), model.face_proj.out_features), dtype=np.float32)
    for modality in ("face", "voice"):
        rows = np.flatnonzero((table["modality"] == modality).to_numpy())
        x = torch.from_numpy(np.ascontiguousarray(vectors[rows])).to(dev)
        out[rows] = model.embed(x, modality).cpu().numpy()
    return out


@torch.no_grad()
def gate_values(model: FusionModel, embeddings: Embeddings, split: str, rng: np.random.Generator) -> np.ndarray:
    """Gate weights ``k`` (weight of the face) on same-identity face-voice pairs of a split."""
    table = embeddings.table.reset_index(drop=True)
    faces, voices = [], []
    for _, group in table[table["split"] == split].groupby("identity"):
        f = group.index[group["modality"] == "face"].to_numpy()
        v = group.index[group["modality"] == "voice"].to_numpy()
        if len(f) and len(v):
            faces.append(f)
            voices.append(rng.choice(v, len(f)))
    vec = torch.from_numpy(embeddings.vectors)
    dev = next(model.parameters()).device
    return model.gate_weights(vec[np.concatenate(faces)].to(dev), vec[np.concatenate(voices)].to(dev)).cpu().numpy()


def load_fusion(run_dir: str | Path, cfg: FusionConfig | None = None, last: bool = False) -> FusionModel:
    """The trained fusion model of a run folder (kept epoch, or ``last``), in eval mode on the CPU; ``cfg`` None:
    the run's own. :class:`~vfcross.training.RunMismatchError` if trained with other model settings."""
    cfg = run_config(run_dir).fusion if cfg is None else cfg
    return fusion_from_state(objective_state(run_dir, stage_settings("fusion", cfg), last), cfg)


def split_projection(run_dir: str | Path, embeddings: Embeddings, split: str, last: bool = False) -> np.ndarray:
    """The test-time u/v of the rows of ``split`` (in the table's order) by a fusion run's kept (or ``last``) epoch."""
    table = embeddings.table.reset_index(drop=True)
    rows = (table["split"] == split).fillna(False).to_numpy()
    return project(load_fusion(run_dir, last=last), embeddings.vectors[rows], table[rows].reset_index(drop=True))


def fusion_from_state(state: dict[str, Tensor], cfg: FusionConfig) -> FusionModel:
    """The fusion model of a fusion objective's ``state_dict``, in eval mode (sizes read from the weights)."""
    objective = FusionObjective(cfg, state["model.classifier.weight"].shape[0], state["model.face_proj.weight"].shape[1])
    objective.load_state_dict(state)
    return objective.model.eval()


def fusion_run(cfg: RunConfig, variant: str = FULL_MODEL, seed: int | None = None) -> Path:
    """The run folder of one fusion variant and seed (None: ``fusion.loop.seed``, the evaluated run): ``fusion-full``
    or ``fusion-<fusion>-<loss>``, with ``-seed<k>`` for another seed."""
    change = TABLE6_VARIANTS.get(variant)
    if change is None:
        raise ValueError(f"unknown variant {variant!r}; choose one of {list(TABLE6_VARIANTS)}")
    seed = cfg.fusion.loop.seed if seed is None else seed
    base = FUSION_RUN if variant == FULL_MODEL else f"fusion-{change['fusion']}-{change['loss']}"
    return cfg.run_dir(base + ("" if seed == cfg.fusion.loop.seed else f"-seed{seed}"))


def train_fusion(cfg: RunConfig, embeddings: Embeddings, variant: str = FULL_MODEL, seed: int | None = None,
                 progress: bool = False) -> tuple[Path, list[dict]]:
    """Train (or resume, or reuse) one fusion variant (a Table 6 row) on backbone ``embeddings``; returns its run
    folder and history. As :func:`~vfcross.backbone.task.train_backbone`, the configuration is saved beside it."""
    seed = cfg.fusion.loop.seed if seed is None else seed
    run_dir = fusion_run(cfg, variant, seed)  # validates the variant
    change = {f"fusion.{key}": value for key, value in TABLE6_VARIANTS[variant].items()}
    run_cfg = override(cfg, {**change, "fusion.loop.seed": seed})
    history = train(FusionTask(embeddings, run_cfg.fusion), run_cfg.fusion.loop, run_dir, progress=progress)
    record_run_config(run_cfg, run_dir)
    return run_dir, history
