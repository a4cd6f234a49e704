"""The backbone's training objective: network (single stream or the dual-stream baseline), identity softmax and
cross-modal center loss; :func:`backbone_from_state` rebuilds a trained one."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vfcross.backbone.dual_stream import DualStream
from vfcross.backbone.inception import EMBEDDING_DIM
from vfcross.backbone.single_stream import SingleStream
from vfcross.config import BackboneConfig
from vfcross.losses import CrossModalCenterLoss

ARCHITECTURES: dict[str, type[nn.Module]] = {"single": SingleStream, "dual": DualStream}


def build_network(cfg: BackboneConfig, num_classes: int) -> nn.Module:
    """The backbone network named by ``cfg.architecture``."""
    return ARCHITECTURES[cfg.architecture](num_classes, cfg.input_size, cfg.dropout, cfg.spectrogram_input)


class BackboneObjective(nn.Module):
    """Network + identity softmax + cross-modal center loss, as one module (one ``state_dict``). The center loss sees
    f or f / ||f|| (``center_input``); in training mode the centers then move (Wen et al.)."""

    def __init__(self, cfg: BackboneConfig, num_classes: int) -> None:
        super().__init__()
        self.net = build_network(cfg, num_classes)
        self.center = CrossModalCenterLoss(num_classes, EMBEDDING_DIM, cfg.center_weight, cfg.center_lr,
                                           cfg.center_reduction)
        self.center_input = cfg.center_input

    def forward(self, faces: Tensor, voices: Tensor, face_labels: Tensor,
                voice_labels: Tensor) -> dict[str, Tensor]:
        """Loss components of one batch of faces and voices with their identity labels."""
        face_raw, voice_raw = self.net(faces, voices)
        raw = torch.cat([face_raw, voice_raw])
        labels = torch.cat([face_labels, voice_labels])
        logits = self.net.classifier(raw)
        pulled = raw.float() if self.center_input == "features" else F.normalize(raw.float(), dim=1)
        ce = F.cross_entropy(logits.float(), labels)
        center = self.center(pulled, labels)
        if self.training:
            self.center.update_centers(pulled, labels)
        accuracy = (logits.argmax(1) == labels).float().mean()
        return {"loss": ce + center, "ce": ce.detach(), "center": center.detach(),
                "train_accuracy": accuracy}


def backbone_from_state(state: dict[str, Tensor], cfg: BackboneConfig) -> BackboneObjective:
    """A backbone objective rebuilt from its ``state_dict`` (the class count is read from the centers)."""
    objective = BackboneObjective(cfg, state["center.centers"].shape[0])
    objective.load_state_dict(state)
    return objective
