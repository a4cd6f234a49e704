"""vfcross: single-stream voice-face cross-modal learning (Zhong, Bu & Qin 2025), reproducible end to end.

Importing it is cheap: :func:`load` imports the model code only when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vfcross.workflows.inference import VoiceFaceModel

__all__ = ["load"]


def load(path: str | Path, device: str | None = None, backbone: str | Path | None = None) -> VoiceFaceModel:
    """A trained model, ready to embed raw faces and voices (:func:`vfcross.workflows.inference.load`), from an
    exported model file, a work folder or a fusion run folder."""
    from vfcross.workflows.inference import load as load_model

    return load_model(path, device, backbone)
