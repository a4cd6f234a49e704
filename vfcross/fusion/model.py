"""Attention-gated fusion of face and voice embeddings (the method's second half).

A face ``b`` and a voice ``e`` are projected: ``u = normalise(tanh(W_u b))``, ``v = normalise(tanh(W_v e))``, and
fused for training as ``I = k * u + (1 - k) * v``: ``k = sigmoid(W [e, b] + B)`` per dimension ("gated", the
paper), one learned scalar ("linear"), or no ``I`` ("none", Table 6: the losses see u and v stacked, one label).
At test time a face is its ``u`` and a voice its ``v`` (:meth:`FusionModel.embed`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vfcross.backbone.inception import EMBEDDING_DIM
from vfcross.config import Fusion, choices

FUSIONS = choices(Fusion)


class FusionModel(nn.Module):
    """Projections W_u, W_v, the fusion of ``fusion`` and an identity classifier."""

    def __init__(self, num_classes: int, in_dim: int = EMBEDDING_DIM, dim: int = 128, fusion: str = "gated") -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose one of {FUSIONS}")
        self.fusion = fusion
        self.face_proj = nn.Linear(in_dim, dim)
        self.voice_proj = nn.Linear(in_dim, dim)
        if fusion == "gated":
            self.gate = nn.Linear(2 * in_dim, dim)
        elif fusion == "linear":
            self.gate_logit = nn.Parameter(torch.zeros(()))
        self.classifier = nn.Linear(dim, num_classes)

    def embed(self, x: Tensor, modality: str) -> Tensor:
        """Test-time representation: ``u`` for a face, ``v`` for a voice."""
        if modality == "face":
            return F.normalize(torch.tanh(self.face_proj(x)), dim=1)
        if modality == "voice":
            return F.normalize(torch.tanh(self.voice_proj(x)), dim=1)
        raise ValueError(f"modality must be 'face' or 'voice', got {modality!r}")

    def gate_weights(self, faces: Tensor, voices: Tensor) -> Tensor:
        """The weight ``k`` of the face projection, in (0, 1), broadcastable to (N, d)."""
        if self.fusion == "gated":
            return torch.sigmoid(self.gate(torch.cat([voices, faces], dim=1)))
        if self.fusion == "linear":
            return torch.sigmoid(self.gate_logit).expand(len(faces), 1)
        raise ValueError("fusion 'none' has no gate")

    def forward(self, faces: Tensor, voices: Tensor) -> tuple[Tensor, Tensor | None]:
        """Training features ``(I, k)`` of paired faces and voices (N, 512); with ``fusion="none"``
        ``(cat[u, v], None)`` of shape (2N, d), rows i and N + i sharing a label."""
        if faces.shape != voices.shape:
            raise ValueError(f"faces and voices must be paired: {tuple(faces.shape)} vs {tuple(voices.shape)}")
        u, v = self.embed(faces, "face"), self.embed(voices, "voice")
        if self.fusion == "none":
            return torch.cat([u, v]), None
        k = self.gate_weights(faces, voices)
        return k * u + (1 - k) * v, k
