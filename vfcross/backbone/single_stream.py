"""The paper's single-stream network: ONE InceptionResNet-V1 for faces and voices."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vfcross.backbone.inception import (EMBEDDING_DIM, check_faces, check_input_size, inception_resnet_v1,
    spectrogram_to_image)


class SingleStream(nn.Module):
    """Faces and spectrogram images pass through the same parameters, in one batch (so BatchNorm sees both).
    ``forward`` gives the raw 512-d features, :meth:`embed` L2-normalised embeddings, ``classifier`` identity
    logits."""

    def __init__(self, num_classes: int, input_size: int, dropout: float = 0.6,
                 spectrogram_input: str = "image") -> None:
        super().__init__()
        check_input_size(input_size)
        self.input_size, self.spectrogram_input = input_size, spectrogram_input
        self.build(dropout)
        self.classifier = nn.Linear(EMBEDDING_DIM, num_classes)

    def build(self, dropout: float) -> None:
        """Make the network(s), before the classifier (the order of their random initialisation)."""
        self.backbone = inception_resnet_v1(dropout)

    def forward(self, faces: Tensor, voices: Tensor) -> tuple[Tensor, Tensor]:
        """Raw features of faces (B, 3, S, S) and spectrograms (B', 1, F, T)."""
        check_faces(faces, self.input_size)
        images = spectrogram_to_image(voices, self.input_size, self.spectrogram_input)
        features = self.backbone(torch.cat([faces, images]))
        return features[: len(faces)], features[len(faces):]

    def stream(self, modality: str) -> nn.Module:
        """The network that embeds ``modality``."""
        return self.backbone

    def features(self, x: Tensor, modality: str) -> Tensor:
        """Raw features of one modality's batch."""
        if modality == "voice":
            x = spectrogram_to_image(x, self.input_size, self.spectrogram_input)
        elif modality == "face":
            check_faces(x, self.input_size)
        else:
            raise ValueError(f"modality must be 'face' or 'voice', got {modality!r}")
        return self.stream(modality)(x)

    def embed(self, x: Tensor, modality: str) -> Tensor:
        """L2-normalised 512-d embeddings of one modality's batch."""
        return F.normalize(self.features(x, modality), dim=1)
