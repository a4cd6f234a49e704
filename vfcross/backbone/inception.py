"""The InceptionResNet-V1 backbone (facenet-pytorch, trained from scratch) and how each modality enters it.

Its head is the identity, so it returns the raw 512-d bottleneck: L2-normalised for the embedding, raw for the
identity classifier. A face enters as ``(pixel - 127.5) / 128``; a voice's 1 x F x T spectrogram crop is
bilinearly resized to the face size and replicated to 3 channels (``spectrogram_input="image"``, the paper's),
an adapter without parameters, so a single stream really is one parameter set for both modalities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from facenet_pytorch import InceptionResnetV1
from torch import Tensor, nn

from vfcross.config import MIN_INPUT_SIZE, SpectrogramInput, choices

#: Size of the embedding every backbone produces (facenet-pytorch's bottleneck).
EMBEDDING_DIM = 512
SPECTROGRAM_INPUTS = choices(SpectrogramInput)


class _ChannelsLast(nn.Module):
    """Run a convolutional network in the channels-last memory layout: the same arithmetic, faster in oneDNN
    (docs/experiments.md)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        """The wrapped network's output for ``x`` (B, C, H, W)."""
        return self.net(x.contiguous(memory_format=torch.channels_last))


def inception_resnet_v1(dropout: float) -> nn.Module:
    """A fresh InceptionResNet-V1 whose forward returns raw 512-d features."""
    net = InceptionResnetV1(pretrained=None, classify=True, num_classes=1, dropout_prob=dropout)
    net.logits = nn.Identity()
    return _ChannelsLast(net)


def check_input_size(size: int) -> None:
    """Reject input sizes the backbone cannot take."""
    if size < MIN_INPUT_SIZE:
        raise ValueError(f"input size {size} is below InceptionResNet-V1's minimum of {MIN_INPUT_SIZE}")


def spectrogram_to_image(spec: Tensor, size: int, mode: str = "image") -> Tensor:
    """Turn spectrograms (B, 1, F, T) into backbone inputs (B, 3, size, size)."""
    if mode not in SPECTROGRAM_INPUTS:
        raise ValueError(f"unknown spectrogram_input {mode!r}; choose one of {SPECTROGRAM_INPUTS}")
    if spec.ndim != 4 or spec.shape[1] != 1:
        raise ValueError(f"expected spectrograms of shape (B, 1, F, T), got {tuple(spec.shape)}")
    image = F.interpolate(spec, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return image.expand(-1, 3, -1, -1)


def check_faces(faces: Tensor, size: int) -> None:
    """Reject face batches that are not (B, 3, size, size)."""
    if faces.ndim != 4 or faces.shape[1:] != (3, size, size):
        raise ValueError(f"expected faces of shape (B, 3, {size}, {size}), got {tuple(faces.shape)}")
