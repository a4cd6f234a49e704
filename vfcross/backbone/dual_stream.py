"""The dual-stream baseline: the same architecture twice, one per modality."""

from __future__ import annotations

from torch import Tensor, nn

from vfcross.backbone.inception import inception_resnet_v1
from vfcross.backbone.single_stream import SingleStream


class DualStream(SingleStream):
    """A face and a separate voice InceptionResNet-V1: :class:`SingleStream` but for the parameter sharing, which
    is what the paper's comparison isolates."""

    def build(self, dropout: float) -> None:
        self.face_net = inception_resnet_v1(dropout)
        self.voice_net = inception_resnet_v1(dropout)

    def forward(self, faces: Tensor, voices: Tensor) -> tuple[Tensor, Tensor]:
        """Raw features of faces (B, 3, S, S) and spectrograms (B', 1, F, T)."""
        return self.features(faces, "face"), self.features(voices, "voice")

    def stream(self, modality: str) -> nn.Module:
        return self.face_net if modality == "face" else self.voice_net
