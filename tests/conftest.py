"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository: real VoxCeleb1 samples published by others.

    Tests read it in place (it is never copied into the repository) and skip
    where it is absent.
    """
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared real data not found at {path}")
    return path


@pytest.fixture(scope="session")
def slice_work(shared_data, tmp_path_factory) -> tuple:
    """(RunConfig, manifest): the VoxCeleb1 slice preprocessed and a smoke model trained on it.

    4 train and 2 test identities (the official splits); ``cfg.work_dir``
    holds the runs and the preprocessing cache. Trained once per session.
    """
    from fakes import train_work_dir

    from vfcross import config as C
    from vfcross.data.voxceleb import read_dataset
    from vfcross.preprocess.run import preprocess

    root = shared_data / "voxceleb1-mini"
    splits = shared_data / "voxceleb1-lists" / "identity_splits.txt"
    if not root.is_dir() or not splits.exists():
        pytest.skip("voxceleb1-mini or its identity splits are absent")
    work = tmp_path_factory.mktemp("slice")
    cfg = C.override(C.preset("smoke"), {"work_dir": str(work), "data_root": str(root),
                                         "preprocess.workers": 1})
    result = preprocess(read_dataset(root, splits), cfg, progress=False)
    manifest: pd.DataFrame = result.manifest
    return train_work_dir(cfg, manifest), manifest
