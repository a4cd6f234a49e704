"""Losses of the method: cross-modal center loss and orthogonal projection loss."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from vfcross.config import CenterReduction, choices


class CrossModalCenterLoss(nn.Module):
    """Center loss whose identity centers are shared by faces AND voices.

    ``loss = weight / 2 * sum_i ||f_i - c_{y_i}||^2``, divided by the batch size
    when ``reduction="mean"`` (as Wen et al.'s reference implementation does,
    which keeps the term on the scale of the batch-mean cross-entropy) or
    left as the plain sum of the paper's formula with ``reduction="sum"``. The
    caller chooses what f is (the backbone: ``backbone.center_input``).

    Centers are not learned by the optimizer: they are a buffer moved towards
    the batch features by :meth:`update_centers` after each step, following
    Wen et al. 2016 (ECCV), eq. 4:
    ``c_j <- c_j - center_lr * sum_{i: y_i = j} (c_j - f_i) / (1 + n_j)``.
    Because faces and voices of one identity share ``c_j``, both modalities are
    pulled to the same point, which is what makes the space cross-modal.
    Under torch.distributed the update sums over all processes, so every
    process keeps identical centers.
    """

    def __init__(self, num_classes: int, dim: int, weight: float = 1.0, center_lr: float = 0.5,
                 reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in choices(CenterReduction):
            raise ValueError(f"reduction must be one of {choices(CenterReduction)}, got {reduction!r}")
        self.weight, self.center_lr, self.reduction = weight, center_lr, reduction
        self.register_buffer("centers", torch.zeros(num_classes, dim))

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """The weighted center loss of ``features`` (N, dim) with identity ``labels`` (N,)."""
        _check_labels(features, labels)
        sq = (features - self.centers[labels]).pow(2).sum()
        loss = self.weight / 2 * sq
        return loss / features.shape[0] if self.reduction == "mean" else loss

    @torch.no_grad()
    def update_centers(self, features: Tensor, labels: Tensor) -> None:
        """Move each seen center towards its features (Wen et al. eq. 4)."""
        _check_labels(features, labels)
        features = features.detach().to(self.centers.dtype)
        diff_sum = torch.zeros_like(self.centers).index_add_(0, labels, self.centers[labels] - features)
        counts = torch.zeros(self.centers.shape[0], device=features.device).index_add_(
            0, labels, torch.ones_like(labels, dtype=torch.float32))
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(diff_sum)
            dist.all_reduce(counts)
        self.centers -= self.center_lr * diff_sum / (1 + counts).unsqueeze(1)


def orthogonal_projection_loss(features: Tensor, labels: Tensor) -> Tensor:
    """Orthogonal projection loss (Ranasinghe et al. 2021) as the method states it.

    ``(1 - mean cos over same-identity pairs) + |mean cos over different-identity
    pairs|``, over ordered pairs i != j of the batch, with features
    L2-normalised here. A batch without any same-identity (or any
    different-identity) pair contributes 0 for that term, since its mean is
    undefined.
    """
    _check_labels(features, labels)
    z = F.normalize(features, dim=1)
    cos = z @ z.t()
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos, neg = same & ~eye, ~same
    pos_term = 1 - cos[pos].mean() if pos.any() else cos.new_zeros(())
    neg_term = cos[neg].mean().abs() if neg.any() else cos.new_zeros(())
    return pos_term + neg_term


def _check_labels(features: Tensor, labels: Tensor) -> None:
    """Fail clearly on shape mismatches that would otherwise broadcast silently."""
    if features.ndim != 2 or labels.ndim != 1 or features.shape[0] != labels.shape[0]:
        raise ValueError(f"expected features (N, D) and labels (N,), got {tuple(features.shape)} "
                         f"and {tuple(labels.shape)}")
