"""The real VoxCeleb1 slice end to end on the smoke preset, with the official split (no validation identities).

``../shared/data/voxceleb1-mini`` has six identities: four train and two test
in the Learnable-PINs split, none in validation. Every stage must run on it,
note the missing validation instead of failing, and evaluate the test
identities. Skipped where the shared data is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from vfcross.backbone.embedding import extract_embeddings
from vfcross.backbone.task import BACKBONE_RUN, BackboneTask
from vfcross.config import override, preset
from vfcross.data.splits import check_splits
from vfcross.data.voxceleb import scan_dataset
from vfcross.evaluation.evaluate import evaluate
from vfcross.fusion.task import FUSION_RUN, FusionTask, load_fusion, project
from vfcross.preprocess import preprocess
from vfcross.training import train

NO_VALIDATION = "no validation identities: validation AUC not measured"


@pytest.mark.slow
def test_preprocess_train_embed_fuse_and_evaluate_the_real_slice(shared_data, tmp_path):
    cfg = override(preset("smoke"), {
        "work_dir": str(tmp_path), "data_root": str(shared_data / "voxceleb1-mini"),
        "splits_file": str(shared_data / "voxceleb1-lists" / "identity_splits.txt")})

    manifest, skipped = scan_dataset(cfg.dataset_root, cfg.splits_file, cfg.skip_unlisted_identities)
    assert skipped.empty and manifest.groupby("split").identity.nunique().to_dict() == {"test": 2, "train": 4}
    assert check_splits(manifest, cfg.eval.split) == [NO_VALIDATION + "; training still runs"]

    result = preprocess(manifest, cfg, progress=False)
    assert len(result.manifest) == len(manifest)  # every real sample is usable
    check_splits(result.manifest, cfg.eval.split)

    backbone = train(BackboneTask(result.manifest, cfg.backbone), cfg.backbone.loop,
                     cfg.run_dir(BACKBONE_RUN), progress=False)
    assert backbone[-1]["note"] == NO_VALIDATION and "val_auc" not in backbone[-1]
    assert np.isfinite(backbone[-1]["loss"])

    emb = extract_embeddings(cfg.run_dir(BACKBONE_RUN), result.manifest, cfg.backbone,
                             cfg.cache_dir / "embeddings", progress=False)
    fusion = train(FusionTask(emb, cfg.fusion), cfg.fusion.loop, cfg.run_dir(FUSION_RUN), progress=False)
    assert len(fusion) == cfg.fusion.loop.epochs and all(r["note"] == NO_VALIDATION for r in fusion)

    test = (emb.table.split == cfg.eval.split).to_numpy()
    table = emb.table[test].reset_index(drop=True)
    vectors = project(load_fusion(cfg.run_dir(FUSION_RUN), cfg.fusion), emb.vectors[test], table)
    e = cfg.eval
    results = evaluate(vectors, table, e)
    verification = results["verification"]
    assert verification["pairs"] > 0 and 0.0 <= verification["auc"] <= 1.0 and 0.0 <= verification["eer"] <= 1.0


def test_both_backbones_per_seed_on_the_slice_reusing_the_trained_single_stream(slice_work):
    """Notebook 05's backbone loop (workflows.compare.train_backbones): the trained run is reused, the dual is new."""
    from vfcross.backbone.task import stage_embeddings
    from vfcross.reporting.claims import DUAL_BACKBONE, SINGLE_BACKBONE
    from vfcross.training import CHECKPOINT
    from vfcross.workflows.compare import train_backbones

    cfg, manifest = slice_work  # shared by other tests: the session's configuration, unchanged
    single = cfg.run_dir(BACKBONE_RUN) / CHECKPOINT
    written = single.stat().st_mtime_ns
    rows = manifest[manifest["split"] == "test"]
    systems = train_backbones(cfg, manifest, rows)
    seeds = sorted(cfg.backbone.seeds)
    assert len(seeds) > 1
    assert {name: sorted(by_seed) for name, by_seed in systems.items()} == {SINGLE_BACKBONE: seeds, DUAL_BACKBONE: seeds}
    assert single.stat().st_mtime_ns == written  # notebook 02's run, not trained again
    for seed in seeds:
        single_vectors = stage_embeddings(cfg, rows, seed, progress=False).vectors
        np.testing.assert_array_equal(systems[SINGLE_BACKBONE][seed], single_vectors)
        dual = systems[DUAL_BACKBONE][seed]
        assert dual.shape == (len(rows), 512) and not np.allclose(dual, single_vectors)
    assert not np.allclose(systems[SINGLE_BACKBONE][seeds[0]], systems[SINGLE_BACKBONE][seeds[1]])
