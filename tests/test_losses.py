"""Losses against values worked out by hand (see the comments for the arithmetic)."""

import math

import pytest
import torch

from vfcross.losses import CrossModalCenterLoss, orthogonal_projection_loss


def _center_example(reduction: str) -> tuple[CrossModalCenterLoss, torch.Tensor, torch.Tensor]:
    """Three 2-d features of identities 0, 0, 1 with centers (0.5, 0) and (0, 1)."""
    loss = CrossModalCenterLoss(num_classes=3, dim=2, weight=1.0, center_lr=0.5, reduction=reduction)
    loss.centers.copy_(torch.tensor([[0.5, 0.0], [0.0, 1.0], [7.0, 7.0]]))
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    return loss, feats, torch.tensor([0, 0, 1])


def test_center_loss_value_and_gradient_by_hand():
    # ||f1-c0||^2 = 0.25, ||f2-c0||^2 = 1.25, ||f3-c1||^2 = 1  ->  sum 2.5, loss = 1/2 * 2.5
    loss, feats, labels = _center_example("sum")
    value = loss(feats, labels)
    assert value.item() == pytest.approx(1.25)
    value.backward()
    # d/df_i = lambda * (f_i - c_{y_i})
    assert torch.allclose(feats.grad, torch.tensor([[0.5, 0.0], [-0.5, 1.0], [1.0, 0.0]]))
    mean_loss, feats2, _ = _center_example("mean")
    assert mean_loss(feats2, labels).item() == pytest.approx(1.25 / 3)


def test_center_loss_weight_scales_linearly():
    loss, feats, labels = _center_example("sum")
    loss.weight = 3.0
    assert loss(feats, labels).item() == pytest.approx(3 * 1.25)


def test_center_update_follows_wen_et_al():
    # c0: sum(c0 - f) = (-0.5, 0) + (0.5, -1) = (0, -1), n = 2 -> c0 - 0.5 * (0, -1) / 3 = (0.5, 1/6)
    # c1: (c1 - f3) = (-1, 0), n = 1 -> c1 - 0.5 * (-1, 0) / 2 = (0.25, 1); c2 unseen, unchanged
    loss, feats, labels = _center_example("mean")
    loss.update_centers(feats, labels)
    expected = torch.tensor([[0.5, 1 / 6], [0.25, 1.0], [7.0, 7.0]])
    assert torch.allclose(loss.centers, expected)
    assert not loss.centers.requires_grad


def test_centers_are_shared_across_modalities():
    # A face and a voice of identity 0 are both pulled to the SAME center.
    loss = CrossModalCenterLoss(num_classes=2, dim=2, reduction="sum")
    face, voice = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    both = loss(torch.cat([face, voice]), torch.tensor([0, 0]))
    assert both.item() == pytest.approx(loss(face, torch.tensor([0])).item() + loss(voice, torch.tensor([0])).item())


def test_center_loss_rejects_bad_shapes():
    loss = CrossModalCenterLoss(num_classes=2, dim=2)
    with pytest.raises(ValueError, match="expected features"):
        loss(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction"):
        CrossModalCenterLoss(2, 2, reduction="avg")


def test_opl_by_hand():
    # a=(1,0), b=(2,0) ~ (1,0) [id 0]; c=(0,1), d=(1,1)/sqrt2 [id 1]
    # same pairs (i != j): cos(a,b)=1 twice, cos(c,d)=1/sqrt2 twice -> mean (2 + sqrt2)/4
    # different pairs: a-c 0, a-d 1/sqrt2, b-c 0, b-d 1/sqrt2 (each twice) -> mean sqrt2/4
    # loss = 1 - (2 + sqrt2)/4 + sqrt2/4 = 0.5
    feats = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert orthogonal_projection_loss(feats, labels).item() == pytest.approx(0.5)
    # Counting i == j (cos = 1) as positives would give a different value:
    with_diag = 1 - (4 + 2 + 2 / math.sqrt(2)) / 8 + math.sqrt(2) / 4
    assert orthogonal_projection_loss(feats, labels).item() != pytest.approx(with_diag)


def test_opl_takes_absolute_value_of_negative_term():
    # Opposite identities point in opposite directions: mean negative cos = -1, |.| = 1.
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert orthogonal_projection_loss(feats, labels).item() == pytest.approx(1.0)


def test_opl_minimum_is_orthogonal_identities_and_gradients_flow():
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    assert orthogonal_projection_loss(feats, labels).item() == pytest.approx(0.0, abs=1e-7)
    noisy = torch.randn(6, 4, requires_grad=True)
    orthogonal_projection_loss(noisy, torch.tensor([0, 0, 1, 1, 2, 2])).backward()
    assert noisy.grad is not None and noisy.grad.abs().sum() > 0


def test_opl_without_positive_pairs_uses_only_negative_term():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert orthogonal_projection_loss(feats, torch.tensor([0, 1])).item() == pytest.approx(0.0)
