"""Stage 2: the training task of the shared face/voice embedding.

Softmax cross-entropy over the training identities plus the cross-modal center loss, on P x (K + K) batches.
Validation: per-modality identification accuracy on held-out samples of the training identities, and the
verification AUC over all voice-face pairs of the validation identities (a note instead without two of them).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vfcross.backbone.embedding import Embeddings, all_pairs_auc, embed_rows, extract_embeddings
from vfcross.backbone.objective import BackboneObjective
from vfcross.backbone.sampler import holdout_mask, pk_batches, pk_inputs, subset_mask, voice_pass_batches
from vfcross.config import BackboneConfig, RunConfig, override
from vfcross.data.splits import validation_note
from vfcross.training import record_run_config, rows_fingerprint, task_fingerprint, train

#: Manifest columns whose values a trained backbone depends on (see :meth:`BackboneTask.fingerprint`).
FINGERPRINT_COLUMNS = ("identity", "modality", "split", "cache_path")


class BackboneTask:
    """The training task of the backbone on a preprocessed manifest."""

    def __init__(self, manifest: pd.DataFrame, cfg: BackboneConfig) -> None:
        train = manifest[manifest["split"] == "train"].reset_index(drop=True)
        if train.empty:
            raise ValueError("the manifest has no training identities (split == 'train')")
        if train["identity"].nunique() < 2:
            raise ValueError("the manifest has only one training identity; training needs at least two")
        self.cfg = cfg
        self.classes = sorted(train["identity"].unique())
        held = holdout_mask(train, cfg.holdout_fraction, cfg.loop.seed)
        train = train.assign(label=train["identity"].map({c: i for i, c in enumerate(self.classes)}))
        self.train_table = train[~held].reset_index(drop=True)
        self.heldout_table = train[held].reset_index(drop=True)
        self.val_table = manifest[manifest["split"] == "val"].reset_index(drop=True)
        self.samples = {m: int((self.train_table["modality"] == m).sum()) for m in ("face", "voice")}
        loop = cfg.loop
        self.validated = {name: table[subset_mask(table, loop.val_voices, loop.val_faces)].reset_index(drop=True)
                          for name, table in (("heldout", self.heldout_table), ("val", self.val_table))}
        self.validation = validation_record(self.validated["val"], loop.val_voices, loop.val_faces)
        self.validation["heldout"] = validation_record(self.validated["heldout"], loop.val_voices, loop.val_faces,
                                                       names=False)
        # a picklable loader of batches (no model inside) for DataLoader workers
        self.load = partial(pk_inputs, self.train_table["cache_path"].to_numpy(), cfg.input_size,
                            cfg.voice_crop_frames)
        torch.manual_seed(cfg.loop.seed)  # weight initialisation is part of the run's determinism
        self.objective = BackboneObjective(cfg, len(self.classes))

    def batches(self, epoch: int, rng: np.random.Generator) -> list:
        """P x (K + K) batches over the training identities or voices (``cfg.epoch``)."""
        p, k = self.cfg.identities_per_batch, self.cfg.samples_per_identity
        if self.cfg.epoch == "voices":
            return voice_pass_batches(self.train_table, p, k, rng)
        return pk_batches(self.train_table, p, k, rng, self.cfg.epoch_repeats)

    @staticmethod
    def shown(batch) -> dict[str, int]:
        """The faces and voices of a batch."""
        return {"face": len(batch.face_rows), "voice": len(batch.voice_rows)}

    def fingerprint(self) -> dict:
        """This stage's settings and the manifest rows it trains and validates on (see vfcross.training)."""
        used = pd.concat([self.train_table, self.heldout_table, self.val_table])
        return task_fingerprint("backbone", self.cfg, rows_fingerprint(used, FINGERPRINT_COLUMNS))

    def validate(self, dev: torch.device) -> dict[str, float | str]:
        """Held-out identification accuracy per modality and validation-identity AUC (or a note why not)."""
        net = self.objective.net
        out: dict[str, float | str] = {}
        heldout, val = self.validated["heldout"], self.validated["val"]
        for modality in ("face", "voice"):
            rows = heldout[heldout["modality"] == modality]
            if len(rows):
                raw = embed_rows(net, rows, self.cfg, dev, normalise=False, progress=False)
                pred = net.classifier(torch.from_numpy(raw).to(dev)).argmax(1).cpu().numpy()
                out[f"val_{modality}_id_accuracy"] = float((pred == rows["label"].to_numpy()).mean())
        note = validation_note(val["identity"].nunique())
        if note:
            out["note"] = note
        else:
            emb = embed_rows(net, val, self.cfg, dev, progress=False)
            out["val_auc"] = all_pairs_auc(emb, val)
        return out


def validation_record(rows: pd.DataFrame, voices: int, faces: int, names: bool = True) -> dict:
    """What a validation scores: the subset's settings (0 = all), its voices and faces, and its identities."""
    count = rows["modality"].value_counts()
    record = {"voices_per_identity": voices, "faces_per_identity": faces, "voices": int(count.get("voice", 0)),
              "faces": int(count.get("face", 0)), "identities": int(rows["identity"].nunique())}
    return {**record, "identity_names": sorted(map(str, rows["identity"].unique()))} if names else record


#: The evaluated backbone's run folder (single stream, the configuration's seed).
BACKBONE_RUN = "backbone-single"


def backbone_run(cfg: RunConfig, architecture: str = "single", seed: int | None = None) -> tuple[RunConfig, Path]:
    """The configuration and the run folder of one backbone (``seed`` None: ``backbone.loop.seed``, the evaluated
    run): ``backbone-<architecture>``, with ``-seed<k>`` for another seed."""
    seed = cfg.backbone.loop.seed if seed is None else seed
    run_cfg = override(cfg, {"backbone.architecture": architecture, "backbone.loop.seed": seed})
    suffix = "" if seed == cfg.backbone.loop.seed else f"-seed{seed}"
    return run_cfg, cfg.run_dir(f"backbone-{architecture}{suffix}")


def train_backbone(cfg: RunConfig, manifest: pd.DataFrame, architecture: str = "single", seed: int | None = None,
                   progress: bool = True) -> tuple[Path, list[dict]]:
    """Train (or resume, or reuse) one backbone of ``cfg`` on ``manifest``; returns its run folder and history. The
    run's configuration is saved beside it once trained; a folder trained from other settings or data is refused
    (:class:`~vfcross.training.RunMismatchError`)."""
    run_cfg, run_dir = backbone_run(cfg, architecture, seed)
    history = train(BackboneTask(manifest, run_cfg.backbone), run_cfg.backbone.loop, run_dir, progress=progress)
    record_run_config(run_cfg, run_dir)
    return run_dir, history


def stage_embeddings(cfg: RunConfig, rows: pd.DataFrame, seed: int | None = None, architecture: str = "single",
                     progress: bool = True) -> Embeddings:
    """Every row of ``rows`` embedded by the trained backbone of ``seed`` (None: the evaluated run): the one way
    later stages get them (a run from other settings is refused; the vectors are cached)."""
    run_cfg, run_dir = backbone_run(cfg, architecture, seed)
    return extract_embeddings(run_dir, rows, run_cfg.backbone, cfg.cache_dir / "embeddings", progress=progress)
