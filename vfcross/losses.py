"""Losses of the method: cross-modal center loss and orthogonal projection loss."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from vfcross.config import CenterReduction, choices


class CrossModalCenterLoss(nn.Module):
    """Center loss whose identity centers are shared by faces AND voices, pulling both to one point. ``weight / 2 *
    sum_i ||f_i - c_{y_i}||^2``, divided by the batch size for ``reduction="mean"`` (Wen et al.'s code) or the
    formula's sum. Centers are a buffer moved by :meth:`update_centers` (Wen et al. 2016, eq. 4), summed over all
    processes under torch.distributed."""

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
    """Orthogonal projection loss (Ranasinghe et al. 2021): ``(1 - mean cos of same-identity pairs) + |mean cos of
    different-identity pairs|`` over ordered pairs i != j; a term without pairs is 0."""
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
