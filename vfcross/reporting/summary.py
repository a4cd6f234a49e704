"""``reports/summary.json``: each notebook saves its part; the runner merges them with the environment."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

#: Packages whose versions a report records.
PACKAGES = ("vfcross", "torch", "torchvision", "torchaudio", "facenet-pytorch", "numpy", "pandas", "scikit-learn",
            "espeakng-loader", "papermill")


def write_part(reports_dir: str | Path, name: str, data: dict) -> Path:
    """Save one notebook's contribution to ``summary.json`` (``summary_parts/<name>.json``)."""
    path = Path(reports_dir) / "summary_parts" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def merge_summary(reports_dir: Path, timings: dict[str, float], preset: str) -> dict:
    """The machine-readable record of a run: wall times, environment and every notebook's part."""
    summary: dict = {"preset": preset, "wall_time_s": timings, "python": platform.python_version(),
                     "packages": {name: _version(name) for name in PACKAGES}}
    for part in sorted((reports_dir / "summary_parts").glob("*.json")):
        summary.update(json.loads(part.read_text()))
    return summary


def _version(package: str) -> str:
    """Installed version of ``package`` or "not installed"."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
