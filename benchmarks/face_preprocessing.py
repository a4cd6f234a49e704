"""Face preprocessing in one process: the real slice's mixed-size frames, each repeated, into a fresh cache.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/face_preprocessing.py ../shared/data/voxceleb1-mini [--repeat 3]

Copies every ``unzippedFaces`` frame ``--repeat`` times (distinct files, so each is detected), runs
``vfcross.preprocess.preprocess`` on them with ``preprocess.workers = 1`` and the ``--preset``'s face settings,
and prints one JSON line: faces, wall and CPU seconds, faces per wall second. Only public calls are used, so the
same script times an older checkout (``PYTHONPATH=<old checkout>``); docs/preprocessing.md has the comparison.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from vfcross.config import override, parse_setting, preset
from vfcross.preprocess import preprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a dataset in the VoxCeleb1 layout (its unzippedFaces are used)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting, as `vfcross --set`")
    args = parser.parse_args()
    changes = {key: parse_setting(key, value) for key, value in (item.split("=", 1) for item in args.set)}
    frames = sorted(args.root.glob("unzippedFaces/*/1.6/*/*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for copy in range(args.repeat):
            for k, frame in enumerate(frames):
                path = Path(tmp, "frames", f"{copy}_{k}.jpg")
                path.parent.mkdir(exist_ok=True)
                shutil.copyfile(frame, path)
                rows.append({"identity": frame.parts[-4], "modality": "face", "path": str(path), "relpath": path.name,
                             "video": frame.parts[-2], "split": "train"})
        cfg = override(preset(args.preset), {"work_dir": str(Path(tmp, "work")), "preprocess.workers": 1, **changes})
        wall, cpu = time.perf_counter(), time.process_time()
        result = preprocess(pd.DataFrame(rows), cfg, progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = int(result.report["outcome"].isin(["processed", "cached"]).sum())
    print(json.dumps({"faces": len(rows), "usable": done, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                      "faces_per_s": round(len(rows) / wall, 1)}))


if __name__ == "__main__":
    main()
