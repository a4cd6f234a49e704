"""VoxCeleb1-sized evaluation on random embeddings: time and peak RSS of every all-pairs score with its identity
bootstrap, and of ``vfcross evaluate --embeddings`` on the official lists (docs/evaluation.md).

Shapes: the validation split of the Learnable-PINs split (100 identities x ~123 voices x ~1,000 faces: 12.3k x
100k = 1.2e9 pairs) and its test split (250 identities: 30.7k x 250k = 7.7e9 pairs), identities and names from the
official meta table; vectors are an identity direction plus noise (about AUC 0.75), d = 128 like the fusion's
u/v. Each measurement runs in its own process (``/usr/bin/time -v`` reads its peak RSS).

    .venv/bin/python benchmarks/evaluation_scale.py --lists ../shared/data/voxceleb1-lists --out docs/evaluation_scale.json
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPLIT_CODES = {"val": "2", "test": "4"}
VOICES, FACES, DIM = 123, 1000, 128


def _vectors(identity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An identity direction plus noise, float32, one row per sample."""
    names, codes = np.unique(identity, return_inverse=True)
    centres = rng.normal(size=(len(names), DIM)).astype(np.float32)
    return centres[codes] + 2.2 * rng.normal(size=(len(codes), DIM)).astype(np.float32)


def split_embeddings(lists: Path, split: str, out: Path, seed: int = 0) -> Path:
    """Random embeddings of one split's identities at VoxCeleb1's density, in the layout ``--embeddings`` reads."""
    meta = {}
    for line in (lists / "vox1_meta.csv").read_text().splitlines()[1:]:
        fields = [f.strip() for f in line.split("\t")]
        meta[fields[1]] = fields[0]
    names = [line.split()[0] for line in (lists / "identity_splits.txt").read_text().splitlines()
             if line.split() and line.split()[1] == SPLIT_CODES[split]]
    relpaths, identity = [], []
    for name in names:
        relpaths += [f"wav/{meta[name]}/v{k // 8:02d}/{k:05d}.wav" for k in range(VOICES)]
        relpaths += [f"unzippedFaces/{name}/1.6/v{k // 65:02d}/{k:07d}.jpg" for k in range(FACES)]
        identity += [name] * (VOICES + FACES)
    np.savez(out, relpath=np.array(relpaths), embedding=_vectors(np.array(identity), np.random.default_rng(seed)))
    return out


def list_embeddings(lists: Path, out: Path, seed: int = 0) -> Path:
    """Random embeddings of every file the official lists name."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from vfcross.evaluation.protocols import read_official_lists

    official = read_official_lists(lists)
    paths = np.concatenate([f.paths.ravel() for f in official.lists.values()])
    identities = np.concatenate([f.identities.ravel() for f in official.lists.values()])
    relpaths, first = np.unique(paths, return_index=True)
    np.savez(out, relpath=relpaths, embedding=_vectors(identities[first], np.random.default_rng(seed)))
    return out


def measured(command: list[str]) -> dict:
    """Wall time and peak RSS of a command in its own process (GNU time)."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_gb": round(rss / 2 ** 20, 2),
            "stdout": done.stdout.strip()[-500:]}


VALIDATION = """
import sys, json, time, numpy as np
from vfcross.backbone.embedding import all_pairs_auc
from vfcross.data.voxceleb import read_meta
from vfcross.evaluation.intervals import identity_draws, percentiles
from vfcross.scores import every_pair
from vfcross.workflows.scoring import read_embeddings
table, vectors = read_embeddings(sys.argv[1], read_meta(sys.argv[2]))
t = time.perf_counter()
auc = all_pairs_auc(vectors, table)
middle = time.perf_counter()
score = every_pair(table).score(table, vectors)
ci = percentiles(score.replicates("auc", identity_draws(len(score.identities), 1000, 0)))
print(json.dumps({"auc": auc, "auc_seconds": middle - t, "auc_with_interval_seconds": time.perf_counter() - middle,
                  "auc_ci": ci, "pairs": len(score)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=Path, required=True, help="the official lists folder (with vox1_meta.csv)")
    parser.add_argument("--out", type=Path, default=Path("docs/evaluation_scale.json"))
    parser.add_argument("--only", nargs="*", default=["val", "test", "lists"], choices=["val", "test", "lists"])
    args = parser.parse_args()
    python = sys.executable
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    results = {"machine": {"cpus": len(re.findall(r"^processor", cpu, re.M)) or None,
                           "avx512_bf16": "avx512_bf16" in cpu, "python": platform.python_version()},
               "shape": {"voices_per_identity": VOICES, "faces_per_identity": FACES, "dim": DIM}}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if "val" in args.only:
            file = split_embeddings(args.lists, "val", scratch / "val.npz")
            entry = measured([python, "-c", VALIDATION, str(file), str(args.lists / "vox1_meta.csv")])
            found = json.loads(entry.pop("stdout").splitlines()[-1])
            results["val_all_pairs_auc"] = {**entry, **found}
            print("val", results["val_all_pairs_auc"], flush=True)
        if "test" in args.only:
            file = split_embeddings(args.lists, "test", scratch / "test.npz")
            results["test_evaluate_every_pair"] = entry = measured(
                [python, "-m", "vfcross.workflows.cli", "evaluate", "--embeddings", str(file), "--root",
                 str(args.lists), "--out", str(scratch / "test-out")])
            summary = json.loads((scratch / "test-out" / "summary.json").read_text())
            entry.pop("stdout")
            results["test_evaluate_every_pair"]["verification"] = summary["verification"]
            results["test_evaluate_every_pair"]["grouped_auc"] = summary["grouped_auc"]
            print("test", results["test_evaluate_every_pair"], flush=True)
        if "lists" in args.only:
            file = list_embeddings(args.lists, scratch / "lists.npz")
            entry = measured([python, "-m", "vfcross.workflows.cli", "evaluate", "--embeddings", str(file), "--root",
                              str(args.lists), "--lists", str(args.lists), "--out", str(scratch / "lists-out")])
            summary = json.loads((scratch / "lists-out" / "summary.json").read_text())
            entry.pop("stdout")
            results["official_lists"] = {**entry, "coverage": summary["coverage"],
                                         "auc": summary["verification"]["auc"],
                                         "auc_sklearn": _sklearn_auc(file, args.lists)}
            print("lists", results["official_lists"], flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


def _sklearn_auc(file: Path, lists: Path) -> float:
    """scikit-learn's AUC of the official random list on the same (L2-normalised) vectors."""
    from sklearn.metrics import roc_auc_score

    from vfcross.data.protocol_files import read_verification_list

    veriflist = read_verification_list(lists / "veriflist_test_random_unseenunheard.txt", lists / "vox1_meta.csv")
    with np.load(file) as data:
        row = {p: i for i, p in enumerate(data["relpath"])}
        vectors = data["embedding"].astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = [vectors[row[v]] @ vectors[row[f]] for v, f in veriflist.paths]
    return float(roc_auc_score(veriflist.labels, scores))


if __name__ == "__main__":
    main()
