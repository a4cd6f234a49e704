"""Single-stream vs dual-stream networks: parameter sharing, counts, shapes, bad input."""

import pytest
import torch

from vfcross.backbone.dual_stream import DualStream
from vfcross.backbone.inception import spectrogram_to_image
from vfcross.backbone.single_stream import SingleStream

SIZE = 75


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _grad_owners(model: torch.nn.Module, x: torch.Tensor, modality: str) -> set[str]:
    """Names of the parameters a loss on one modality's embedding reaches."""
    model.zero_grad(set_to_none=True)
    model.embed(x, modality).sum().backward()
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(0)
    return torch.randn(2, 3, SIZE, SIZE), torch.randn(2, 1, 257, 120)


def test_single_stream_uses_one_parameter_set_for_both_modalities(inputs):
    faces, voices = inputs
    model = SingleStream(num_classes=5, input_size=SIZE).train()
    face_params = _grad_owners(model, faces, "face")
    voice_params = _grad_owners(model, voices, "voice")
    backbone = {n for n, _ in model.named_parameters() if n.startswith("backbone.")}
    assert face_params == voice_params
    # Every trainable backbone parameter is reached by both modalities.
    assert backbone <= face_params


def test_dual_stream_keeps_modalities_apart(inputs):
    faces, voices = inputs
    model = DualStream(num_classes=5, input_size=SIZE).train()
    face_params = _grad_owners(model, faces, "face")
    voice_params = _grad_owners(model, voices, "voice")
    assert face_params and voice_params and not face_params & voice_params
    assert all(n.startswith("face_net.") for n in face_params)
    assert all(n.startswith("voice_net.") for n in voice_params)


def test_single_stream_has_half_the_backbone_parameters():
    single, dual = SingleStream(10, SIZE), DualStream(10, SIZE)
    assert _params(single.classifier) == _params(dual.classifier)
    assert 2 * _params(single.backbone) == _params(dual.face_net) + _params(dual.voice_net)
    assert _params(single.backbone) > 20_000_000  # InceptionResNet-V1: ~23.5 M


def test_forward_shapes_and_embeddings_are_unit_norm(inputs):
    faces, voices = inputs
    model = SingleStream(num_classes=5, input_size=SIZE).eval()
    with torch.no_grad():
        f, v = model(faces, voices)
        emb = model.embed(voices, "voice")
    assert f.shape == (2, 512) and v.shape == (2, 512)
    assert model.classifier(f).shape == (2, 5)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))


def test_spectrogram_becomes_a_three_channel_image():
    spec = torch.arange(2 * 257 * 40, dtype=torch.float32).reshape(2, 1, 257, 40)
    image = spectrogram_to_image(spec, 96)
    assert image.shape == (2, 3, 96, 96)
    assert torch.equal(image[:, 0], image[:, 2])


def test_bad_inputs_are_rejected(inputs):
    faces, _ = inputs
    with pytest.raises(ValueError, match="minimum of 75"):
        SingleStream(5, input_size=64)
    model = SingleStream(5, input_size=SIZE)
    with pytest.raises(ValueError, match="expected faces"):
        model.embed(faces[:, :, :70, :70], "face")
    with pytest.raises(ValueError, match=r"\(B, 1, F, T\)"):
        model.embed(faces, "voice")
    with pytest.raises(ValueError, match="modality"):
        model.embed(faces, "image")
    with pytest.raises(ValueError, match="spectrogram_input"):
        spectrogram_to_image(torch.zeros(1, 1, 10, 10), 80, mode="tiles")


def test_training_step_measurement_reports_real_cost():
    from vfcross.workflows.cost import measure_training_step
    from vfcross.config import BackboneConfig

    cfg = BackboneConfig(input_size=SIZE, identities_per_batch=2, samples_per_identity=2, voice_crop_frames=60)
    cost = measure_training_step(cfg, num_classes=4, steps=1)
    assert cost["params"] == _params(SingleStream(4, SIZE).backbone) + _params(SingleStream(4, SIZE).classifier)
    assert cost["batch"] == 8
    # the peak holds at least the weights, their gradients and Adam's two moments (4 float32 copies): a
    # measurement that missed the model (e.g. read before it was built) would fall below it
    assert cost["peak_memory_mb"] >= 4 * 4 * cost["params"] / 2**20
    assert cost["peak_memory_mb"] > 50  # a 23 M-parameter network with Adam state cannot fit in less
