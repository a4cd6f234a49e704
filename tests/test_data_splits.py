"""Checking a manifest's splits before any work: what stops it, what is only noted."""

import pandas as pd
import pytest

from vfcross.data.splits import check_splits, split_counts, validation_note


def manifest(**identities: int) -> pd.DataFrame:
    """One face and one voice row per identity; ``identities`` maps split -> identity count."""
    rows = []
    for split, count in identities.items():
        for k in range(count):
            rows += [(f"{split}{k}", m, None if split == "none" else split) for m in ("face", "voice")]
    return pd.DataFrame(rows, columns=["identity", "modality", "split"]).astype({"split": "string"})


def test_a_complete_manifest_passes_without_notes():
    assert check_splits(manifest(train=3, val=2, test=2)) == []
    assert split_counts(manifest(train=3, val=2, test=2)) == {"test": 2, "train": 3, "val": 2}


def test_missing_validation_is_only_a_note():
    assert check_splits(manifest(train=3, test=2)) == \
        ["no validation identities: validation AUC not measured; training still runs"]
    assert check_splits(manifest(train=3, val=1, test=2)) == \
        ["one validation identity: validation AUC not measured (it needs two); training still runs"]
    assert validation_note(2) is None


@pytest.mark.parametrize("table, message", [
    (manifest(train=3, val=2), r"evaluation needs at least two identities in split 'test'; the manifest has 0"),
    (manifest(train=3, val=2, test=1), r"split 'test'; the manifest has 1"),
    (manifest(train=1, test=2), r"training needs at least two identities in split 'train'; the manifest has 1"),
    (manifest(train=3, test=2, none=2), r"2 identities have no split \(none0, none1\): give an identity-split file"),
    (manifest(), "the manifest is empty"),
])
def test_what_cannot_be_trained_or_evaluated_is_an_error(table, message):
    with pytest.raises(ValueError, match=message):
        check_splits(table)


def test_evaluation_alone_needs_no_training_split():
    assert check_splits(manifest(test=2), training=False) == []
    assert check_splits(manifest(none=3), evaluation_split=None, training=False) == []  # official lists
    with pytest.raises(ValueError, match="split 'test'; the manifest has 1"):
        check_splits(manifest(test=1), training=False)


def test_training_alone_needs_no_test_split():
    assert check_splits(manifest(train=2, val=2), evaluation_split=None) == []
    with pytest.raises(ValueError, match="split 'val'"):
        check_splits(manifest(train=2, test=2), evaluation_split="val")
