"""What a backbone architecture costs to train: parameters, seconds per step and peak memory, in a fresh process
(reported beside the AUC by the single- vs dual-stream comparison, notebooks 02 and 05)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vfcross.backbone.objective import BackboneObjective
from vfcross.config import BackboneConfig, RunConfig, override
from vfcross.processes import PeakMemory
from vfcross.training import device, make_optimizer


def measure_costs(cfg: RunConfig, num_classes: int) -> pd.DataFrame:
    """:func:`measure_training_step` of the single- and the dual-stream network with ``cfg``'s batch and inputs."""
    rows = {arch: measure_training_step(override(cfg, {"backbone.architecture": arch}).backbone, num_classes,
                                        freq_bins=cfg.voice.frequency_rows)
            for arch in ("single", "dual")}
    return pd.DataFrame(rows).T


def costs(path: str | Path, cfg: RunConfig, num_classes: int) -> pd.DataFrame:
    """The cost table saved at ``path`` (by notebook 02), or measured now with :func:`measure_costs` and saved there."""
    path = Path(path)
    if path.exists():
        return pd.read_csv(path, index_col=0)
    table = measure_costs(cfg, num_classes)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path)
    return table


def measure_training_step(cfg: BackboneConfig, num_classes: int, steps: int = 3,
                          freq_bins: int = 257) -> dict[str, float]:
    """Parameters, seconds per training step (random inputs of the batch's shape, after a warm-up) and peak memory
    of one architecture, in a fresh process so that the peak is this model's alone (``memory_reading`` names the
    reading: CUDA's allocator peak, MPS's driver allocation, or the resident-memory peak on a CPU)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure_in_process, (cfg, num_classes, steps, freq_bins))


def _measure_in_process(cfg: BackboneConfig, num_classes: int, steps: int, freq_bins: int) -> dict[str, float]:
    """The body of :func:`measure_training_step` (runs in the child process)."""
    torch.manual_seed(0)
    dev = device()
    with PeakMemory() as host:
        objective = BackboneObjective(cfg, num_classes).to(dev).train()
        optimizer = make_optimizer(list(objective.parameters()), cfg.loop)
        n = cfg.identities_per_batch * cfg.samples_per_identity
        labels = torch.arange(n, device=dev) % num_classes
        faces = torch.randn(n, 3, cfg.input_size, cfg.input_size, device=dev)
        voices = torch.randn(n, 1, freq_bins, cfg.voice_crop_frames, device=dev)
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            loss = objective(faces, voices, labels, labels)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if dev.type != "cpu":
                getattr(torch, dev.type).synchronize()
            times.append(time.perf_counter() - t0)
        if dev.type == "mps":
            peak_mb, reading = torch.mps.driver_allocated_memory() / 2**20, "mps driver_allocated_memory"
    if dev.type == "cuda":
        peak_mb, reading = torch.cuda.max_memory_allocated(dev) / 2**20, "cuda max_memory_allocated"
    elif dev.type == "cpu":
        peak_mb, reading = host.mb, host.reading
    return {"params": sum(p.numel() for p in objective.net.parameters()),
            "step_time_s": float(np.median(times[1:])), "peak_memory_mb": round(peak_mb, 1),
            "batch": 2 * n, "device": dev.type, "memory_reading": reading}
