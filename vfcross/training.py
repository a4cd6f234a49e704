"""The one training loop, used by every trained stage and every variant.

A stage is described by a :class:`Task`: an *objective* module (the model
plus its losses and any loss state such as identity centers, so that one
``state_dict`` checkpoints everything), the batches of an epoch, how a batch
becomes the objective's inputs, and a validation. :func:`train` does the rest:

* optimizer and exponential learning-rate decay from :class:`LoopConfig`;
* mixed precision on CUDA;
* determinism: each epoch's batches and torch's RNG are seeded from
  ``(seed, epoch)``, so a run resumed from the last epoch checkpoint repeats
  the interrupted epoch exactly and ends with the uninterrupted run's weights;
* a checkpoint after every epoch, written atomically, and ``resume``;
* a metrics log (``metrics.jsonl``) with each loss component and the task's
  validation numbers per epoch; tqdm progress;
* distributed data parallel under ``torchrun`` (gloo on CPU, nccl on GPU):
  each process takes every ``world_size``-th batch; rank 0 validates and
  writes.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from vfcross.config import LoopConfig, Optimizer, choices
from vfcross.io import atomic_write

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


class Task(Protocol):
    """What :func:`train` needs to know about a stage."""

    #: Returns a dict with a scalar ``"loss"`` and other scalar components.
    objective: nn.Module

    def batches(self, epoch: int, rng: np.random.Generator) -> Sequence[Any]:
        """All batches of one epoch, drawn from ``rng`` only."""

    def inputs(self, batch: Any, device: torch.device) -> tuple[Tensor, ...]:
        """The objective's positional inputs for ``batch``, on ``device``."""

    def validate(self, device: torch.device) -> dict[str, float]:
        """Validation numbers of the current objective (called in eval mode)."""


def device() -> torch.device:
    """CUDA (this process's local GPU under torchrun) when present, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _distributed() -> tuple[int, int]:
    """(rank, world size), joining the process group that torchrun describes."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _optimizer(params: list[nn.Parameter], cfg: LoopConfig) -> torch.optim.Optimizer:
    """The optimizer named in ``cfg``."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose one of {choices(Optimizer)}")


def _seed_epoch(seed: int, epoch: int) -> np.random.Generator:
    """Seed torch for this epoch and return its batch-drawing generator."""
    torch.manual_seed(seed * 1_000_003 + epoch)
    return np.random.default_rng([seed, epoch])


def _write_log(history: list[dict], path: Path) -> None:
    """Rewrite the JSONL metrics log atomically from the complete history."""
    text = "".join(json.dumps(r) + "\n" for r in history)
    atomic_write(path, lambda stream: stream.write(text.encode()))


def read_log(out_dir: str | Path) -> list[dict]:
    """The per-epoch records of a run's ``metrics.jsonl``."""
    path = Path(out_dir) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def train(task: Task, cfg: LoopConfig, out_dir: str | Path, resume: bool = True,
          progress: bool = True) -> list[dict]:
    """Train ``task.objective`` for ``cfg.epochs`` epochs; return the per-epoch records.

    With ``resume`` and a checkpoint in ``out_dir``, training continues after
    the last completed epoch; a finished run returns its history at once.
    """
    out_dir = Path(out_dir)
    rank, world = _distributed()
    dev = device()
    objective = task.objective.to(dev)
    optimizer = _optimizer([p for p in objective.parameters() if p.requires_grad], cfg)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_decay)
    use_amp = cfg.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict] = []
    ckpt_path = out_dir / CHECKPOINT
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=dev, weights_only=False)
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        history = state["history"]
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    module = nn.parallel.DistributedDataParallel(objective) if world > 1 else objective
    for epoch in range(len(history), cfg.epochs):
        t0 = time.perf_counter()
        batches = list(task.batches(epoch, _seed_epoch(cfg.seed, epoch)))
        if cfg.max_batches_per_epoch:
            batches = batches[: cfg.max_batches_per_epoch]
        sums = _run_epoch(module, task, batches[rank::world], optimizer, scaler, use_amp, dev,
                          desc=f"epoch {epoch + 1}/{cfg.epochs}", show=progress and rank == 0)
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "processes": world,
                  **{k: v / max(1, sums["batches"]) for k, v in sums.items() if k != "batches"}}
        scheduler.step()
        if rank == 0:
            if (epoch + 1) % cfg.validate_every == 0 or epoch + 1 == cfg.epochs:
                objective.eval()
                with torch.no_grad():
                    record.update(task.validate(dev))
            record["time_s"] = round(time.perf_counter() - t0, 2)
            history.append(record)
            state = {"objective": objective.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                     "history": history, "epoch": epoch + 1}
            atomic_write(ckpt_path, lambda stream: torch.save(state, stream))
            _write_log(history, out_dir / METRICS)
        if world > 1:
            dist.barrier()
    return history


def _run_epoch(module: nn.Module, task: Task, batches: Sequence[Any], optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, use_amp: bool, dev: torch.device, desc: str,
               show: bool) -> dict[str, float]:
    """One pass over ``batches``; returns the summed loss components and the batch count."""
    module.train()
    sums: dict[str, float] = defaultdict(float)
    for batch in tqdm(batches, desc=desc, disable=not show, leave=False):
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_amp):
            parts = module(*task.inputs(batch, dev))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(parts["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        for key, value in parts.items():
            sums[key] += float(value.detach())
        sums["batches"] += 1
    return sums


def objective_state(run_dir: str | Path) -> dict[str, torch.Tensor]:
    """The trained objective's ``state_dict`` from a run's last checkpoint, on the CPU."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint in {run_dir}: train that stage first")
    return torch.load(path, map_location="cpu", weights_only=False)["objective"]
