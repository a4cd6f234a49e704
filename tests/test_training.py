"""The one training loop: batches, determinism, interrupted-then-resumed runs, torchrun."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from fakes import fake_preprocessed

from vfcross import config as C
from vfcross import training
from vfcross.backbone.embedding import all_pairs_auc, embed_rows, extract_embeddings
from vfcross.backbone.objective import backbone_from_state, load_backbone
from vfcross.backbone.sampler import pk_batches, utterance_crops
from vfcross.backbone.task import BackboneTask
from vfcross.config import BackboneConfig, LoopConfig
from vfcross.data.manifest import read_manifest, write_manifest
from vfcross.training import (
    RunMismatchError,
    make_optimizer,
    objective_state,
    _seed_epoch,
    read_log,
    record_run_config,
    train,
    whole_steps,
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
    real_inputs = interrupted.inputs

    def failing_inputs(batch, dev):
        calls["n"] += 1
        if calls["n"] == 2 * (epochs - 1) + 1:  # the first batch of the last epoch (2 batches an epoch)
            raise KeyboardInterrupt("simulated interruption")
        return real_inputs(batch, dev)

    interrupted.inputs = failing_inputs
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
    """Per-epoch mean loss of ``world`` processes as :func:`whole_steps` documents them, in one process.

    Each step averages the gradients of ``world`` consecutive batches of the
    epoch's order, as DDP does across processes; the batches left over are not
    trained on. The centers move after each batch here and once per step there:
    the same, as a step's batches hold different identities.
    """
    optimizer = make_optimizer(list(task.objective.parameters()), loop)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=loop.lr_decay)
    means = []
    for epoch in range(loop.epochs):
        batches = whole_steps(task.batches(epoch, _seed_epoch(loop.seed, epoch)), world)
        task.objective.train()
        losses = []
        for start in range(0, len(batches), world):
            optimizer.zero_grad()
            for batch in batches[start:start + world]:
                loss = task.objective(*task.inputs(batch, torch.device("cpu")))["loss"]
                (loss / world).backward()
                losses.append(float(loss.detach()))
            optimizer.step()
        scheduler.step()
        means.append(float(np.mean(losses)))
    return means


@pytest.mark.slow
def test_torchrun_with_an_odd_batch_count_finishes_with_the_documented_loss_curve(tmp_path):
    table = fake_preprocessed(tmp_path / "data", {"train": 7, "val": 2})
    path = write_manifest(table, tmp_path / "manifest.csv")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vfcross.workflows.cli", "train", "--preset", "smoke", "--manifest", str(path), "--out", str(tmp_path / "run")]
    for key, value in TORCHRUN_SETS.items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _, stderr = proc.communicate(timeout=180)  # it took 70 s on a busy 2-core machine
    except subprocess.TimeoutExpired:
        proc.terminate()  # torchrun stops its workers (each in its own session) on SIGTERM
        proc.communicate(timeout=60)
        pytest.fail("torchrun with 3 batches on 2 processes did not finish in 180 s: a rank hangs in a collective")
    assert proc.returncode == 0, stderr[-3000:]
    history = read_log(tmp_path / "run")
    assert [(r["epoch"], r["processes"]) for r in history] == [(1, 2), (2, 2)]
    assert "val_auc" in history[-1] and (tmp_path / "run" / "config.json").exists()

    cfg = C.override(C.preset("smoke"), TORCHRUN_SETS).backbone
    task = BackboneTask(read_manifest(path), cfg)
    assert len(task.batches(0, _seed_epoch(cfg.loop.seed, 0))) == 3  # odd: one batch left out per epoch
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
