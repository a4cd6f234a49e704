"""Typed configuration: presets, overrides, saving beside outputs, bad input."""

import json
from pathlib import Path

import pytest

from vfcross.backbone.objective import ARCHITECTURES
from vfcross.config import (
    PRESETS,
    Architecture,
    BackboneConfig,
    ConfigError,
    FaceConfig,
    LoopConfig,
    RunConfig,
    choices,
    load_config,
    override,
    preset,
    save_config,
)


@pytest.mark.parametrize("name", PRESETS)
def test_presets_round_trip_through_json(name, tmp_path):
    cfg = preset(name)
    assert cfg.preset == name
    assert load_config(save_config(cfg, tmp_path)) == cfg


def test_paper_preset_has_the_papers_settings():
    cfg = preset("paper")
    assert cfg.face.size == 256 and cfg.backbone.input_size == 256
    assert cfg.backbone.identities_per_batch * cfg.backbone.samples_per_identity == 45
    # lambda/2 * the formula's sum over the features f themselves, in float32 (the paper names no mixed precision)
    assert (cfg.backbone.center_weight, cfg.backbone.center_reduction, cfg.backbone.center_input) == \
        (1.0, "sum", "features")
    assert not cfg.backbone.loop.amp and not cfg.fusion.loop.amp
    assert (cfg.fusion.loop.lr, cfg.fusion.loop.epochs, cfg.fusion.batch_size) == (1e-5, 100, 128)


def test_a_saved_config_without_center_input_keeps_the_normalised_features(tmp_path):
    path = save_config(preset("default"), tmp_path)
    data = json.loads(path.read_text())
    del data["backbone"]["center_input"]  # as written before the setting existed
    path.write_text(json.dumps(data))
    assert load_config(path).backbone.center_input == "normalised"


def test_override_changes_one_field_and_checks_types():
    cfg = override(preset("smoke"), {"backbone.loop.epochs": 7, "voice.hop_ms": 12})
    assert cfg.backbone.loop.epochs == 7 and cfg.voice.hop_ms == 12.0
    assert preset("smoke").backbone.loop.epochs != 7  # presets are fresh copies
    with pytest.raises(ConfigError, match="^backbone.epochz: no configuration field"):
        override(cfg, {"backbone.epochz": 1})
    with pytest.raises(ConfigError, match="no configuration section 'nothing'"):
        override(cfg, {"nothing.epochs": 1})
    with pytest.raises(ConfigError, match="^backbone.loop.epochs: expected an integer, got 'many'"):
        override(cfg, {"backbone.loop.epochs": "many"})


def test_unknown_keys_in_a_saved_config_are_an_error(tmp_path):
    path = save_config(RunConfig(), tmp_path / "c.json")
    data = json.loads(path.read_text())
    data["voice"]["hop_msec"] = 10
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="^voice.hop_msec: no such setting.*c.json"):
        load_config(path)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'fast'; choose one of paper, default, smoke"):
        preset("fast")


@pytest.mark.parametrize("key, value, message", [
    ("backbone.loop.epochs", -3, "must be at least 1, got -3"),
    ("backbone.loop.epochs", 2.5, "expected an integer"),
    ("backbone.loop.epochs", True, "expected an integer"),
    ("backbone.identities_per_batch", 0, "must be at least 2"),
    ("backbone.input_size", 64, "must be at least 75"),
    ("backbone.dropout", 1.0, r"must lie in \[0.0, 1.0\)"),
    ("backbone.spectrogram_input", "raw", "'raw' is not allowed; choose one of 'image'"),
    ("backbone.architecture", "triple", "choose one of 'single', 'dual'"),
    ("backbone.center_input", "raw", "choose one of 'features', 'normalised'"),
    ("fusion.fusion", "concat", "choose one of 'gated', 'linear', 'none'"),
    ("fusion.loss", "triplet", "choose one of 'ce\\+opl', 'ce', 'opl'"),
    ("face.no_face", "ignore", "choose one of 'skip', 'fallback'"),
    ("eval.split", "dev", "choose one of 'train', 'val', 'seen_heard', 'test'"),
    ("backbone.loop.optimizer", "rmsprop", "choose one of 'adam', 'sgd'"),
    ("backbone.loop.lr", 0, "must lie in \\(0.0, inf\\]"),
    ("backbone.loop.average_epochs", 2, r"must lie in \[0, 1\], got 2"),  # smoke: 1 epoch
    ("fusion.loop.average_decay", 1.0, r"must lie in \[0.0, 1.0\)"),
    ("fusion.loop.lr_schedule", "step", "choose one of 'exponential', 'cosine'"),
    ("synth.coupling_age", 1.5, r"must lie in \[0.0, 1.0\]"),
    ("synth.split_fractions", [0.5, 0.5, 0.5], "summing to 1"),
    ("voice.n_fft", 256, "shorter than the 400-sample window"),
    ("voice.vad_overlap", 1.0, r"must lie in \[0.0, 1.0\)"),
    ("preprocess.workers", 0, "must be at least 1"),
    ("fusion.batch_size", 1, "must be at least 2"),
    ("skip_unlisted_identities", "yes", "expected bool"),
])
def test_bad_values_are_rejected_when_the_config_is_built(key, value, message):
    with pytest.raises(ConfigError, match=f"^{key.replace('.', '[.]')}: .*{message}"):
        override(preset("smoke"), {key: value})


def test_direct_construction_is_validated_too():
    with pytest.raises(ConfigError, match="^epochs: must be at least 1"):
        LoopConfig(epochs=0)
    with pytest.raises(ConfigError, match="^no_face: 'maybe' is not allowed"):
        FaceConfig(no_face="maybe")
    with pytest.raises(ConfigError, match="^loop: expected a LoopConfig section"):
        BackboneConfig(loop={"epochs": 3})


def test_a_bad_value_in_a_saved_config_names_key_and_file(tmp_path):
    path = save_config(preset("smoke"), tmp_path)
    data = json.loads(path.read_text())
    data["backbone"]["loop"]["epochs"] = 0
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"^backbone.loop.epochs: must be at least 1, got 0 \(in .*config.json\)"):
        load_config(path)


def test_the_choices_have_one_source():
    assert set(ARCHITECTURES) == set(choices(Architecture))
    assert PRESETS == ("paper", "default", "smoke")


def test_set_values_are_read_as_the_type_of_the_setting_they_set():
    from vfcross.workflows.cli import _changes  # how `--set key=value` items become changes

    cfg = override(preset("smoke"), _changes(["data_root=123", "face.size=64", "fusion.seeds=[3, 4]",
                                              "backbone.seeds=[3, 4]", "backbone.loop.amp=false", "eval.split=val"]))
    assert (cfg.data_root, cfg.face.size, cfg.fusion.seeds, cfg.backbone.loop.amp, cfg.eval.split) == \
        ("123", 64, (3, 4), False, "val")  # a folder named 123 stays a string
    with pytest.raises(ConfigError, match=r"^fusion\.seeds: expected a list of values, got '3,4'$"):
        override(preset("smoke"), _changes(["fusion.seeds=3,4"]))
    with pytest.raises(ConfigError, match=r"^backbone\.loop\.amp: expected bool, got 'yes'$"):
        override(preset("smoke"), _changes(["backbone.loop.amp=yes"]))


def test_a_fusion_seed_without_its_backbone_seed_is_refused():
    """Fusion seed s is trained on backbone seed s: a fusion seed no backbone is trained with is an error naming it."""
    with pytest.raises(ConfigError, match=r"^fusion\.seeds: fusion seed s is trained on backbone seed s, but \[2\] "
                                          r"is not in backbone\.seeds \[0, 1\]$"):
        override(preset("default"), {"backbone.seeds": [0, 1]})
    assert override(preset("default"), {"backbone.seeds": [0, 1, 2, 3]}).backbone.seeds == (0, 1, 2, 3)


@pytest.mark.parametrize("annotation", [Path, str | None], ids=["Path", "str | None"])
def test_a_field_whose_annotation_the_checks_do_not_know_is_refused(annotation):
    """A new ``Path`` or optional setting must not pass unchecked: building it names the field."""
    import dataclasses

    from vfcross.config import _check_types

    later = dataclasses.make_dataclass("Later", [("folder", annotation)])
    with pytest.raises(ConfigError, match=r"^folder: its annotation .* is not one the configuration checks"):
        _check_types(later(folder=Path("reports")))
