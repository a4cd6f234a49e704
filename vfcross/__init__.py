"""vfcross: single-stream voice-face cross-modal learning (Zhong, Bu & Qin 2025), reproducible end to end.

Importing the package is cheap; :func:`load` imports the model code (torch,
MTCNN) only when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vfcross.workflows.inference import VoiceFaceModel

__all__ = ["load"]


def load(path: str | Path, device: str | None = None, backbone: str | Path | None = None) -> VoiceFaceModel:
    """A trained model, ready to embed raw faces and voices: see :func:`vfcross.workflows.inference.load`.

    ``path`` is a model file from ``vfcross export``, a work folder holding
    ``runs/backbone-single`` and ``runs/fusion-full``, or a fusion run folder.
    """
    from vfcross.workflows.inference import load as load_model

    return load_model(path, device, backbone)
