"""The one training loop: batches, determinism, interrupted-then-resumed runs, torchrun."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from fakes import fake_preprocessed

from vfcross import config as C
from vfcross import training
from vfcross.backbone.embedding import all_pairs_auc, embed_rows, extract_embeddings
from vfcross.backbone.objective import backbone_from_state
from vfcross.backbone.sampler import (
    fit_frames,
    load_faces,
    load_voice_crops,
    pk_batches,
    subset_mask,
    utterance_crops,
    voice_pass_batches,
)
from vfcross.backbone.task import BackboneTask
from vfcross.config import BackboneConfig, LoopConfig
from vfcross.data.manifest import write_manifest
from vfcross.training import (
    RunMismatchError,
    make_optimizer,
    objective_state,
    _seed_epoch,
    loader,
    planned_schedules,
    rank_share,
    read_log,
    record_run_config,
    schedule,
    train,
)


def _cfg(**loop) -> BackboneConfig:
    return BackboneConfig(input_size=75, voice_crop_frames=50, identities_per_batch=2, samples_per_identity=2,
                          holdout_fraction=0.34, dropout=0.2,
                          loop=LoopConfig(**{"epochs": 2, "lr": 1e-3, "seed": 1, **loop}))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return fake_preprocessed(tmp_path_factory.mktemp("data"), {"train": 4, "val": 2})


def _weights(task: BackboneTask) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in task.objective.state_dict().items()}


def test_pk_batches_hold_both_modalities_of_every_identity(manifest):
    table = manifest[manifest.split == "train"].reset_index(drop=True)
    table = table.assign(label=table.identity.str[-1].astype(int))
    batches = pk_batches(table, 3, 2, np.random.default_rng(0))
    assert sum(len(set(b.face_labels)) for b in batches) == 4  # each identity once per epoch
    for b in batches:
        assert (table.modality.to_numpy()[b.face_rows] == "face").all()
        assert (table.modality.to_numpy()[b.voice_rows] == "voice").all()
        np.testing.assert_array_equal(table.label.to_numpy()[b.face_rows], b.face_labels)
        np.testing.assert_array_equal(sorted(set(b.face_labels)), sorted(set(b.voice_labels)))
        assert len(b.face_rows) == 2 * len(set(b.face_labels))


@pytest.mark.parametrize("workers", [0, 2])
def test_the_loader_gives_the_batches_the_sampler_draws_loaded_as_before(manifest, workers):
    """Identity epochs are today's pk_batches (rows, labels, flips, offsets, order), and the DataLoader, with or
    without worker processes, yields each batch's tensors as loading its rows in the training process does."""
    cfg = _cfg(workers=workers)
    task = BackboneTask(manifest, cfg)
    batches = task.batches(1, _seed_epoch(cfg.loop.seed, 1))
    expected = pk_batches(task.train_table, 2, 2, _seed_epoch(cfg.loop.seed, 1))
    for field in ("face_rows", "voice_rows", "face_labels", "voice_labels", "flips", "offsets"):
        for got, want in zip(batches, expected, strict=True):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    paths = task.train_table.cache_path.to_numpy()
    before = torch.get_rng_state()
    loaded = list(loader(task.load, batches, workers, torch.device("cpu")))
    assert torch.equal(torch.get_rng_state(), before)  # dropout's random numbers are not touched
    for batch, (faces, voices, face_labels, voice_labels) in zip(batches, loaded, strict=True):
        assert torch.equal(faces, load_faces(list(paths[batch.face_rows]), cfg.input_size, batch.flips))
        assert torch.equal(voices, load_voice_crops(list(paths[batch.voice_rows]), cfg.voice_crop_frames,
                                                    batch.offsets))
        assert face_labels.tolist() == list(batch.face_labels) and voice_labels.tolist() == list(batch.voice_labels)


def _unequal_table(rng, identities=30, most=12):
    """A manifest-like table (label, modality) whose identities hold 1..most voices and 2..2*most faces."""
    rows = [(label, modality) for label in range(identities)
            for modality, n in (("voice", rng.integers(1, most + 1)), ("face", rng.integers(2, 2 * most + 1)))
            for _ in range(n)]
    return pd.DataFrame(rows, columns=["label", "modality"]).sample(frac=1, random_state=0).reset_index(drop=True)


@pytest.mark.parametrize("p, k", [(4, 1), (5, 2), (45, 1)])
def test_a_voice_epoch_shows_every_training_voice_once(p, k):
    rng = np.random.default_rng(p)
    table = _unequal_table(rng)
    modality, label = table.modality.to_numpy(), table.label.to_numpy()
    batches = voice_pass_batches(table, p, k, np.random.default_rng(0))
    voices = np.concatenate([b.voice_rows for b in batches])
    shown = pd.Series(voices).value_counts()
    for identity, group in table[modality == "voice"].groupby("label"):
        n, seen = len(group), shown.reindex(group.index, fill_value=0)  # every voice once, the last group of K
        assert seen.min() >= 1 and seen.sum() == -(-n // k) * k and seen.max() - seen.min() <= 1  # topped up
    for b in batches:
        assert (modality[b.voice_rows] == "voice").all() and (modality[b.face_rows] == "face").all()
        np.testing.assert_array_equal(label[b.voice_rows], b.voice_labels)
        np.testing.assert_array_equal(label[b.face_rows], b.face_labels)
        assert len(set(b.voice_labels)) <= p and len(b.flips) == len(b.face_rows) == len(b.offsets)
    # faces: distinct within an epoch while an identity has enough of them
    faces = np.concatenate([b.face_rows for b in batches])
    for identity in range(30):
        own = faces[label[faces] == identity]
        assert len(set(own)) == min(len(own), int(((label == identity) & (modality == "face")).sum()))
    # the identities run out together: only the last few batches hold fewer than P
    assert sum(len(set(b.voice_labels)) < p for b in batches) <= max(3, p // 2)
    again = voice_pass_batches(table, p, k, np.random.default_rng(0))
    assert all(np.array_equal(a.voice_rows, b.voice_rows) and np.array_equal(a.offsets, b.offsets)
               for a, b in zip(batches, again, strict=True))


def test_an_identity_left_alone_joins_the_last_batches():
    table = pd.DataFrame({"label": [0] * 2 + [1] * 12 + [0, 1], "modality": ["voice"] * 14 + ["face"] * 2})
    batches = voice_pass_batches(table, 2, 1, np.random.default_rng(0))
    voices = np.concatenate([b.voice_rows for b in batches])
    assert sorted(voices) == list(range(14))  # nothing dropped: identity 1's voices beyond its pairs join batches


def test_the_validation_subset_is_fixed_and_bounded():
    table = pd.DataFrame({"identity": np.repeat(["a", "b", "c"], 10), "modality": np.tile(["voice", "face"], 15)})
    assert subset_mask(table, 0, 0).all()
    keep = subset_mask(table, 2, 3)
    counts = table[keep].groupby(["identity", "modality"]).size()
    assert (counts.xs("voice", level=1) == 2).all() and (counts.xs("face", level=1) == 3).all()
    np.testing.assert_array_equal(keep, subset_mask(table, 2, 3))
    assert subset_mask(table, 9, 1)[table.modality.to_numpy() == "voice"].all()  # fewer than asked: all


def test_rank_shares_are_torchs_distributed_sampler_shares():
    from torch.utils.data.distributed import DistributedSampler

    for n in (1, 3, 7, 8, 9):
        for world in (1, 2, 3, 8):
            batches = list(range(n))
            for rank in range(world):
                sampler = DistributedSampler(batches, num_replicas=world, rank=rank, shuffle=False)
                assert rank_share(batches, world, rank) == list(sampler)
            assert set().union(*(rank_share(batches, world, r) for r in range(world))) == set(batches)


@pytest.mark.parametrize("epoch, p, k", [("identities", 2, 2), ("identities", 3, 1), ("voices", 2, 1),
                                         ("voices", 3, 2)])
def test_the_planned_schedule_is_the_runs(tmp_path, epoch, p, k):
    table = fake_preprocessed(tmp_path, {"train": 7, "val": 2}, n_face=5, n_voice=4)
    cfg = C.override(C.preset("smoke"), {"backbone.epoch": epoch, "backbone.identities_per_batch": p,
                                         "backbone.samples_per_identity": k, "backbone.loop.max_batches_per_epoch": 0,
                                         "backbone.holdout_fraction": 0.3, "backbone.loop.epochs": 3})
    task = BackboneTask(table, cfg.backbone)
    train_rows = table[table.split == "train"]
    counts = {"train": {"identities": 7, "voices": int((train_rows.modality == "voice").sum()),
                        "faces": int((train_rows.modality == "face").sum())}}
    for world in (1, 2):
        planned = planned_schedules(cfg, counts, world)["backbone"]
        actual = schedule(task, task.batches(0, _seed_epoch(0, 0)), 3, world)
        slack = 0 if epoch == "identities" else 2  # the voice pass's last batches hold fewer (or more) identities
        assert planned["epoch"] == epoch and actual["passes"] == planned["passes"]
        assert abs(actual["steps_per_epoch"] - planned["steps_per_epoch"]) <= slack
        # padding for 2 processes repeats a batch of the epoch's, the plan counts one of their mean size
        assert actual["images"] == pytest.approx(planned["images"], rel=0 if world == 1 and not slack else 0.1)
        if world == 1 and not slack:
            assert {key: actual[key] for key in actual} == {key: planned[key] for key in actual}
    voices = task.train_table[task.train_table.modality == "voice"].groupby("identity").size()
    shown = (-(-voices // k) * k).sum() if epoch == "voices" else 7 * k  # a voice pass tops up each last K
    assert planned_schedules(cfg, counts)["backbone"]["passes"]["voice"] == round(3 * shown / voices.sum(), 2)


def test_the_paper_preset_sees_voxceleb1s_training_set_ten_times_or_more():
    counts = {"train": {"identities": 901, "voices": 110_500, "faces": 936_000}}  # ~ 153,516 and 1.3 M x 901 / 1,251
    plans = planned_schedules(C.preset("paper"), counts)
    assert plans["backbone"]["passes"]["voice"] >= 10 and plans["fusion"]["passes"]["face"] >= 10
    assert plans["backbone"]["images_per_step"] == pytest.approx(90, abs=0.1)  # 45 identities x (1 face + 1 voice)
    default = planned_schedules(C.preset("default"), {"train": {"identities": 216, "voices": 1296, "faces": 1944}})
    assert default["backbone"]["steps_per_epoch"] == 9  # the identity pass: ceil(216 / 24)


@pytest.fixture(scope="module")
def trained(manifest, tmp_path_factory):
    """One epoch of training, shared by the tests that only read its results."""
    out = tmp_path_factory.mktemp("run")
    task = BackboneTask(manifest, _cfg(epochs=1))
    return task, train(task, task.cfg.loop, out, progress=False), out


def test_training_logs_every_component_and_validation(trained):
    task, history, out = trained
    record = history[0]
    for key in ("loss", "ce", "center", "train_accuracy", "val_face_id_accuracy", "val_voice_id_accuracy",
                "val_auc", "lr", "time_s"):
        assert key in record and np.isfinite(record[key]), key
    assert record["loss"] == pytest.approx(record["ce"] + record["center"], rel=1e-5)
    assert read_log(out) == history
    saved = json.loads((out / "trained_from.json").read_text())  # 4 training identities, 2 a batch, 2 each
    assert saved["schedule"] == {"steps_per_epoch": 2, "processes": 1, "images_per_step": 8.0, "epochs": 1,
                                 "images": 16, "passes": {"face": 1.0, "voice": 1.0}}
    assert {k: saved["validation"][k] for k in ("voices", "faces", "identities")} == {"voices": 6, "faces": 6,
                                                                                      "identities": 2}
    # The centers moved away from their zero initialisation during training.
    assert task.objective.center.centers.abs().sum() > 0


AVERAGED = {"average_epochs": 3, "lr_schedule": "cosine", "lr_min": 1e-5}  # averaging from epoch 2 of 4


@pytest.mark.parametrize("epochs, validate_every, saved, levers", [
    (2, 1, 1, {}), (4, 2, 2, {}),  # epoch 3 is not validated
    (4, 2, 2, AVERAGED),  # the average (SWA: its step count matters) and the cosine schedule are resumed too
])
def test_resume_after_interrupted_epoch_reproduces_uninterrupted_run(manifest, tmp_path, epochs, validate_every,
                                                                    saved, levers):
    """Killed in the last epoch, a run resumes from its last validated epoch (where its state is written)."""
    full = BackboneTask(manifest, _cfg(epochs=epochs, validate_every=validate_every, **levers))
    train(full, full.cfg.loop, tmp_path / "full", progress=False)

    interrupted = BackboneTask(manifest, _cfg(epochs=epochs, validate_every=validate_every, **levers))
    calls = {"n": 0}
    real_load = interrupted.load

    def failing_load(batch):
        calls["n"] += 1
        if calls["n"] == 2 * (epochs - 1) + 1:  # the first batch of the last epoch (2 batches an epoch)
            raise KeyboardInterrupt("simulated interruption")
        return real_load(batch)

    interrupted.load = failing_load
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, interrupted.cfg.loop, tmp_path / "resumed", progress=False)
    assert len(read_log(tmp_path / "resumed")) == saved
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["epoch"] == saved

    resumed = BackboneTask(manifest, _cfg(epochs=epochs, validate_every=validate_every, **levers))  # a new process
    history = train(resumed, resumed.cfg.loop, tmp_path / "resumed", progress=False)
    assert [r["epoch"] for r in history] == list(range(1, epochs + 1))
    wf, wr = _weights(full), _weights(resumed)
    assert all(torch.equal(wf[k], wr[k]) for k in wf), "resumed weights differ from the uninterrupted run"
    kf, kr = (objective_state(tmp_path / name) for name in ("full", "resumed"))  # the model handed on
    assert all(torch.equal(kf[k], kr[k]) for k in kf)
    assert any(not torch.equal(kf[k], wf[k]) for k in kf) == bool(levers)  # the average where there is one
    # A finished run resumes to nothing new.
    assert train(resumed, resumed.cfg.loop, tmp_path / "resumed", progress=False) == history


@pytest.mark.parametrize("decay", [0.0, 0.6])
def test_the_weight_average_of_the_last_epochs_is_the_model_validated_and_kept(manifest, tmp_path, monkeypatch, decay):
    """SWA: the plain mean of the weights and buffers after each step of the last 2 of 3 epochs; EMA: ``decay``
    per step. The cosine schedule's last epoch runs at lr_min, and the total epochs become part of the record."""
    cfg = _cfg(epochs=3, average_epochs=2, average_decay=decay, lr_schedule="cosine", lr_min=1e-4)
    task = BackboneTask(manifest, cfg)
    snapshots, real = [], training.make_optimizer

    def recording(params, loop):  # the objective's state after every optimizer step, written out by hand
        optimizer = real(params, loop)
        optimizer.register_step_post_hook(lambda *_: snapshots.append(_weights(task)))
        return optimizer

    monkeypatch.setattr(training, "make_optimizer", recording)
    history = train(task, cfg.loop, tmp_path, progress=False)
    assert len(snapshots) == 6 and history[-1]["lr"] == pytest.approx(1e-4) and history[0]["lr"] == 1e-3
    kept = objective_state(tmp_path)
    for key, value in kept.items():
        if not value.is_floating_point():
            continue
        steps = [s[key].double() for s in snapshots[2:]]  # epochs 2 and 3, 2 steps each
        expected = sum(steps) / len(steps) if not decay else steps[0]
        for step in steps[1:] if decay else []:
            expected = decay * expected + (1 - decay) * step
        torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-6, msg=key)
    net = backbone_from_state(kept, cfg).net
    validated = all_pairs_auc(embed_rows(net, task.val_table, cfg, torch.device("cpu"), progress=False), task.val_table)
    assert history[-1]["val_auc"] == pytest.approx(validated)
    longer = BackboneTask(manifest, dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, epochs=4)))
    with pytest.raises(RunMismatchError, match=r"backbone\.loop\.epochs: 3 -> 4"):
        train(longer, longer.cfg.loop, tmp_path, progress=False)


def test_extracted_embeddings_are_cached_with_their_checkpoint(manifest, trained, tmp_path):
    task, _, run = trained
    emb = extract_embeddings(run, manifest, task.cfg, tmp_path / "emb", progress=False)
    assert emb.vectors.shape == (len(manifest), 512)
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, rtol=1e-5)
    assert emb.checkpoint.endswith("checkpoint.pt") and len(emb.checkpoint_sha256) == 64
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "emb").glob("*.json")]
    assert record["sha256"] == emb.checkpoint_sha256
    again = extract_embeddings(run, manifest, task.cfg, tmp_path / "emb", progress=False)
    np.testing.assert_array_equal(again.vectors, emb.vectors)


def test_voice_embedding_is_the_mean_of_its_crops_whatever_the_batch(manifest, trained):
    import dataclasses

    task, _, _ = trained
    net = task.objective.net
    voices = manifest[manifest.modality == "voice"].reset_index(drop=True)
    exact = dataclasses.replace(task.cfg, loop=dataclasses.replace(task.cfg.loop, amp=False))  # float32: exact pooling
    together = embed_rows(net, voices, exact, torch.device("cpu"), batch_size=8, progress=False)
    path = voices.cache_path.iloc[5]
    with torch.no_grad():
        crops = torch.nn.functional.normalize(net.embed(utterance_crops(path, task.cfg.voice_crop_frames), "voice"))
    alone = torch.nn.functional.normalize(crops.mean(0), dim=0).numpy()
    np.testing.assert_allclose(together[5], alone, atol=1e-5)
    # in the training's mixed precision (bfloat16 on CPUs that have it) the same embedding within rounding
    mixed = embed_rows(net, voices, task.cfg, torch.device("cpu"), batch_size=8, progress=False)
    assert float(mixed[5] @ alone) > 1 - 1e-3


def _embedded_as_before(net, rows, cfg, chunk):
    """embed_rows as it was before the DataLoader: faces in chunks, the crops of consecutive utterances in chunks."""
    from vfcross.backbone.embedding import _pooled, embed_face_batch
    from vfcross.backbone.sampler import utterance_offsets
    from vfcross.preprocess import load_spectrogram

    dev, out = torch.device("cpu"), np.zeros((len(rows), 512), dtype=np.float32)
    paths, faces = rows.cache_path.to_numpy(), np.flatnonzero(rows.modality.to_numpy() == "face")
    for start in range(0, len(faces), chunk):
        idx = faces[start:start + chunk]
        out[idx] = embed_face_batch(net, load_faces(list(paths[idx]), cfg.input_size), dev, True, cfg.loop.amp)
    voices = np.flatnonzero(rows.modality.to_numpy() == "voice")

    def chunks():
        owners, crops = [], []
        for position, spec in enumerate(load_spectrogram(paths[i]) for i in voices):
            for offset in utterance_offsets(spec.shape[1], cfg.voice_crop_frames):
                owners.append(position)
                crops.append(fit_frames(spec, cfg.voice_crop_frames, offset))
                if len(crops) == chunk:
                    yield np.asarray(owners), torch.from_numpy(np.stack(crops)).unsqueeze(1)
                    owners, crops = [], []
        if crops:
            yield np.asarray(owners), torch.from_numpy(np.stack(crops)).unsqueeze(1)

    out[voices] = _pooled(net, chunks(), len(voices), dev, True, amp=cfg.loop.amp)
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_embedding_through_the_loader_gives_the_vectors_of_before(manifest, trained, workers):
    task, _, _ = trained
    net = task.objective.net.eval()
    cfg = dataclasses.replace(task.cfg, loop=dataclasses.replace(task.cfg.loop, workers=workers))
    rows = manifest.sample(n=14, random_state=1).reset_index(drop=True)  # faces and voices interleaved
    with torch.no_grad():
        expected = _embedded_as_before(net, rows, cfg, chunk=5)  # chunks that cut utterances' crops apart
    np.testing.assert_array_equal(embed_rows(net, rows, cfg, torch.device("cpu"), batch_size=5, progress=False),
                                  expected)


def test_the_backbone_validates_on_its_subset(manifest):
    task = BackboneTask(manifest, _cfg(val_voices=1, val_faces=2))
    for name, identities in (("heldout", 4), ("val", 2)):
        counts = task.validated[name].groupby(["identity", "modality"]).size().unstack()
        assert len(counts) == identities and (counts["voice"] == 1).all() and (counts["face"] <= 2).all()
    assert task.validation["voices"] == 2 and task.validation["heldout"]["identities"] == 4


def test_bad_manifest_without_training_identities(manifest):
    with pytest.raises(ValueError, match="no training identities"):
        BackboneTask(manifest[manifest.split == "val"], _cfg())


def test_adam_takes_the_textbook_steps():
    """Two steps of the loop's (fused) Adam against the update written out: m, v, bias correction, eps 1e-8."""
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    optimizer = make_optimizer([weight], LoopConfig(lr=0.1, weight_decay=0.0))
    grads = [torch.tensor([0.3, -4.0, 0.0]), torch.tensor([-0.1, 2.0, 1.0])]
    expected, m, v = torch.tensor([1.0, -2.0, 0.5]), torch.zeros(3), torch.zeros(3)
    for t, g in enumerate(grads, start=1):
        weight.grad = g.clone()
        optimizer.step()
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        expected = expected - 0.1 * (m / (1 - 0.9 ** t)) / ((v / (1 - 0.999 ** t)).sqrt() + 1e-8)
        torch.testing.assert_close(weight.detach(), expected)
    # by hand, first coordinate: step 1 moves by lr (m/v hats 0.3, 0.09); step 2 by 0.1 * (0.017 / 0.19) /
    # sqrt(0.00009991 / 0.001999) = 0.04002
    assert float(weight[0]) == pytest.approx(1.0 - 0.1 - 0.04002, abs=1e-5)


#: Settings of the torchrun test: two identities per batch, so its seven training identities make an odd
#: number of batches (three: the last three identities share one), none cut off by the smoke preset's
#: max_batches_per_epoch; no dropout and float32, so that one process can repeat the run exactly.
TORCHRUN_SETS = {"backbone.input_size": 75, "backbone.voice_crop_frames": 50, "backbone.identities_per_batch": 2,
                 "backbone.holdout_fraction": 0.34, "backbone.dropout": 0.0, "backbone.loop.epochs": 2,
                 "backbone.loop.max_batches_per_epoch": 0, "backbone.loop.amp": False}


def _one_process_losses(task: BackboneTask, loop: LoopConfig, world: int) -> list[float]:
    """Per-epoch mean loss of ``world`` processes as docs/training.md describes them, in one process.

    The epoch's batches padded as :func:`rank_share` pads them; each step averages the gradients of ``world``
    consecutive batches, as DDP does across processes. The centers move after each batch here and once per
    step there: the same, as a step's batches hold different identities.
    """
    optimizer = make_optimizer(list(task.objective.parameters()), loop)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=loop.lr_decay)
    means = []
    for epoch in range(loop.epochs):
        batches = task.batches(epoch, _seed_epoch(loop.seed, epoch))
        padded = [b for step in zip(*(rank_share(batches, world, r) for r in range(world))) for b in step]
        task.objective.train()
        losses = []
        for start in range(0, len(padded), world):
            optimizer.zero_grad()
            for batch in padded[start:start + world]:
                loss = task.objective(*task.load(batch))["loss"]
                (loss / world).backward()
                losses.append(float(loss.detach()))
            optimizer.step()
        scheduler.step()
        means.append(float(np.mean(losses)))
    return means


@pytest.mark.slow
def test_torchrun_shares_every_batch_and_only_rank_0_validates_and_writes(tmp_path):
    table = fake_preprocessed(tmp_path / "data", {"train": 7, "val": 2})
    path = write_manifest(table, tmp_path / "manifest.csv")
    probe = os.path.join(os.path.dirname(__file__), "torchrun_probe.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", probe, str(path),
           str(tmp_path / "run"), json.dumps(TORCHRUN_SETS)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        _, stderr = proc.communicate(timeout=180)  # about 40 s on a quiet 2-core machine
    except subprocess.TimeoutExpired:
        proc.terminate()  # torchrun stops its workers (each in its own session) on SIGTERM
        proc.communicate(timeout=60)
        pytest.fail("torchrun with 3 batches on 2 processes did not finish in 180 s: a rank hangs in a collective")
    assert proc.returncode == 0, stderr[-3000:]
    notes = [[json.loads(line) for line in (tmp_path / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    history = read_log(tmp_path / "run")
    assert [(r["epoch"], r["processes"]) for r in history] == [(1, 2), (2, 2)] and "val_auc" in history[-1]
    assert sum("validated" in n for n in notes[0]) == 2 and not any("validated" in n for n in notes[1])
    assert {n["wrote"] for n in notes[0] if "wrote" in n} >= {"checkpoint.pt", "metrics.jsonl", "trained_from.json"}
    assert not any("wrote" in n for n in notes[1])

    cfg = C.override(C.preset("smoke"), TORCHRUN_SETS).backbone
    task = BackboneTask(table, cfg)
    loaded = [[n["loaded"] for n in rank if "loaded" in n] for rank in notes]
    for epoch in range(2):
        batches = [b.face_rows.tolist() for b in task.batches(epoch, _seed_epoch(cfg.loop.seed, epoch))]
        assert len(batches) == 3  # odd: one process repeats the epoch's first batch
        shares = [rank[2 * epoch:2 * epoch + 2] for rank in loaded]
        assert shares == [[batches[0], batches[2]], [batches[1], batches[0]]]  # every batch trained
    record = json.loads((tmp_path / "run" / "trained_from.json").read_text())["schedule"]
    images = 2 * sum(2 * len(rows) for rows in batches + batches[:1])  # faces and as many voices, 2 epochs
    assert (record["steps_per_epoch"], record["processes"], record["images"]) == (2, 2, images)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: another summation order moves epoch 2 by ~1e-3 through Adam
    try:
        expected = _one_process_losses(task, cfg.loop, world=2)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose([r["loss"] for r in history], expected, rtol=1e-4)


# --- what a run folder was trained from --------------------------------------------------------------

def _copy_run(run, to):
    import shutil

    return shutil.copytree(run, to)


def test_resuming_under_other_settings_is_refused_and_names_the_keys(manifest, trained, tmp_path):
    _, history, run = trained
    run = _copy_run(run, tmp_path / "run")
    changed = BackboneTask(manifest, dataclasses.replace(_cfg(epochs=1), dropout=0.5))
    with pytest.raises(RunMismatchError, match=r"backbone\.dropout: 0\.2 -> 0\.5.*resume=False \(--no-resume"):
        train(changed, changed.cfg.loop, run, progress=False)
    larger = BackboneTask(manifest, dataclasses.replace(_cfg(epochs=1), input_size=80))
    with pytest.raises(RunMismatchError, match=r"backbone\.input_size: 75 -> 80"):
        train(larger, larger.cfg.loop, run, progress=False)
    other_lr = BackboneTask(manifest, _cfg(epochs=1, lr=1e-2))
    with pytest.raises(RunMismatchError, match=r"backbone\.loop\.lr: 0\.001 -> 0\.01"):
        train(other_lr, other_lr.cfg.loop, run, progress=False)
    # Nothing was touched by the refusals.
    assert read_log(run) == history

    # Starting afresh replaces the model and its record.
    fresh = train(changed, changed.cfg.loop, run, resume=False, progress=False)
    assert [r["epoch"] for r in fresh] == [1]
    record = json.loads((run / "trained_from.json").read_text())
    assert record["settings"]["backbone.dropout"] == 0.5 and record["epochs"] == 1


def test_resuming_on_other_data_is_refused(manifest, trained, tmp_path):
    _, _, run = trained
    run = _copy_run(run, tmp_path / "run")
    fewer = manifest.drop(index=manifest.index[manifest.split == "train"][0])
    task = BackboneTask(fewer, _cfg(epochs=1))
    with pytest.raises(RunMismatchError, match=r"data\.rows: 36 -> 35; data\.rows_sha256"):
        train(task, task.cfg.loop, run, progress=False)


def test_what_may_change_on_resume_extending_and_validation_spacing(manifest, trained, tmp_path):
    """And config.json: a reused run keeps the one it trained under; a run extended in the call is rewritten."""
    _, history, run = trained
    run = _copy_run(run, tmp_path / "run")
    first = C.override(C.preset("smoke"), {"backbone.loop.epochs": 1})
    record_run_config(first, run)
    same = BackboneTask(manifest, _cfg(epochs=1, validate_every=3))
    assert train(same, same.cfg.loop, run, progress=False) == history  # finished: returned as it is
    reuse = C.override(first, {"eval.seed": 7, "fusion.loop.epochs": 3})  # neither is in the backbone's fingerprint
    record_run_config(reuse, run)
    assert C.run_config(run) == first
    longer = BackboneTask(manifest, _cfg(epochs=2))
    assert [r["epoch"] for r in train(longer, longer.cfg.loop, run, progress=False)] == [1, 2]
    extended = C.override(reuse, {"backbone.loop.epochs": 2})
    record_run_config(extended, run)
    assert C.run_config(run) == extended
    shorter = BackboneTask(manifest, _cfg(epochs=1))
    with pytest.raises(RunMismatchError, match="it holds 2 trained epochs, more than the 1 asked for"):
        train(shorter, shorter.cfg.loop, run, progress=False)


def load_backbone(run_dir, cfg: BackboneConfig):
    """The trained backbone objective of a run folder, refused unless trained with ``cfg``'s model settings."""
    return backbone_from_state(training.objective_state(run_dir, training.stage_settings("backbone", cfg)), cfg)


def test_a_model_is_only_handed_to_the_configuration_it_was_trained_from(manifest, trained, tmp_path):
    task, _, run = trained
    assert load_backbone(run, task.cfg) is not None
    with pytest.raises(RunMismatchError, match=r"backbone\.dropout: 0\.2 -> 0\.5"):
        load_backbone(run, dataclasses.replace(task.cfg, dropout=0.5))
    with pytest.raises(RunMismatchError, match=r"backbone\.input_size: 75 -> 80"):
        extract_embeddings(run, manifest, dataclasses.replace(task.cfg, input_size=80), tmp_path / "emb",
                           progress=False)
    # How it was trained is not part of what a model is: another seed or more epochs load the same model.
    assert load_backbone(run, _cfg(epochs=3, seed=7)) is not None


def test_a_checkpoint_without_a_record_is_refused(manifest, trained, tmp_path):
    _, _, run = trained
    run = _copy_run(run, tmp_path / "run")
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    del state["fingerprint"]
    torch.save(state, run / "checkpoint.pt")
    task = BackboneTask(manifest, _cfg(epochs=1))
    with pytest.raises(RunMismatchError, match="does not record what it was trained from"):
        train(task, task.cfg.loop, run, progress=False)


def test_stale_temporary_files_of_a_killed_write_are_removed(manifest, trained, tmp_path):
    _, history, run = trained
    run = _copy_run(run, tmp_path / "run")
    stale = run / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    task = BackboneTask(manifest, _cfg(epochs=1))
    assert train(task, task.cfg.loop, run, progress=False) == history
    assert not stale.exists() and not list(run.glob(".*.tmp"))


def test_without_validation_identities_training_runs_and_the_log_says_why(manifest, tmp_path):
    task = BackboneTask(manifest[manifest.split == "train"], _cfg(epochs=1))
    (record,) = train(task, task.cfg.loop, tmp_path / "run", progress=False)
    assert record["note"] == "no validation identities: validation AUC not measured"
    assert "val_auc" not in record and np.isfinite(record["loss"])
    assert read_log(tmp_path / "run")[0]["note"] == record["note"]
