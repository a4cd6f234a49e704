"""Checking a manifest's identity splits before any work is done on it.

Training needs at least two training identities, evaluation at least two
identities in its split; validation is optional. :func:`check_splits` says so
at once (the command line and the notebooks call it right after reading a
dataset and again after preprocessing, which may drop identities), instead
of failing minutes later inside a stage.
"""

from __future__ import annotations

import pandas as pd


def validation_note(identities: int) -> str | None:
    """Why no validation AUC can be measured on ``identities`` validation identities (None if it can).

    The training stages record this note in their metrics log in place of the
    validation numbers, and still train.
    """
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
    """Check that ``manifest`` can be trained (and evaluated on ``evaluation_split``); return notes.

    Raises ValueError, naming the problem, when the manifest is empty, when
    identities have no split, when (with ``training``) fewer than two
    identities are in split ``train``, or (unless ``evaluation_split`` is
    None) fewer than two in the evaluation split. Returns notes on what will
    be missing but does not stop the work: no or one validation identity
    (validation is skipped, see :func:`validation_note`). With neither
    training nor an evaluation split there is nothing to check.
    """
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
