"""The attributes of a manifest's rows (gender, nationality, age, traits), as the probes read them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def synthetic_attributes(table: pd.DataFrame, population_root: str | Path) -> pd.DataFrame:
    """Per row, the rendered attributes of its modality (gender, nationality, age, traits) from ``population.json``."""
    from vfcross.data.synthetic.population import TRAITS
    from vfcross.data.synthetic.writer import read_population

    people = {p.vox_id: p for p in read_population(population_root)}
    rows = []
    for identity, modality in zip(table["identity"], table["modality"]):
        attrs = getattr(people[identity], "voice" if modality == "voice" else "face")
        rows.append({"gender": attrs.gender, "nationality": attrs.nationality, "age": attrs.age_group,
                     **dict(zip(TRAITS, attrs.traits))})
    return pd.DataFrame(rows, index=table.index)


def metadata_attributes(table: pd.DataFrame) -> pd.DataFrame:
    """The attributes a dataset's metadata gives (gender, nationality, age; None where unknown), in row order."""
    columns = table[["gender", "nationality", "age"]]
    return columns.astype("object").where(columns.notna(), None)
