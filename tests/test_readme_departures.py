"""docs/departures.md's statements of the presets' values are the presets' values."""

from pathlib import Path

from vfcross.config import PRESETS, preset, to_dict
from vfcross.reporting.departures import NOT_DEPARTURES, ROWS, with_table

README = Path(__file__).resolve().parents[1] / "docs" / "departures.md"


def _flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return out


def test_the_readme_states_the_presets_values():
    text = README.read_text()
    assert with_table(text) == text, \
        "docs/departures.md's table differs from the presets: run python -m vfcross.reporting.departures"
    for name in PRESETS:  # the one preset value the design choices state
        assert f"`backbone.embed_chunk_crops` crops ({preset(name).backbone.embed_chunk_crops})" in text


def test_every_setting_where_the_presets_differ_has_a_row():
    paper, default = _flat(to_dict(preset("paper"))), _flat(to_dict(preset("default")))
    covered = [key for row in ROWS for key in row[1]] + list(NOT_DEPARTURES)
    missing = [key for key in paper if paper[key] != default[key]
               and not any(key == c or key.startswith(c + ".") for c in covered)]
    assert not missing, f"settings where the presets differ that the departures table leaves out: {missing}"
