"""Fusion + FOP: the gate, the Table 6 variants as configuration, pair sampling, test-time embeddings."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from vfcross.backbone.embedding import Embeddings, all_pairs_auc
from vfcross.config import TABLE6_VARIANTS, FusionConfig, LoopConfig
from vfcross.fusion.model import FusionModel
from vfcross.fusion.task import FusionObjective, FusionTask, load_fusion, project
from vfcross.training import RunMismatchError, train


def _pair(n=6, dim=512, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g), torch.arange(n) % classes


def test_gate_lies_in_open_unit_interval_and_gradient_reaches_both_projections():
    torch.manual_seed(0)
    model = FusionModel(num_classes=3, dim=16, fusion="gated")
    faces, voices, labels = _pair()
    fused, k = model(faces, voices)
    assert fused.shape == (6, 16) and k.shape == (6, 16)
    assert ((k > 0) & (k < 1)).all()
    torch.nn.functional.cross_entropy(model.classifier(fused), labels).backward()
    for layer in (model.face_proj, model.voice_proj, model.gate):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_fused_is_the_gated_mixture_of_normalised_projections():
    torch.manual_seed(0)
    model = FusionModel(num_classes=3, dim=16, fusion="gated")
    faces, voices, _ = _pair()
    fused, k = model(faces, voices)
    u, v = model.embed(faces, "face"), model.embed(voices, "voice")
    torch.testing.assert_close(u.norm(dim=1), torch.ones(6))
    torch.testing.assert_close(fused, k * u + (1 - k) * v)
    w, b = model.gate.weight.detach(), model.gate.bias.detach()  # k = sigma(W[e, b] + B), written out
    expected_k = torch.sigmoid(voices @ w[:, :voices.shape[1]].T + faces @ w[:, voices.shape[1]:].T + b)
    torch.testing.assert_close(k, expected_k)


def _step(cfg: FusionConfig):
    """One optimiser step of a variant: parameters before and after, and the loss parts."""
    torch.manual_seed(0)
    objective = FusionObjective(cfg, num_classes=3)
    before = {n: p.detach().clone() for n, p in objective.named_parameters()}
    opt = torch.optim.SGD(objective.parameters(), lr=0.1)
    parts = objective(*_pair())
    parts["loss"].backward()
    opt.step()
    after = dict(objective.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    return parts, changed, set(before)


@pytest.mark.parametrize("variant", list(TABLE6_VARIANTS))
def test_each_table6_variant_trains_a_step_and_changes_only_what_it_should(variant):
    cfg = FusionConfig(dim=16, **TABLE6_VARIANTS[variant])
    parts, changed, names = _step(cfg)
    assert torch.isfinite(parts["loss"])
    expected_loss = {"ce+opl": parts["ce"] + cfg.alpha * parts["opl"], "ce": parts["ce"], "opl": parts["opl"]}
    torch.testing.assert_close(parts["loss"].detach(), expected_loss[cfg.loss])
    projections = {n for n in names if n.startswith(("model.face_proj", "model.voice_proj"))}
    assert projections <= changed
    gate = {n for n in names if n.startswith("model.gate")}
    assert bool(gate) == (cfg.fusion == "gated") and gate <= changed
    classifier = {n for n in names if n.startswith("model.classifier")}
    # Without CE in the loss the classifier receives no gradient and stays as it was.
    assert (classifier <= changed) if "ce" in cfg.loss else not (classifier & changed)
    assert ("gate_mean" in parts) == (cfg.fusion != "none")


def test_no_fusion_stacks_u_and_v_with_shared_labels():
    model = FusionModel(num_classes=3, dim=16, fusion="none")
    faces, voices, _ = _pair()
    features, gate = model(faces, voices)
    assert gate is None and features.shape == (12, 16)
    torch.testing.assert_close(features[:6], model.embed(faces, "face"))
    torch.testing.assert_close(features[6:], model.embed(voices, "voice"))


def test_linear_fusion_uses_one_learned_scalar():
    model = FusionModel(num_classes=3, dim=16, fusion="linear")
    faces, voices, _ = _pair()
    _, k = model(faces, voices)
    assert k.shape == (6, 1) and torch.allclose(k, torch.full((6, 1), 0.5))


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="unknown fusion"):
        FusionModel(3, fusion="concat")
    with pytest.raises(ValueError, match="loss: 'triplet' is not allowed"):
        FusionConfig(loss="triplet")
    with pytest.raises(ValueError, match="paired"):
        FusionModel(3)(torch.zeros(2, 512), torch.zeros(3, 512))


def _embeddings(seed=0, per_split=(("train", 24), ("val", 6)), n=4, latent=8, noise=0.3):
    """Fake backbone embeddings: a low-dimensional identity latent seen through two modality maps.

    Faces are ``A z + noise`` and voices ``B z + noise`` with different fixed
    maps A and B, so cosine similarity across modalities is near chance until
    the projections learn to align the maps, which then transfers to unseen
    identities.
    """
    rng = np.random.default_rng(seed)
    maps = {"face": rng.normal(size=(512, latent)), "voice": rng.normal(size=(512, latent))}
    rows, vecs = [], []
    k = 0
    for split, count in per_split:
        for _ in range(count):
            k += 1
            z = rng.normal(size=latent)
            for modality in ("face", "voice"):
                for _ in range(n):
                    rows.append((f"id{k:03d}", modality, split))
                    vecs.append(maps[modality] @ (z + noise * rng.normal(size=latent)))
    table = pd.DataFrame(rows, columns=["identity", "modality", "split"]).astype({"split": "string"})
    vecs = np.asarray(vecs, dtype=np.float32)
    return Embeddings(table, vecs / np.linalg.norm(vecs, axis=1, keepdims=True), "fake", "0" * 64)


def test_pairs_cover_every_training_sample_once_per_role():
    emb = _embeddings()
    task = FusionTask(emb, FusionConfig(batch_size=10))
    batches = task.batches(0, np.random.default_rng(0))
    faces = np.concatenate([b.faces for b in batches])
    voices = np.concatenate([b.voices for b in batches])
    labels = np.concatenate([b.labels for b in batches])
    ident = emb.table.identity.to_numpy()
    train_faces = np.flatnonzero((emb.table.split == "train") & (emb.table.modality == "face"))
    train_voices = np.flatnonzero((emb.table.split == "train") & (emb.table.modality == "voice"))
    assert len(labels) == len(train_faces) + len(train_voices)
    assert (ident[faces] == ident[voices]).all()  # every pair is one identity
    assert (np.asarray(task.classes)[labels] == ident[faces]).all()
    assert set(faces) == set(train_faces) and set(voices) == set(train_voices)
    assert max(len(b.labels) for b in batches) == 10


def test_fusion_trains_with_the_one_loop_and_learns(tmp_path):
    emb = _embeddings()
    cfg = FusionConfig(dim=32, batch_size=16, loop=LoopConfig(epochs=6, lr=3e-3, lr_decay=1.0, seed=0))
    task = FusionTask(emb, cfg)
    val = (emb.table.split == "val").to_numpy()
    before = all_pairs_auc(emb.vectors[val], emb.table[val])
    history = train(task, cfg.loop, tmp_path, progress=False)
    assert history[-1]["loss"] < history[0]["loss"]
    # On unseen identities the learned u/v beat the raw embeddings, whose modality maps differ.
    assert before < 0.7 and history[-1]["val_auc"] > 0.9

    # The run folder now belongs to these embeddings and settings.
    other_backbone = dataclasses.replace(emb, checkpoint_sha256="1" * 64)
    with pytest.raises(RunMismatchError, match=r"data\.backbone_checkpoint_sha256: \"0000"):
        train(FusionTask(other_backbone, cfg), cfg.loop, tmp_path, progress=False)
    with pytest.raises(RunMismatchError, match=r"fusion\.loss: \"ce\+opl\" -> \"ce\""):
        load_fusion(tmp_path, dataclasses.replace(cfg, loss="ce"))
    assert load_fusion(tmp_path, cfg).fusion == "gated"


def test_fusion_without_validation_identities_trains_and_notes_it(tmp_path):
    emb = _embeddings(per_split=(("train", 6), ("test", 3)))
    cfg = FusionConfig(dim=8, batch_size=16, loop=LoopConfig(epochs=1, lr=1e-3))
    (record,) = train(FusionTask(emb, cfg), cfg.loop, tmp_path, progress=False)
    assert record["note"] == "no validation identities: validation AUC not measured"
    assert "val_auc" not in record and np.isfinite(record["loss"])


def test_validation_scores_a_fixed_subset_and_the_run_records_it(tmp_path):
    import json

    from vfcross.backbone.sampler import subset_mask

    emb = _embeddings()  # 6 validation identities of 4 faces and 4 voices
    cfg = FusionConfig(dim=8, batch_size=16, loop=LoopConfig(epochs=1, lr=1e-3, val_voices=1, val_faces=2))
    task = FusionTask(emb, cfg)
    (record,) = train(task, cfg.loop, tmp_path, progress=False)
    val = (emb.table.split == "val").to_numpy()
    keep = np.flatnonzero(val)[subset_mask(emb.table[val], 1, 2)]
    rows = emb.table.iloc[keep].reset_index(drop=True)
    assert record["val_auc"] == all_pairs_auc(project(task.objective.model, emb.vectors[keep], rows), rows)
    saved = json.loads((tmp_path / "trained_from.json").read_text())
    names = sorted(emb.table.identity[val].unique())
    assert saved["validation"] == {"voices_per_identity": 1, "faces_per_identity": 2, "voices": 6, "faces": 12,
                                   "identities": 6, "identity_names": names}
    # an epoch pairs each of the 96 training faces and 96 voices with a partner: 12 batches of 16 pairs
    assert saved["schedule"] == {"steps_per_epoch": 12, "processes": 1, "images_per_step": 32.0, "epochs": 1,
                                 "images": 384, "passes": {"face": 2.0, "voice": 2.0}}
    everything = FusionTask(emb, dataclasses.replace(cfg, loop=LoopConfig(epochs=1)))  # 0: every sample
    assert everything.validation["voices"] == everything.validation["faces"] == 24


def test_test_time_embeddings_are_u_and_v_not_the_fused_vector():
    emb = _embeddings()
    model = FusionModel(num_classes=24, dim=16, fusion="gated")
    out = project(model, emb.vectors, emb.table)
    is_face = torch.from_numpy(np.array(emb.table.modality == "face"))
    vec = torch.tensor(emb.vectors)
    with torch.no_grad():
        np.testing.assert_allclose(out[is_face], model.embed(vec[is_face], "face").numpy(), rtol=1e-6)
        np.testing.assert_allclose(out[~is_face], model.embed(vec[~is_face], "voice").numpy(), rtol=1e-6)
        model.gate.weight.add_(1.0)  # the gate only shapes I; test-time embeddings ignore it
    np.testing.assert_array_equal(project(model, emb.vectors, emb.table), out)


def test_select_best_keeps_the_epoch_with_the_best_validation_auc(tmp_path):
    from vfcross.fusion.task import load_fusion
    from vfcross.training import BEST, best_epoch, read_log

    emb = _embeddings()
    cfg = FusionConfig(dim=32, batch_size=16,
                       loop=LoopConfig(epochs=5, lr=3e-3, lr_decay=1.0, seed=0, select_best="val_auc"))
    history = train(FusionTask(emb, cfg), cfg.loop, tmp_path, progress=False)
    chosen = best_epoch(history, "val_auc")
    assert chosen == 1 + int(np.argmax([r["val_auc"] for r in history]))
    assert torch.load(tmp_path / BEST, weights_only=False)["epoch"] == chosen
    # the loaded model is the chosen epoch's: its validation AUC is the logged best, not the last
    val = (emb.table.split == "val").to_numpy()
    model = load_fusion(tmp_path, cfg)
    auc = all_pairs_auc(project(model, emb.vectors[val], emb.table[val]), emb.table[val])
    assert auc == pytest.approx(read_log(tmp_path)[chosen - 1]["val_auc"], abs=1e-6)
    # training afresh forgets an earlier run's selection
    train(FusionTask(emb, FusionConfig(dim=32, batch_size=16, loop=LoopConfig(epochs=1))),
          LoopConfig(epochs=1), tmp_path, resume=False, progress=False)
    assert not (tmp_path / BEST).exists()


def test_best_epoch_prefers_the_first_of_ties_and_ignores_unvalidated_epochs():
    from vfcross.training import best_epoch

    history = [{"epoch": 1}, {"epoch": 2, "val_auc": 0.7}, {"epoch": 3}, {"epoch": 4, "val_auc": 0.7}]
    assert best_epoch(history, "val_auc") == 2
    assert best_epoch([{"epoch": 1}], "val_auc") is None


def test_every_variant_is_trained_per_seed_on_that_seeds_backbone_and_reused(tmp_path):
    """Notebook 05's loop (workflows.compare.train_variants): variant x seed, fusion seed s on backbone seed s."""
    import json

    from vfcross import config as C
    from vfcross.fusion.task import fusion_run
    from vfcross.training import CHECKPOINT, TRAINED_FROM
    from vfcross.workflows.compare import train_variants

    cfg = C.override(C.preset("smoke"), {"work_dir": str(tmp_path), "fusion.seeds": [0, 1], "fusion.dim": 8,
                                         "fusion.loop.epochs": 1})
    embeddings = {s: dataclasses.replace(_embeddings(seed=s, per_split=(("train", 6), ("val", 3))),
                                         checkpoint_sha256=str(s) * 64) for s in (0, 1)}
    first = train_variants(cfg, embeddings, "val")
    val_rows = int((embeddings[0].table.split == "val").sum())
    assert list(first) == list(TABLE6_VARIANTS)
    for variant, by_seed in first.items():
        assert sorted(by_seed) == [0, 1] and all(v.shape == (val_rows, 8) for v in by_seed.values())
        for seed in (0, 1):
            record = json.loads((fusion_run(cfg, variant, seed) / TRAINED_FROM).read_text())
            assert record["data"]["backbone_checkpoint_sha256"] == str(seed) * 64
    assert not np.allclose(first[C.FULL_MODEL][0], first[C.FULL_MODEL][1])
    checkpoints = sorted(tmp_path.rglob(CHECKPOINT))
    written = [p.stat().st_mtime_ns for p in checkpoints]
    again = train_variants(cfg, embeddings, "val")  # the trained runs are reused, not trained anew
    assert len(checkpoints) == 2 * len(TABLE6_VARIANTS) and [p.stat().st_mtime_ns for p in checkpoints] == written
    assert all(np.array_equal(first[v][s], again[v][s]) for v in first for s in (0, 1))
