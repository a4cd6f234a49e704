"""Typed configuration: presets, overrides, saving beside outputs, bad input."""

import json

import pytest

from vfcross.config import (
    PRESETS,
    RunConfig,
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
    assert cfg.backbone.center_weight == 1.0
    assert (cfg.fusion.loop.lr, cfg.fusion.loop.epochs, cfg.fusion.batch_size) == (1e-5, 100, 128)


def test_override_changes_one_field_and_checks_types():
    cfg = override(preset("smoke"), {"backbone.loop.epochs": 7, "voice.hop_ms": 12})
    assert cfg.backbone.loop.epochs == 7 and cfg.voice.hop_ms == 12.0
    assert preset("smoke").backbone.loop.epochs != 7  # presets are fresh copies
    with pytest.raises(KeyError, match="no configuration field"):
        override(cfg, {"backbone.epochz": 1})
    with pytest.raises(KeyError, match="no configuration section"):
        override(cfg, {"nothing.epochs": 1})
    with pytest.raises(TypeError, match="expected int"):
        override(cfg, {"backbone.loop.epochs": "many"})


def test_unknown_keys_in_a_saved_config_are_an_error(tmp_path):
    path = save_config(RunConfig(), tmp_path / "c.json")
    data = json.loads(path.read_text())
    data["voice"]["hop_msec"] = 10
    path.write_text(json.dumps(data))
    with pytest.raises(KeyError, match="hop_msec"):
        load_config(path)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset"):
        preset("fast")
