"""No test identity reaches training, epoch selection or probe fitting, and the run records say so.

End to end on a small fake preprocessed dataset (train, val and test identities): the backbone and the
fusion are trained by the notebooks' functions (the fusion with its validation-best epoch kept) while
every sample they read is watched; the attribute probes run as notebook 04 runs them (fitted on the val
identities, scored on the test identities) while what each fit and each score reads is watched. The run records, and the model that `vfcross.load` makes of
them, list exactly the identities training and epoch selection read, so evaluation can refuse to score them.
"""

import numpy as np
import pandas as pd
from fakes import fake_preprocessed

import vfcross
from vfcross import config as C
from vfcross.config import FULL_MODEL
from vfcross.backbone import sampler
from vfcross.backbone import task as backbone_task
from vfcross.backbone.embedding import extract_embeddings
from vfcross.backbone.task import train_backbone
from vfcross.evaluation import probes
from vfcross.evaluation.evaluate import trained_identities_note
from vfcross.fusion import task as fusion_task
from vfcross.fusion.task import train_fusion
from vfcross.training import recorded_identities


def test_test_identities_never_reach_training_epoch_selection_or_probe_fitting(tmp_path, monkeypatch):
    manifest = fake_preprocessed(tmp_path / "data", {"train": 6, "val": 3, "test": 5}, n_face=2, n_voice=2)
    cfg = C.override(C.preset("smoke"), {"work_dir": str(tmp_path / "work"), "backbone.voice_crop_frames": 50,
                                         "backbone.loop.select_best": "val_auc"})
    identity_of = dict(zip(manifest["cache_path"], manifest["identity"]))
    splits = manifest.groupby("split")["identity"].unique()
    test = set(splits["test"])
    read: dict[str, set] = {"training": set(), "epoch selection": set()}

    def watch(function, stage, to_identities):
        def watched(*args, **kwargs):
            read[stage].update(to_identities(*args))
            return function(*args, **kwargs)
        return watched

    # the training batches' loading (sampler.pk_inputs reads through these two)
    monkeypatch.setattr(sampler, "load_faces", watch(sampler.load_faces, "training",
                                                     lambda paths, *_: map(identity_of.get, paths)))
    monkeypatch.setattr(sampler, "load_voice_crops", watch(sampler.load_voice_crops, "training",
                                                           lambda paths, *_: map(identity_of.get, paths)))
    monkeypatch.setattr(backbone_task, "embed_rows", watch(backbone_task.embed_rows, "epoch selection",
                                                           lambda net, rows, *_: rows["identity"]))
    monkeypatch.setattr(fusion_task, "project", watch(fusion_task.project, "epoch selection",
                                                      lambda model, vectors, table, *_: table["identity"]))

    backbone, history = train_backbone(cfg, manifest, progress=False)
    emb = extract_embeddings(backbone, manifest, cfg.backbone, cfg.cache_dir / "embeddings", progress=False)
    monkeypatch.setattr(fusion_task, "_pair_inputs", watch(fusion_task._pair_inputs, "training", lambda _, batch: (
        emb.table["identity"].iloc[np.concatenate([batch.faces, batch.voices])])))
    fusion, fusion_history = train_fusion(cfg, emb, FULL_MODEL)
    assert "val_auc" in history[-1] and all("val_auc" in record for record in fusion_history)
    assert read["training"] == set(splits["train"])
    # validation reads the val identities (and may read held-out samples of training identities)
    assert read["epoch selection"] - set(splits["train"]) == set(splits["val"])

    # the records list what training and epoch selection read, by split, and no test identity
    for run in (backbone, fusion):
        assert recorded_identities(run) == {"train": sorted(splits["train"]), "val": sorted(splits["val"])}
    model = vfcross.load(tmp_path / "work", "cpu")
    assert trained_identities_note(model.trained_on, test, "model") == ""
    leaked = trained_identities_note(model.trained_on, [*test, splits["val"][0]], "model")
    assert f"model was trained or validated on 1 of the {len(test) + 1} identities to score ({splits['val'][0]})" \
        in leaked

    # the probes, as notebook 04 runs them: fitted on the val identities only, scored on the test identities
    splits_seen: list[tuple[set, set]] = []

    def watched_outer(groups, n_folds, seed, fit):
        made = real_outer(groups, n_folds, seed, fit)
        splits_seen.extend((set(groups[fitted]), set(groups[scored])) for fitted, scored in made)
        return made

    real_outer = probes._outer
    monkeypatch.setattr(probes, "_outer", watched_outer)
    held = (emb.table["split"] != "train").to_numpy()
    held_table = emb.table[held].reset_index(drop=True)
    attributes = pd.DataFrame({"trait": np.random.default_rng(0).normal(size=held.sum())})
    report = probes.probe_report({"backbone": emb.vectors[held]}, held_table, attributes, fit_split="val")
    assert len(report) == 2 and set(report["identities"]) == {len(test)}  # one probe per modality, scored on test
    assert splits_seen and all(fitted == set(splits["val"]) and scored == test for fitted, scored in splits_seen)
