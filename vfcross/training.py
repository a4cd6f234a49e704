"""The one training loop, used by every trained stage and every variant.

A stage is a :class:`Task` (its objective module with losses and loss state, its batches, how a batch becomes
inputs, its validation); :func:`train` adds the optimizer, schedule, weight averaging, mixed precision, a
DataLoader, torchrun, checkpoints and resume. Each epoch is seeded from ``(seed, epoch)``, so a resumed run ends
with the uninterrupted run's weights; a run folder records what it was trained from (:func:`run_fingerprint`)
and resumes, or hands its model on, only under the same record. docs/training.md says how and why.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torch.optim import swa_utils
from tqdm.auto import tqdm

from vfcross.config import LoopConfig, RunConfig, save_config, to_dict
from vfcross.io import atomic_write, remove_stale_temporaries

CHECKPOINT = "checkpoint.pt"
#: The objective at the epoch with the best validation number (``LoopConfig.select_best``).
BEST = "best.pt"
METRICS = "metrics.jsonl"
#: Human-readable copy of the record of what a run was trained from.
TRAINED_FROM = "trained_from.json"
#: Loop settings that do not change the trained weights, so a run may resume (or be extended) under other
#: values; ``epochs`` is recorded under a cosine schedule or weight averaging, which depend on the total.
UNRECORDED_LOOP_FIELDS = ("validate_every", "epochs", "workers")
#: Stage settings that do not change a run's weights either (a run has its own ``loop.seed``).
UNRECORDED_STAGE_FIELDS = ("seeds", "embed_chunk_crops")
#: Settings added to the record later, with the value every run recorded before them was trained with.
ADDED_SETTINGS = {"backbone.center_input": "normalised", "backbone.epoch": "identities",
                  **{f"{stage}.loop.val_{m}": 0 for stage in ("backbone", "fusion") for m in ("voices", "faces")},
                  **{f"{stage}.loop.{key}": value for stage in ("backbone", "fusion") for key, value in
                     (("lr_schedule", "exponential"), ("lr_min", 0.0), ("average_epochs", 0), ("average_decay", 0.0))}}
#: How long the other processes of a torchrun wait for rank 0 to validate and write an epoch.
VALIDATION_WAIT = datetime.timedelta(hours=6)


class RunMismatchError(ValueError):
    """A run folder holds a model trained from other settings or data than asked for."""


class Task(Protocol):
    """What :func:`train` needs to know about a stage."""
    #: Returns a dict with a scalar ``"loss"`` and other scalar components.
    objective: nn.Module
    #: Training samples by modality (``{"face": n, "voice": m}``): what a pass over the training set is.
    samples: dict[str, int]
    #: What validation scores (the subset's settings, counts, identities): kept in ``trained_from.json``.
    validation: dict[str, Any]

    def batches(self, epoch: int, rng: np.random.Generator) -> Sequence[Any]:
        """All batches of one epoch, drawn from ``rng`` only."""

    def load(self, batch: Any) -> tuple[Tensor, ...]:
        """The objective's positional inputs for ``batch``, on the CPU (run in DataLoader workers: picklable)."""

    def shown(self, batch: Any) -> dict[str, int]:
        """How many samples of each modality ``batch`` shows."""

    def validate(self, device: torch.device) -> dict[str, Any]:
        """Validation numbers of the current objective (in eval mode), or a ``"note"`` saying why there are none."""

    def fingerprint(self) -> dict[str, Any]:
        """What the trained weights depend on besides the loop settings (see :func:`task_fingerprint`)."""


def stage_settings(stage: str, cfg: Any) -> dict[str, Any]:
    """A stage's settings that its weights depend on, as dotted keys (``backbone.dropout``), without its loop."""
    data = {k: v for k, v in to_dict(cfg).items() if k != "loop" and k not in UNRECORDED_STAGE_FIELDS}
    return _flatten(data, stage)


def loop_settings(stage: str, cfg: LoopConfig) -> dict[str, Any]:
    """The loop settings that a run's weights depend on, as dotted keys (``backbone.loop.lr``)."""
    total_free = cfg.lr_schedule == "exponential" and not cfg.average_epochs  # see UNRECORDED_LOOP_FIELDS
    free = UNRECORDED_LOOP_FIELDS if total_free else ("validate_every",)
    data = {k: v for k, v in to_dict(cfg).items() if k not in free}
    return _flatten(data, f"{stage}.loop")


def rows_fingerprint(table: Any, columns: Iterable[str]) -> dict[str, Any]:
    """Row count and SHA-256 of the sorted rows of ``table`` over ``columns``, and the identities of each split; a
    ``cache_path`` counts by its entry's name (which hashes settings and source), so a moved work folder keeps it."""
    present = [c for c in columns if c in table.columns]
    rows = table[present].astype(str)
    if "cache_path" in rows:
        rows = rows.assign(cache_path=rows["cache_path"].map(lambda p: Path(p).name))
    lines = sorted("\t".join(row) for row in rows.itertuples(index=False))
    digest = hashlib.sha256("\n".join(["\t".join(present), *lines]).encode()).hexdigest()
    identities = {str(split): sorted(map(str, names.unique())) for split, names in table.groupby("split")["identity"]}
    return {"rows": len(lines), "rows_sha256": digest, "identities": identities}


def task_fingerprint(stage: str, cfg: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a :class:`Task` returns from ``fingerprint()``: stage, settings, data, and the identities beside the
    data (the rows' hash covers them, and a run recorded before them resumes as before)."""
    data = dict(data)
    return {"stage": stage, "settings": stage_settings(stage, cfg), "data": data,
            "identities": data.pop("identities", {})}


def recorded_identities(run_dir: str | Path) -> dict[str, list[str]] | None:
    """The identities a run trained and validated on, by split (its ``trained_from.json``); None if unrecorded."""
    path = Path(run_dir) / TRAINED_FROM
    return json.loads(path.read_text()).get("identities") if path.is_file() else None


def run_fingerprint(task: Task, cfg: LoopConfig) -> dict[str, Any]:
    """The record of what a run is trained from: the task's fingerprint plus the loop settings."""
    found = task.fingerprint()
    return {**found, "settings": {**found["settings"], **loop_settings(found["stage"], cfg)}}


def _flatten(data: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}"
        flat.update(_flatten(value, name) if isinstance(value, Mapping) else {name: value})
    return flat


def _differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every setting or data field that differs between two records."""
    def short(value: Any) -> str:
        text = json.dumps(value)
        return text[:14] + "…" if len(text) > 16 and isinstance(value, str) else text

    old = {**recorded.get("settings", {}), **_flatten(recorded.get("data", {}), "data")}
    new = {**current.get("settings", {}), **_flatten(current.get("data", {}), "data")}
    old = {**{k: v for k, v in ADDED_SETTINGS.items() if k in new}, **old}
    return [f"{key}: {short(old.get(key))} -> {short(new.get(key))}"
            for key in sorted(set(old) | set(new)) if old.get(key, "absent") != new.get(key, "absent")]


def check_record(out_dir: Path, state: Mapping[str, Any], fingerprint: Mapping[str, Any], epochs: int) -> None:
    """Refuse a checkpoint whose record differs from ``fingerprint`` or that holds more than ``epochs`` epochs."""
    recorded = state.get("fingerprint")
    if recorded is None:
        why = "its checkpoint does not record what it was trained from (written by an older vfcross)"
    elif diff := _differences(recorded, fingerprint):
        why = f"it was trained from other settings or data ({'; '.join(diff)})"
    elif len(state["history"]) > epochs:
        why = f"it holds {len(state['history'])} trained epochs, more than the {epochs} asked for"
    else:
        return
    raise RunMismatchError(f"{out_dir}: {why}; to train it afresh, pass resume=False (--no-resume on the "
                           "command line, which replaces the folder's model) or use a new folder")


#: What does not run on a device type, and what is used there instead (see :func:`runs_on`, docs/platforms.md).
FALLBACKS = {("mps", "MTCNN"): "the CPU", ("mps", "mixed precision"): "float32"}
_NOTED: set[tuple[str, str]] = set()


def device() -> torch.device:
    """Where to compute: ``VFCROSS_DEVICE`` (cpu, cuda, cuda:N or mps) when set; else CUDA (this process's
    local GPU under torchrun), then Apple's GPU (MPS), then the CPU."""
    forced = os.environ.get("VFCROSS_DEVICE", "")
    found = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    kind = forced.split(":")[0] or next(name for name, present in found.items() if present)
    if not found.get(kind):
        raise ValueError(f"VFCROSS_DEVICE={forced}: " + (f"torch sees no {kind} device here" if kind in found
                                                         else "choose cpu, cuda, cuda:N or mps"))
    if kind == "cuda":
        return torch.device(forced if ":" in forced else f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device(kind)


def runs_on(dev: torch.device | str, feature: str) -> bool:
    """Whether ``feature`` runs on ``dev``; where it does not (:data:`FALLBACKS`), a one-line note, once
    per process, says what is used instead, and the caller uses that."""
    kind = torch.device(dev).type
    instead = FALLBACKS.get((kind, feature))
    if instead and (kind, feature) not in _NOTED:
        _NOTED.add((kind, feature))
        print(f"note: {feature} does not run on {kind} in vfcross; {instead} is used instead", file=sys.stderr)
    return instead is None


def autocast_dtype(amp: bool, dev: torch.device) -> torch.dtype | None:
    """The mixed-precision type of the training step (None: float32): bfloat16 on CUDA cards of compute capability
    8.0 and up (or ROCm) and CPUs with native bfloat16, float16 on older CUDA cards (docs/platforms.md)."""
    if not amp or not runs_on(dev, "mixed precision"):
        return None
    if dev.type == "cuda":
        native = torch.version.hip or torch.cuda.get_device_capability(dev) >= (8, 0)
        return torch.bfloat16 if native else torch.float16
    return torch.bfloat16 if dev.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported() else None


def dtype_name(dtype: torch.dtype | None) -> str:
    """How a run records an :func:`autocast_dtype`: "bfloat16", "float16" or "float32" (None)."""
    return str(dtype or torch.float32).removeprefix("torch.")


def precision(dev: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``dev`` (see :func:`autocast_dtype`), or nothing for float32 (None)."""
    return torch.autocast(dev.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _distributed() -> tuple[int, int]:
    """(rank, world size), joining the process group that torchrun describes (its GPU made current first)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def loader(load: Any, keys: Sequence[Any], workers: int, dev: torch.device) -> DataLoader:
    """``load(key)`` of every key, in order, by ``workers`` processes (0: this one); pinned for CUDA. Its own
    generator draws nothing from torch's global RNG, so a run's numbers do not depend on ``workers``."""
    return DataLoader(keys, batch_size=None, collate_fn=load, num_workers=workers, pin_memory=dev.type == "cuda",
                      generator=torch.Generator())


def make_optimizer(params: list[nn.Parameter], cfg: LoopConfig) -> torch.optim.Optimizer:
    """Adam or SGD as ``cfg`` names it; Adam is torch's fused one where it runs (the same update, faster)."""
    if cfg.optimizer == "adam":
        fused = runs_on(params[0].device, "fused Adam") if params else True
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: LoopConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch learning-rate schedule named in ``cfg`` (a cosine reaches ``lr_min`` at the last epoch)."""
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg.epochs - 1), eta_min=cfg.lr_min)
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_decay)


class WeightAverage:
    """SWA or EMA of the objective's weights and buffers over the last epochs' steps (off: no-ops); once it holds a
    step, it is the model validated (:meth:`swapped`), checkpointed and kept."""

    def __init__(self, objective: nn.Module, cfg: LoopConfig) -> None:
        self.first = cfg.epochs - cfg.average_epochs
        fn = swa_utils.get_ema_multi_avg_fn(cfg.average_decay) if cfg.average_decay else None
        self.model = (swa_utils.AveragedModel(objective, multi_avg_fn=fn, use_buffers=True)
                      if cfg.average_epochs else None)

    def update(self, objective: nn.Module, epoch: int) -> None:
        """Add the objective's weights after an optimizer step of ``epoch`` (0-based)."""
        if self.model is not None and epoch >= self.first:
            self.model.update_parameters(objective)

    def state(self) -> dict | None:
        """The averaged objective's ``state_dict`` and step count, or None while nothing is averaged."""
        if self.model is None or not int(self.model.n_averaged):
            return None
        return {"objective": self.model.module.state_dict(), "steps": int(self.model.n_averaged)}

    def load(self, state: dict | None) -> None:
        """Resume from :meth:`state`."""
        if state is not None:
            self.model.module.load_state_dict(state["objective"])
            self.model.n_averaged.fill_(state["steps"])

    @contextlib.contextmanager
    def swapped(self, objective: nn.Module):
        """The averaged weights in ``objective`` for the block (validation), its own restored after."""
        state = self.state()
        if state is None:
            yield
            return
        own = {k: v.clone() for k, v in objective.state_dict().items()}
        objective.load_state_dict(state["objective"])
        try:
            yield
        finally:
            objective.load_state_dict(own)


def kept_objective(state: Mapping[str, Any]) -> dict[str, Tensor]:
    """The objective a checkpoint hands on: its weight average where it holds one, else its own weights."""
    return (state.get("average") or state)["objective"]


def _seed_epoch(seed: int, epoch: int) -> np.random.Generator:
    """Seed torch for this epoch and return its batch-drawing generator."""
    torch.manual_seed(seed * 1_000_003 + epoch)
    return np.random.default_rng([seed, epoch])


def read_log(out_dir: str | Path) -> list[dict]:
    """The per-epoch records of a run's ``metrics.jsonl``."""
    path = Path(out_dir) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def train(task: Task, cfg: LoopConfig, out_dir: str | Path, resume: bool = True,
          progress: bool = True) -> list[dict]:
    """Train ``task.objective`` for ``cfg.epochs`` epochs, writing its state after each validated epoch; return the
    per-epoch records. ``resume`` continues a run trained from the same record (else :class:`RunMismatchError`)."""
    out_dir = Path(out_dir)
    rank, world = _distributed()
    dev = device()
    fingerprint = run_fingerprint(task, cfg)
    ckpt_path = out_dir / CHECKPOINT
    state = None
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=dev, weights_only=False)
        check_record(out_dir, state, fingerprint, cfg.epochs)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out_dir, (CHECKPOINT, BEST, METRICS, TRAINED_FROM))
        if not resume:
            for name in (CHECKPOINT, BEST, METRICS, TRAINED_FROM):
                (out_dir / name).unlink(missing_ok=True)
    if world > 1:
        dist.barrier()
    objective = task.objective.to(dev)
    optimizer = make_optimizer([p for p in objective.parameters() if p.requires_grad], cfg)
    scheduler = make_scheduler(optimizer, cfg)
    average = WeightAverage(objective, cfg)
    amp_dtype = autocast_dtype(cfg.amp, dev)
    # float16 needs loss scaling against underflow; bfloat16 has float32's range and does not
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    history: list[dict] = []
    parts = {"objective": objective, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    if state is not None:
        for name, part in parts.items():
            part.load_state_dict(state[name])
        average.load(state.get("average"))
        history = state["history"]
    module = nn.parallel.DistributedDataParallel(objective) if world > 1 else objective
    # the others wait for rank 0's validation and writing here, not in a collective of the training's timeout
    waiting = dist.new_group(backend="gloo", timeout=VALIDATION_WAIT) if world > 1 else None
    plan: dict[str, Any] = {}
    for epoch in range(len(history), cfg.epochs):
        t0 = time.perf_counter()
        batches = list(task.batches(epoch, _seed_epoch(cfg.seed, epoch)))
        if cfg.max_batches_per_epoch:
            batches = batches[: cfg.max_batches_per_epoch]
        if not plan:
            plan = schedule(task, batches, cfg.epochs, world)
            if rank == 0:
                print(describe_schedule(fingerprint["stage"], plan, task.samples), flush=True)
        sums = _run_epoch(module, loader(task.load, rank_share(batches, world, rank), cfg.workers, dev), optimizer,
                          scaler, amp_dtype, dev, desc=f"epoch {epoch + 1}/{cfg.epochs}", show=progress and rank == 0,
                          after_step=lambda: average.update(objective, epoch))
        if world > 1:  # the loss components and batch count, added up over all processes
            total = torch.tensor([sums[k] for k in sorted(sums)], dtype=torch.float64, device=dev)
            dist.all_reduce(total)
            sums = dict(zip(sorted(sums), total.tolist()))
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "processes": world,
                  "precision": dtype_name(amp_dtype),
                  **{k: v / max(1, sums["batches"]) for k, v in sums.items() if k != "batches"}}
        scheduler.step()
        validated = (epoch + 1) % cfg.validate_every == 0 or epoch + 1 == cfg.epochs
        if rank == 0 and validated:
            objective.eval()
            with torch.no_grad(), average.swapped(objective):
                record.update(task.validate(dev))
        if rank == 0:
            record["time_s"] = round(time.perf_counter() - t0, 2)
            history.append(record)
        if rank == 0 and validated:  # the run's state, written where it is validated (see the docstring)
            state = {**{name: part.state_dict() for name, part in parts.items()},
                     "history": history, "epoch": epoch + 1, "fingerprint": fingerprint}
            if average.state() is not None:  # the average, kept and resumed (absent while off)
                state["average"] = average.state()
            atomic_write(ckpt_path, lambda stream: torch.save(state, stream))
            if cfg.select_best and best_epoch(history, cfg.select_best) == epoch + 1:
                best = {"objective": kept_objective(state), "epoch": epoch + 1}
                atomic_write(out_dir / BEST, lambda stream: torch.save(best, stream))
            log = "".join(json.dumps(r) + "\n" for r in history)
            record_text = json.dumps({**fingerprint, "epochs": epoch + 1, "schedule": plan,
                                      "validation": task.validation}, indent=2) + "\n"
            for name, text in ((METRICS, log), (TRAINED_FROM, record_text)):
                atomic_write(out_dir / name, lambda stream, text=text: stream.write(text.encode()))
        if world > 1:
            dist.barrier(group=waiting)
    return history


def record_run_config(cfg: RunConfig, out_dir: str | Path) -> Path:
    """Write a run's ``config.json`` if it trained since the file was written (a reused run keeps its own)."""
    path = Path(out_dir) / "config.json"
    if not path.exists() or path.stat().st_mtime_ns < (Path(out_dir) / CHECKPOINT).stat().st_mtime_ns:
        save_config(cfg, path)
    return path


def rank_share(batches: Sequence[Any], world: int, rank: int) -> list[Any]:
    """Process ``rank``'s batches of an epoch among ``world``, as DistributedSampler shares samples: padded with the
    first batches, so none is left out and every process runs as many steps (none waits for ever in an all-reduce)."""
    padded = [batches[i % len(batches)] for i in range(-(-len(batches) // world) * world)]
    return padded[rank::world]


def schedule(task: Task, batches: Sequence[Any], epochs: int, world: int = 1) -> dict[str, Any]:
    """What a run of ``epochs`` epochs of ``batches`` trains on: steps, images (padding too), passes over the data."""
    steps = -(-len(batches) // world)
    shown = {m: sum(task.shown(b)[m] for b in batches) for m in task.samples}
    images = sum(sum(task.shown(batches[i % len(batches)]).values()) for i in range(steps * world))
    return _plan(steps, world, images, epochs, shown, task.samples)


def _plan(steps: int, world: int, images: float, epochs: int, shown: Mapping[str, float],
          samples: Mapping[str, int]) -> dict[str, Any]:
    """A :func:`schedule` from an epoch's steps, images (all processes) and samples shown of each modality."""
    return {"steps_per_epoch": steps, "processes": world, "images_per_step": round(images / max(1, steps), 2),
            "epochs": epochs, "images": round(epochs * images),
            "passes": {m: round(epochs * shown[m] / max(1, samples[m]), 2) for m in samples}}


def planned_schedules(cfg: RunConfig, counts: Mapping[str, Mapping[str, int]], world: int = 1) -> dict[str, dict]:
    """:func:`schedule` of both stages of ``cfg``, projected from ``counts["train"]`` (identities, voices, faces); a
    voice pass's last batches count as full, so a run's own record may differ by a few steps an epoch."""
    train, b, f = counts["train"], cfg.backbone, cfg.fusion
    ids = int(train["identities"])
    per = {m: train[f"{m}s"] / max(1, ids) for m in ("face", "voice")}
    per = {m: n - min(round(b.holdout_fraction * n), max(0, math.ceil(n) - 1)) for m, n in per.items()}  # kept
    kept = {m: round(ids * n) for m, n in per.items()}
    p, k = b.identities_per_batch, b.samples_per_identity
    if b.epoch == "voices":
        groups = ids * math.ceil(per["voice"] / k)
        batches, shown = math.ceil(groups / p), {m: groups * k for m in kept}
    else:
        batches = (math.ceil(ids / p) - (ids > p and ids % p == 1)) * b.epoch_repeats
        shown = {m: ids * k * b.epoch_repeats for m in kept}
    pairs = int(train["faces"]) + int(train["voices"])
    stages = {"backbone": (b.loop, batches, shown, kept, b.epoch),
              "fusion": (f.loop, math.ceil(pairs / f.batch_size), {m: pairs for m in kept},
                         {"face": int(train["faces"]), "voice": int(train["voices"])}, "pairs")}
    out = {}
    for stage, (loop, full, shown, samples, unit) in stages.items():
        batches = min(full, loop.max_batches_per_epoch or full)
        shown = {m: n * batches / max(1, full) for m, n in shown.items()}
        steps = -(-batches // world)
        images = steps * world * sum(shown.values()) / max(1, batches)
        out[stage] = {"epoch": unit, **_plan(steps, world, images, loop.epochs, shown, samples)}
    return out


def describe_schedule(stage: str, plan: Mapping[str, Any], samples: Mapping[str, int]) -> str:
    """One line saying what a run trains on (:func:`schedule`)."""
    passes = ", ".join(f"{plan['passes'][m]:g} passes over the {samples[m]:,} training {m}s" for m in samples)
    world = f" on {plan['processes']} processes" if plan["processes"] > 1 else ""
    return (f"{stage}: {plan['epochs']} epochs of {plan['steps_per_epoch']:,} steps{world}, "
            f"{plan['images_per_step']:g} images a step: {plan['images']:,} images, {passes}")


def _run_epoch(module: nn.Module, batches: DataLoader, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, amp_dtype: torch.dtype | None, dev: torch.device, desc: str,
               show: bool, after_step: Callable[[], None]) -> dict[str, float]:
    """One pass over the loaded ``batches``; returns the summed loss components and the batch count."""
    module.train()
    sums: dict[str, float] = defaultdict(float)
    for inputs in tqdm(batches, desc=desc, disable=not show, leave=False):
        with precision(dev, amp_dtype):
            parts = module(*(x.to(dev, non_blocking=True) for x in inputs))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(parts["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        after_step()
        for key, value in parts.items():
            sums[key] += float(value.detach())
        sums["batches"] += 1
    return sums


def best_epoch(history: list[dict], metric: str) -> int | None:
    """The epoch (1-based) with the highest ``metric`` in ``history`` (the first on ties); None if never measured."""
    measured = [(record[metric], -record["epoch"]) for record in history if metric in record]
    return -max(measured)[1] if measured else None


def state_path(run_dir: str | Path, last: bool = False) -> Path:
    """The file holding a run's trained objective: ``best.pt`` when validation selected one, else (or with
    ``last``) the last epoch's checkpoint."""
    run_dir = Path(run_dir)
    path = run_dir / BEST if (run_dir / BEST).exists() and not last else run_dir / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint in {run_dir}: train that stage first")
    return path


def objective_state(run_dir: str | Path, expected: Mapping[str, Any] | None = None,
                    last: bool = False) -> dict[str, torch.Tensor]:
    """The trained objective's ``state_dict`` of a run (:func:`state_path`), on the CPU; with ``expected`` stage
    settings the run must have been trained with exactly those (:func:`check_run`)."""
    path = state_path(run_dir, last)
    state = check_run(run_dir, expected) if expected is not None else None
    if state is None or path.name != CHECKPOINT:  # the checked checkpoint is read once, not twice
        state = torch.load(path, map_location="cpu", weights_only=False)
    return kept_objective(state)


def check_run(run_dir: str | Path, expected: Mapping[str, Any]) -> dict[str, Any]:
    """The run's last checkpoint, or :class:`RunMismatchError` unless it was trained with ``expected`` stage settings
    (the model's, not the loop's: runs of one configuration may differ in their seeds)."""
    state = torch.load(state_path(run_dir, last=True), map_location="cpu", weights_only=False)
    recorded = state.get("fingerprint")
    if recorded is None:
        raise RunMismatchError(f"{run_dir}: its checkpoint does not record what it was trained from "
                               "(written by an older vfcross); train it again")
    stage = {k: v for k, v in recorded["settings"].items() if ".loop." not in k}
    diff = _differences({"settings": stage}, {"settings": dict(expected)})
    if diff:
        raise RunMismatchError(f"{run_dir} holds a model trained from other settings than the configuration "
                               f"given ({'; '.join(diff)}): train it again with this configuration, or use "
                               "the configuration it was trained with")
    return state


def history_table(history: list[dict], rows: int = 12):
    """The per-epoch records as a table (at most ``rows`` evenly spaced epochs, the last always kept)."""
    import pandas as pd

    table = pd.DataFrame(history).set_index("epoch")
    return table.iloc[::-1].iloc[::max(1, -(-len(table) // rows))].iloc[::-1].round(4)
