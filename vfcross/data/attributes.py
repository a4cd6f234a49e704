"""The attributes of a manifest's rows (gender, nationality, age, traits), as the probes read them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def synthetic_attributes(table: pd.DataFrame, population_root: str | Path) -> pd.DataFrame:
    """The rendered attributes of each row's modality (voice rows: the voice's, face rows: the face's).

    Columns gender, nationality, age and one per trait, from the population's
    ``population.json``; rows in the table's order.
    """
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
    """The attributes a dataset's metadata gives (gender, nationality, age; NA where unknown), in row order.

    On VoxCeleb1 these are the identity's, for both of its modalities (its
    meta table has no age: that column stays NA and is not probed).
    """
    return table[["gender", "nationality", "age"]].astype("object").where(table[["gender", "nationality", "age"]]
                                                                         .notna(), None)
