"""VoxCeleb1 at full file count: write a VoxCeleb1-shaped tree, measure ingest and the plan on it, delete it.

    python benchmarks/voxceleb_scale.py --lists ../shared/data/voxceleb1-lists --out docs/voxceleb_scale.json

The tree (``--tree``, default a fresh temporary folder) holds every identity and
name of the official meta table, every file the official lists in ``--lists``
name (verification lists, matching lists, 20k galleries), and as many more as
make ``--utterances`` clips and ``--faces`` frames in all, at least ``--videos``
videos a person: tiny but valid and distinct files (a 0.1 s 16 kHz wav, a 32 px
jpg, each with its own bytes). It is deleted at the end unless ``--keep``.

Measured on the tree: ``vfcross ingest`` and ``vfcross plan --preset paper``
(wall and CPU seconds and peak RSS from ``/usr/bin/time -v``; the plan's counts
against the tree's). Measured on the real slice (``--slice``), each in a
function of its own so it can be re-run alone against a changed API: the plan
(its rates), the cache (bytes per face and per voice, write rate), the training
input through a torch DataLoader with 0, 1 and 2 workers against the preset's
step time, and MTCNN's images/s on mixed-size frames. Last, the projection of
``reproduce --preset paper`` on all of VoxCeleb1. Results go to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections import defaultdict
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from vfcross.data import protocol_files as pf
from vfcross.data.voxceleb import FACE_DIR, FACE_VERSION, WAV_DIR, read_meta

#: VoxCeleb1's size (Nagrani et al. 2017; the brief's face count: about 1,040 frames a person).
UTTERANCES, FACES, VIDEOS_PER_PERSON = 153_516, 1_300_000, 16
WAV_SAMPLES = 1600  # 0.1 s at 16 kHz: 3,244 bytes, one 4 KiB block
_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"))


# ----------------------------------------------------------------------------------------- the tree

def listed_paths(lists: Path, meta) -> set[str]:
    """Root-relative paths of every file the official lists in ``lists`` name."""
    paths: set[str] = set()
    for p in sorted(lists.glob("veriflist_test_*.txt")):
        paths.update(pf.read_verification_list(p, meta).paths.ravel().tolist())
    for p in sorted(lists.glob("matching_*.csv")):
        paths.update(pf.read_matching_list(p, meta).paths.ravel().tolist())
    for name, modality in (("wav_20k.csv", "voice"), ("jpg_20k.csv", "face")):
        if (lists / name).is_file():
            paths.update(pf.read_retrieval_gallery(lists / name, modality, meta).paths.ravel().tolist())
    return paths


def _fill(listed: np.ndarray, total: int) -> np.ndarray:
    """Per-identity counts, each at least its listed count, summing to ``total``, as even as that allows."""
    low, high = 0.0, float(total)
    for _ in range(60):  # water-filling level
        level = (low + high) / 2
        low, high = (level, high) if np.maximum(listed, level).sum() < total else (low, level)
    counts = np.maximum(listed, np.floor(low)).astype(int)
    room = np.flatnonzero(counts >= listed)
    counts[room[: total - counts.sum()]] += 1  # the remainder, one each
    return counts


def tree_layout(meta, listed: set[str], utterances: int, faces: int, videos: int, seed: int = 0) -> list[dict]:
    """Per identity: its ID, name and ``{video: (clip names, frame names)}``, listed files included."""
    rng = np.random.default_rng(seed)
    ids, names = meta["identity"].tolist(), meta["name"].tolist()
    name_to_id = dict(zip(names, ids))
    own = {i: defaultdict(lambda: ([], [])) for i in ids}
    for path in sorted(listed):
        parts = path.split("/")
        if parts[0] == WAV_DIR:
            own[parts[1]][parts[2]][0].append(parts[3])
        else:
            own[name_to_id[parts[1]]][parts[3]][1].append(parts[4])
    n_voice = _fill(np.array([sum(len(c) for c, _ in own[i].values()) for i in ids]), utterances)
    n_face = _fill(np.array([sum(len(f) for _, f in own[i].values()) for i in ids]), faces)
    layout = []
    for k, identity in enumerate(ids):
        table = own[identity]
        while len(table) < videos:
            table["".join(rng.choice(_ALPHABET, 11))]  # a new video, YouTube-id shaped
        order = sorted(table)
        for modality, need, width, step in ((0, n_voice[k], 5, 1), (1, n_face[k], 7, 25)):
            have = sum(len(v[modality]) for v in table.values())
            taken = {v: set(table[v][modality]) for v in order}
            counter = {v: 0 for v in order}
            for j in range(need - have):  # extra files, round robin over the videos
                video = order[j % len(order)]
                while True:
                    counter[video] += 1
                    name = f"{counter[video] * step:0{width}d}.{'jpg' if modality else 'wav'}"
                    if name not in taken[video]:
                        break
                table[video][modality].append(name)
        layout.append({"identity": identity, "name": names[k], "videos": {v: table[v] for v in order}})
    return layout


def _wav_header() -> bytes:
    """The 44-byte header of a mono 16-bit 16 kHz wav of :data:`WAV_SAMPLES` samples."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(bytes(2 * WAV_SAMPLES))
    return buffer.getvalue()[:-2 * WAV_SAMPLES]


def _jpegs(count: int = 64) -> list[bytes]:
    """``count`` small noise jpgs (32 x 32), the bases of the distinct face files."""
    rng = np.random.default_rng(1)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=70)
        out.append(buffer.getvalue())
    return out


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.close(fd)


def _write_identity(args: tuple[str, int, dict]) -> int:
    """Write one identity's files (index ``k`` makes every file's bytes distinct); returns the count."""
    root, k, entry = args
    header, jpegs = _wav_header(), _jpegs()
    noise = np.random.default_rng(k).integers(-2000, 2000, WAV_SAMPLES).astype("<i2")
    written = 0
    for v, (video, (clips, frames)) in enumerate(entry["videos"].items()):
        if clips:
            folder = os.path.join(root, WAV_DIR, entry["identity"], video)
            os.makedirs(folder, exist_ok=True)
            for c, clip in enumerate(clips):
                samples = noise.copy()
                samples[:3] = (k, v, c)  # distinct audio per file
                _write(os.path.join(folder, clip), header + samples.tobytes())
        if frames:
            folder = os.path.join(root, FACE_DIR, entry["name"], FACE_VERSION, video)
            os.makedirs(folder, exist_ok=True)
            for f, frame in enumerate(frames):
                base = jpegs[(k + v + f) % len(jpegs)]
                tag = f"vfcross {k} {v} {f}".encode()  # a JPEG comment segment: distinct bytes, same pixels
                _write(os.path.join(folder, frame), base[:2] + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big")
                       + tag + base[2:])
        written += len(clips) + len(frames)
    return written


def write_tree(root: Path, layout: list[dict], lists: Path, workers: int = 2) -> dict:
    """Write the tree (meta table and identity split copied from ``lists``); returns counts, bytes and seconds."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("vox1_meta.csv", "identity_splits.txt"):
        shutil.copyfile(lists / name, root / name)
    start = time.perf_counter()
    with Pool(workers) as pool:
        files = sum(pool.imap_unordered(_write_identity, [(str(root), k, e) for k, e in enumerate(layout)], 8))
    seconds = time.perf_counter() - start
    du = subprocess.run(["du", "-sk", str(root)], capture_output=True, text=True).stdout.split()[0]
    voices = sum(len(c) for e in layout for c, _ in e["videos"].values())
    return {"files": files, "voices": voices, "faces": files - voices, "identities": len(layout),
            "videos": sum(len(e["videos"]) for e in layout), "disk_gb": int(du) / 2**20,
            "write_seconds": round(seconds, 1), "files_per_s": round(files / seconds)}


def delete_tree(root: Path, workers: int = 8) -> float:
    """Delete the tree, many identity folders at once (one ``rm -rf`` deleted 250 files/s here, 8 processes 9,000)."""
    start = time.perf_counter()
    tops = [d for top in (WAV_DIR, FACE_DIR) if (root / top).is_dir() for d in (root / top).iterdir()]
    with Pool(workers) as pool:
        list(pool.imap_unordered(shutil.rmtree, tops))
    shutil.rmtree(root, ignore_errors=True)
    return time.perf_counter() - start


# --------------------------------------------------------------------------------- measurements

def run_measured(command: list[str]) -> dict:
    """Wall seconds and peak RSS (GB) of a command, from /usr/bin/time -v where it exists."""
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    start = time.perf_counter()
    done = subprocess.run(timer + command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    cpu = [float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", done.stderr)]
    return {"seconds": round(seconds, 1), "cpu_seconds": round(sum(cpu), 1) if cpu else None,
            "peak_rss_gb": round(int(rss[1]) / 2**20, 2) if rss else None, "stdout": done.stdout.strip()[-1500:]}


def vfcross(*args: str) -> list[str]:
    """The ``vfcross`` command of this interpreter's environment, with arguments."""
    return [sys.executable, "-m", "vfcross.workflows.cli", *args]


def measure_ingest(tree: Path, splits: Path, scratch: Path) -> dict:
    """``vfcross ingest`` on the tree: seconds, peak RSS and the manifest's rows."""
    out = scratch / "manifest.csv"
    result = run_measured(vfcross("ingest", "--root", str(tree), "--splits", str(splits), "--out", str(out)))
    with out.open() as handle:
        result["manifest_rows"] = sum(1 for _ in handle) - 1
    result["manifest_mb"] = round(out.stat().st_size / 2**20, 1)
    return result


def tree_counts(layout: list[dict], splits: Path) -> dict:
    """Identities, voices and faces of each split of the tree, counted from its layout."""
    from vfcross.data.voxceleb import read_identity_splits

    split_of, counts = read_identity_splits(splits), {}
    for entry in layout:
        part = counts.setdefault(split_of[entry["name"]], {"identities": 0, "voices": 0, "faces": 0})
        part["identities"] += 1
        part["voices"] += sum(len(c) for c, _ in entry["videos"].values())
        part["faces"] += sum(len(f) for _, f in entry["videos"].values())
    return counts


def measure_plan(tree: Path, lists: Path, scratch: Path, expected: dict | None) -> dict:
    """``vfcross plan --preset paper`` on the tree: seconds, peak RSS, and its counts against the tree's."""
    out = scratch / "plan.json"
    result = run_measured(vfcross("plan", "--preset", "paper", "--root", str(tree), "--splits",
                                  str(lists / "identity_splits.txt"), "--lists", str(lists), "--json", str(out),
                                  "--set", f"work_dir={scratch}", "--force"))
    plan = json.loads(out.read_text())
    result.update(plan=plan, counts_equal_tree=None if expected is None else
                  all(plan["counts"][s] == expected[s] for s in expected))
    return result


def voxceleb1_plan(tree_plan: dict, slice_plan: dict, jpg_bytes: float, lists: Path, gpu_check: Path | None) -> dict:
    """``reproduce --preset paper`` on all of VoxCeleb1: the tree's counts at the real sizes (8.2 s a clip, 16-bit
    16 kHz wav; jpg files of ``jpg_bytes``), at the rates a plan measured on the real slice's frames and clips."""
    from vfcross.config import preset
    from vfcross.workflows.plan import list_rows, project, reference_rates

    cfg, counts, here = preset("paper"), tree_plan["counts"], slice_plan["rates_here"]
    faces, voices = (sum(c[m] for c in counts.values()) for m in ("faces", "voices"))
    data = {"mean_voice_s": 8.2, "source_gb": (voices * (44 + 8.2 * 32_000) + faces * jpg_bytes) / 2**30}
    return project(cfg, counts, data, here, reference_rates(here, gpu_check, cfg), list_rows(lists))


def measure_cache(slice_root: Path, scratch: Path) -> dict:
    """The real slice preprocessed at the paper preset into a fresh cache: bytes per face and voice, write rate."""
    import soundfile as sf

    from vfcross.config import override, preset
    from vfcross.data.voxceleb import read_dataset
    from vfcross.preprocess.run import preprocess

    cfg = override(preset("paper"), {"work_dir": str(scratch / "cache-run"), "preprocess.workers": 1})
    manifest = read_dataset(slice_root)
    start = time.perf_counter()
    done = preprocess(manifest, cfg, progress=False).manifest
    seconds = time.perf_counter() - start
    out = {"samples": len(done), "seconds": round(seconds, 1), "cache": "today's .npy entries"}
    for modality in ("face", "voice"):
        rows = done[done.modality == modality]
        sizes = np.array([os.stat(p).st_size for p in rows.cache_path])
        out[f"bytes_per_{modality}"] = float(sizes.mean())
        out[f"disk_bytes_per_{modality}"] = float(np.mean([os.stat(p).st_blocks * 512 for p in rows.cache_path]))
        out[f"source_bytes_per_{modality}"] = float(np.mean([os.stat(p).st_size for p in rows.path]))
    voices = done[done.modality == "voice"]
    out["bytes_per_voice_second"] = out["bytes_per_voice"] / float(np.mean([sf.info(p).duration for p in voices.path]))
    total = sum(os.stat(p).st_size for p in done.cache_path)
    out.update(write_mb_per_s=total / 2**20 / seconds, entries_per_s=len(done) / seconds)
    out["manifest"] = str(scratch / "cache-manifest.pkl")
    done.to_pickle(out["manifest"])
    return out


class _Batches:
    """Today's training batches (rows of the paper preset's P x (K + K)) as a map-style dataset, one item a batch."""

    def __init__(self, table, cfg, batches: list) -> None:
        self.paths, self.cfg, self.batches = table["cache_path"].to_numpy(), cfg, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        from vfcross.backbone.sampler import load_faces, load_voice_crops

        b = self.batches[i]
        return (load_faces(list(self.paths[b.face_rows]), self.cfg.input_size, b.flips),
                load_voice_crops(list(self.paths[b.voice_rows]), self.cfg.voice_crop_frames, b.offsets))


def loader_for(table, cfg, batches: list, workers: int):
    """The DataLoader that feeds training (today: a DataLoader over today's batches; repoint at merge)."""
    from torch.utils.data import DataLoader

    return DataLoader(_Batches(table, cfg, batches), batch_size=None, shuffle=False, num_workers=workers)


def measure_loader(cache: dict, train_image_s: float | None, batches: int = 60) -> dict:
    """Images/s of the paper preset's training input through a DataLoader with 0, 1 and 2 workers."""
    import pandas as pd

    from vfcross.backbone.sampler import pk_batches
    from vfcross.config import preset

    cfg = preset("paper").backbone
    table = pd.read_pickle(cache["manifest"])
    table = table.assign(label=table["identity"].map({c: i for i, c in enumerate(sorted(table.identity.unique()))}))
    rng = np.random.default_rng(0)
    drawn = []
    while len(drawn) < batches:
        drawn += pk_batches(table, cfg.identities_per_batch, cfg.samples_per_identity, rng)
    images = sum(len(b.face_rows) + len(b.voice_rows) for b in drawn[:batches])
    out = {"batches": batches, "images": images, "images_per_batch": images / batches,
           "step_images_per_s": None if not train_image_s else 1 / train_image_s}
    for workers in (0, 1, 2):
        start = time.perf_counter()
        for _ in loader_for(table, cfg, drawn[:batches], workers):
            pass
        out[f"images_per_s_{workers}_workers"] = images / (time.perf_counter() - start)
    return out


def measure_mtcnn(slice_root: Path, repeat: int = 3) -> dict:
    """MTCNN + alignment images/s in one process on the slice's mixed-size frames, each repeated (today's API)."""
    from vfcross.config import preset
    from vfcross.preprocess.faces import FaceDetector, crop_faces, open_rgb, single_torch_thread

    frames = sorted(slice_root.glob("unzippedFaces/*/1.6/*/*.jpg"))
    images = [open_rgb(p) for p in frames] * repeat
    with single_torch_thread():
        detector = FaceDetector(preset("paper").face, "cpu")
        crop_faces(images[:2], detector)  # warm-up
        start = time.perf_counter()
        crop_faces(images, detector)
        seconds = time.perf_counter() - start
    return {"frames": len(frames), "sizes": len({im.size for im in images}), "images": len(images),
            "seconds": round(seconds, 2), "images_per_s": len(images) / seconds}


def main(argv: list[str] | None = None) -> int:
    """Write the tree, measure ingest and the plan on it, delete it; then the measurements on the real slice."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lists", type=Path, default=Path("../shared/data/voxceleb1-lists"),
                        help="folder of the official lists (with vox1_meta.csv and identity_splits.txt)")
    parser.add_argument("--slice", type=Path, default=Path("../shared/data/voxceleb1-mini"),
                        help="the real slice, for the cache, loader and MTCNN measurements and the rates")
    parser.add_argument("--tree", type=Path, default=None, help="where to write the tree (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the tree afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure an existing --tree instead of writing it")
    parser.add_argument("--utterances", type=int, default=UTTERANCES)
    parser.add_argument("--faces", type=int, default=FACES)
    parser.add_argument("--videos", type=int, default=VIDEOS_PER_PERSON, help="videos a person (at least)")
    parser.add_argument("--workers", type=int, default=2, help="processes writing the tree")
    parser.add_argument("--skip", nargs="*", default=[], choices=["ingest", "plan", "cache", "loader", "mtcnn"])
    parser.add_argument("--gpu-check", type=Path, default=None, help="benchmarks/gpu_check.py's JSON, for the projection")
    parser.add_argument("--out", type=Path, default=Path("voxceleb_scale.json"))
    args = parser.parse_args(argv)

    tree = args.tree or Path(tempfile.mkdtemp(prefix="vfcross-vox1-tree-"))
    free_gb = shutil.disk_usage(tree if tree.exists() else tree.parent).free / 2**30
    record: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                "load_average_at_start": os.getloadavg(), "free_disk_gb_at_start": round(free_gb, 1)}}
    scratch = Path(tempfile.mkdtemp(prefix="vfcross-scale-"))
    meta = read_meta(args.lists / "vox1_meta.csv")
    layout = tree_layout(meta, listed_paths(args.lists, meta), args.utterances, args.faces, args.videos)
    expected = tree_counts(layout, args.lists / "identity_splits.txt")

    def step(name: str, fn, *fn_args):
        if name not in args.skip:
            print(f"{name} ...", file=sys.stderr)
            record[name] = fn(*fn_args)
            print(json.dumps({k: v for k, v in record[name].items() if k != "plan"})[:600], file=sys.stderr)

    try:
        if not args.reuse:
            if free_gb < 12:
                raise SystemExit(f"only {free_gb:.1f} GB free beside {tree}: the tree needs about 6 GB, and room to spare")
            print(f"writing {tree} ...", file=sys.stderr)
            record["tree"] = write_tree(tree, layout, args.lists, args.workers)
            print(json.dumps(record["tree"]), file=sys.stderr)
        step("ingest", measure_ingest, tree, args.lists / "identity_splits.txt", scratch)
        step("plan", measure_plan, tree, args.lists, scratch, expected)
    finally:
        if not args.keep:
            record["delete_seconds"] = round(delete_tree(tree), 1)
    try:
        step("slice_plan", measure_plan, args.slice, args.lists, scratch, None)
        step("cache", measure_cache, args.slice, scratch)
        if "cache" in record:
            step("loader", measure_loader, record["cache"], record.get("slice_plan", {}).get("plan", {})
                 .get("rates_here", {}).get("train_image_s"))
        step("mtcnn", measure_mtcnn, args.slice)
        if "plan" in record and "slice_plan" in record and "cache" in record:
            record["voxceleb1"] = voxceleb1_plan(record["plan"]["plan"], record["slice_plan"]["plan"],
                                                 record["cache"]["source_bytes_per_face"], args.lists, args.gpu_check)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
