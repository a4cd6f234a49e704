"""The backbone's training objective: network, identity softmax and cross-modal center loss.

:func:`build_network` picks the single-stream network of the paper or the
dual-stream baseline; :class:`BackboneObjective` wraps it with its losses so
one ``state_dict`` checkpoints everything; :func:`load_backbone` reads a
trained one back; :func:`measure_training_step` measures an architecture's
cost (parameters, step time, peak memory) in a fresh process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vfcross.backbone.dual_stream import DualStream
from vfcross.backbone.inception import EMBEDDING_DIM
from vfcross.backbone.single_stream import SingleStream
from vfcross.config import Architecture, BackboneConfig, RunConfig, choices, override, run_config
from vfcross.losses import CrossModalCenterLoss
from vfcross.training import device, objective_state, stage_settings

ARCHITECTURES: dict[str, type[nn.Module]] = {"single": SingleStream, "dual": DualStream}


def build_network(cfg: BackboneConfig, num_classes: int) -> nn.Module:
    """The backbone network named by ``cfg.architecture``."""
    if cfg.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {cfg.architecture!r}; choose one of {choices(Architecture)}")
    return ARCHITECTURES[cfg.architecture](num_classes, cfg.input_size, cfg.dropout, cfg.spectrogram_input)


class BackboneObjective(nn.Module):
    """Network + identity classifier loss + cross-modal center loss, as one module.

    ``forward`` returns ``loss = CE + center`` and its components. The center
    loss sees the features f (``center_input="features"``, the paper) or
    f / ||f|| (``"normalised"``). In training mode it also moves the identity
    centers towards the batch (the center update of Wen et al.), after the
    loss has been computed with the old ones.
    """

    def __init__(self, cfg: BackboneConfig, num_classes: int) -> None:
        super().__init__()
        self.net = build_network(cfg, num_classes)
        self.center = CrossModalCenterLoss(num_classes, EMBEDDING_DIM, cfg.center_weight, cfg.center_lr,
                                           cfg.center_reduction)
        self.center_input = cfg.center_input

    def forward(self, faces: Tensor, voices: Tensor, face_labels: Tensor,
                voice_labels: Tensor) -> dict[str, Tensor]:
        """Loss components of one batch of faces and voices with their identity labels."""
        face_raw, voice_raw = self.net(faces, voices)
        raw = torch.cat([face_raw, voice_raw])
        labels = torch.cat([face_labels, voice_labels])
        logits = self.net.classifier(raw)
        pulled = raw.float() if self.center_input == "features" else F.normalize(raw.float(), dim=1)
        ce = F.cross_entropy(logits.float(), labels)
        center = self.center(pulled, labels)
        if self.training:
            self.center.update_centers(pulled, labels)
        accuracy = (logits.argmax(1) == labels).float().mean()
        return {"loss": ce + center, "ce": ce.detach(), "center": center.detach(),
                "train_accuracy": accuracy}


def load_backbone(run_dir: str | Path, cfg: BackboneConfig | None = None) -> BackboneObjective:
    """The trained objective (network, classifier, centers) of a run folder, on the CPU.

    Without ``cfg`` the run's own configuration (its ``config.json``) says
    which network it is. Raises :class:`~vfcross.training.RunMismatchError`
    when the run was trained with other settings than that configuration's
    (its loop settings and seed may differ).
    """
    cfg = run_config(run_dir).backbone if cfg is None else cfg
    return backbone_from_state(objective_state(run_dir, stage_settings("backbone", cfg)), cfg)


def backbone_from_state(state: dict[str, Tensor], cfg: BackboneConfig) -> BackboneObjective:
    """A backbone objective rebuilt from its ``state_dict`` (the class count is read from the centers)."""
    objective = BackboneObjective(cfg, state["center.centers"].shape[0])
    objective.load_state_dict(state)
    return objective


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
    """Parameters, seconds per training step and peak memory of one architecture.

    Runs in a fresh spawned process so that the peak-memory reading belongs to
    this model alone: on CUDA ``max_memory_allocated``; on CPU (Linux) the
    kernel's resident-memory high-water mark, reset just before the model is
    built, minus the resident size at that moment. Steps use random inputs of
    the configured batch shape (P x K faces and as many voice crops); the
    first step is a warm-up and not timed.
    """
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure_in_process, (cfg, num_classes, steps, freq_bins))


def _measure_in_process(cfg: BackboneConfig, num_classes: int, steps: int, freq_bins: int) -> dict[str, float]:
    """The body of :func:`measure_training_step` (runs in the child process)."""
    import time

    torch.manual_seed(0)
    dev = device()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident size
    rss_before = _proc_status_kb("VmRSS")
    objective = BackboneObjective(cfg, num_classes).to(dev).train()
    optimizer = torch.optim.Adam(objective.parameters(), lr=1e-4)
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
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = (_proc_status_kb("VmHWM") - rss_before) / 1024
    return {"params": sum(p.numel() for p in objective.net.parameters()),
            "step_time_s": float(np.median(times[1:])), "peak_memory_mb": round(peak_mb, 1),
            "batch": 2 * n, "device": dev.type}


def _proc_status_kb(field: str) -> int:
    """A memory field of /proc/self/status (Linux), in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(f"{field} not in /proc/self/status")
