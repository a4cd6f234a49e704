"""Checking a manifest's identity splits at once, instead of failing minutes later inside a stage.

Training needs two training identities, evaluation two in its split; validation is optional."""

from __future__ import annotations

import pandas as pd


def validation_note(identities: int) -> str | None:
    """Why no validation AUC can be measured on ``identities`` validation identities (None if it can)."""
    if identities == 0:
        return "no validation identities: validation AUC not measured"
    if identities == 1:
        return "one validation identity: validation AUC not measured (it needs two)"
    return None


def split_counts(manifest: pd.DataFrame) -> dict[str, int]:
    """Number of identities per split (NA counted under ``"<none>"``)."""
    split = manifest["split"].astype("string").fillna("<none>")
    return {str(k): int(v) for k, v in manifest.assign(split=split).groupby("split")["identity"].nunique().items()}


def check_splits(manifest: pd.DataFrame, evaluation_split: str | None = "test", training: bool = True) -> list[str]:
    """Check that ``manifest`` can be trained (and evaluated on ``evaluation_split``, unless None); return notes.
    ValueError naming the problem for an empty manifest, unsplit identities, or fewer than two identities in ``train``
    or the evaluation split; too few validation identities is a note (:func:`validation_note`)."""
    if not training and evaluation_split is None:
        return []
    if manifest.empty:
        raise ValueError("the manifest is empty: there is nothing to train or evaluate")
    unsplit = sorted(manifest.loc[manifest["split"].isna(), "identity"].astype(str).unique())
    if unsplit:
        raise ValueError(f"{len(unsplit)} identities have no split ({', '.join(unsplit[:5])}"
                         f"{' ...' if len(unsplit) > 5 else ''}): give an identity-split file that lists them "
                         "(splits_file, --splits)")
    counts = split_counts(manifest)
    if training and counts.get("train", 0) < 2:
        raise ValueError(f"training needs at least two identities in split 'train'; the manifest has "
                         f"{counts.get('train', 0)} (identities per split: {counts})")
    if evaluation_split is not None and counts.get(evaluation_split, 0) < 2:
        raise ValueError(f"evaluation needs at least two identities in split {evaluation_split!r}; the manifest "
                         f"has {counts.get(evaluation_split, 0)} (identities per split: {counts})")
    note = validation_note(counts.get("val", 0)) if training else None
    return [note + "; training still runs"] if note else []
