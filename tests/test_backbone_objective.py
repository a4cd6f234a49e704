"""The backbone objective's center loss: the features f (the paper) or their L2-normalised copies."""

import pytest
import torch
from torch import nn

from vfcross.backbone.objective import BackboneObjective
from vfcross.config import override, preset
from vfcross.losses import CrossModalCenterLoss
from vfcross.training import CHECKPOINT, check_run, stage_settings


class _Identity(nn.Module):
    """A stand-in network whose features are its inputs, so the test chooses f exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = nn.Linear(2, 2)

    def forward(self, faces, voices):
        return faces, voices


# A face f = (3, 4) of identity 0 and a voice f = (0, 2) of identity 1; centers c0 = (1, 0), c1 = (0, 0);
# lambda = 1, batch mean, center learning rate 0.5 (each center then moves a quarter of the way).
# features:   (|(2, 4)|^2 + |(0, 2)|^2) / 2 / 2 = 6;           c0 -> (1, 0) + (3 - 1, 4) / 4 = (1.5, 1)
# normalised: f = (0.6, 0.8), (0, 1): (0.8 + 1) / 2 / 2 = 0.45;  c0 -> (1, 0) + (0.6 - 1, 0.8) / 4 = (0.9, 0.2)
@pytest.mark.parametrize("center_input, loss, center0", [("features", 6.0, [1.5, 1.0]),
                                                         ("normalised", 0.45, [0.9, 0.2])])
def test_the_center_loss_sees_the_chosen_input(center_input, loss, center0):
    cfg = override(preset("smoke"), {"backbone.center_input": center_input}).backbone
    objective = BackboneObjective(cfg, num_classes=2).train()
    objective.net = _Identity()
    objective.center = CrossModalCenterLoss(2, 2, weight=1.0, center_lr=0.5, reduction="mean")
    objective.center.centers.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    out = objective(torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 2.0]]), torch.tensor([0]), torch.tensor([1]))
    torch.testing.assert_close(out["center"], torch.tensor(loss))
    torch.testing.assert_close(objective.center.centers[0], torch.tensor(center0))


def test_a_run_recorded_before_center_input_existed_is_read_as_normalised(tmp_path):
    cfg = preset("smoke").backbone
    settings = stage_settings("backbone", cfg)
    old = {k: v for k, v in settings.items() if k != "backbone.center_input"}
    torch.save({"fingerprint": {"stage": "backbone", "settings": old, "data": {}}}, tmp_path / CHECKPOINT)
    check_run(tmp_path, settings)  # trained with the normalised features: the same model
    with pytest.raises(ValueError, match="backbone.center_input: \"normalised\" -> \"features\""):
        check_run(tmp_path, stage_settings("backbone", override(preset("smoke"), {"backbone.center_input":
                                                                                  "features"}).backbone))
