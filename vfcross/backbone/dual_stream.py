"""The dual-stream baseline: the same architecture twice, one per modality."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from vfcross.backbone.inception import (
    EMBEDDING_DIM,
    check_faces,
    check_input_size,
    inception_resnet_v1,
    spectrogram_to_image,
)


class DualStream(nn.Module):
    """A face and a separate voice InceptionResNet-V1: :class:`~vfcross.backbone.single_stream.SingleStream`
    but for the parameter sharing, which is what the paper's comparison isolates."""

    def __init__(self, num_classes: int, input_size: int, dropout: float = 0.6,
                 spectrogram_input: str = "image") -> None:
        super().__init__()
        check_input_size(input_size)
        self.input_size, self.spectrogram_input = input_size, spectrogram_input
        self.face_net = inception_resnet_v1(dropout)
        self.voice_net = inception_resnet_v1(dropout)
        self.classifier = nn.Linear(EMBEDDING_DIM, num_classes)

    def forward(self, faces: Tensor, voices: Tensor) -> tuple[Tensor, Tensor]:
        """Raw features of faces (B, 3, S, S) and spectrograms (B', 1, F, T)."""
        return self.features(faces, "face"), self.features(voices, "voice")

    def features(self, x: Tensor, modality: str) -> Tensor:
        """Raw features of one modality's batch, from that modality's network."""
        if modality == "voice":
            return self.voice_net(spectrogram_to_image(x, self.input_size, self.spectrogram_input))
        if modality == "face":
            check_faces(x, self.input_size)
            return self.face_net(x)
        raise ValueError(f"modality must be 'face' or 'voice', got {modality!r}")

    def embed(self, x: Tensor, modality: str) -> Tensor:
        """L2-normalised 512-d embeddings of one modality's batch."""
        return F.normalize(self.features(x, modality), dim=1)
