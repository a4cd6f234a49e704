"""What a run's record says about where it ran: package versions, the device, and the arithmetic it trained in."""

from __future__ import annotations

import os
import platform
from importlib import metadata

#: Packages whose versions a report records.
PACKAGES = ("vfcross", "torch", "torchvision", "torchaudio", "facenet-pytorch", "numpy", "pandas", "scikit-learn",
            "espeakng-loader", "papermill")


def trained_in(summary: dict) -> dict[str, str]:
    """The arithmetic each stage's runs trained in, as their records say (notebooks 02 and 03's parts)."""
    runs = {"backbone": [summary.get("backbone_single", {})],
            "fusion": list(summary.get("fusion", {}).get("per_seed", {}).values())}
    found = {stage: ", ".join(sorted({p for r in records for p in r.get("precision", "").split(", ") if p}))
             for stage, records in runs.items()}
    return {stage: precision for stage, precision in found.items() if precision}


def machine(trained: dict[str, str]) -> dict:
    """What the run's times depend on: the device (name; a CUDA card's compute capability), the CPU cores and the
    arithmetic the runs trained in (``amp_precision``: the stages' one precision, else each stage's); wall times
    compare only within one precision path (docs/platforms.md)."""
    import torch

    from vfcross.training import device

    dev = device()
    cuda = dev.type == "cuda"
    both = set(trained.values())
    return {"device": dev.type,
            "device_name": torch.cuda.get_device_name(dev) if cuda else platform.processor() or platform.machine(),
            "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(dev))) if cuda else None,
            "cpu_cores": os.cpu_count(), "trained_in": trained,
            "amp_precision": both.pop() if len(both) == 1 else "; ".join(f"{k} {v}" for k, v in trained.items())
            or "unrecorded"}


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a report records (:data:`PACKAGES`)."""
    return {name: _version(name) for name in PACKAGES}


def _version(package: str) -> str:
    """Installed version of ``package`` or "not installed"."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
