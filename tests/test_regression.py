"""Regression check: the method's numbers on fixed inputs, compared with committed values.

nbval re-runs the smoke notebooks on warm caches (training returns the
finished run, embeddings are cache hits), so it cannot see a change of
behaviour. This module can: it recomputes, from fixed seeded inputs,

* the first float32 training steps of the smoke backbone objective
  (InceptionResNet-V1 + softmax + cross-modal center loss; SGD, see :func:`_sgd_steps`) and of the
  full fusion objective (gate + CE + orthogonal projection loss), and
* every evaluation of the paper (EER/AUC with their identity-level
  intervals, grouped AUC, 1:N matching, mAP) on fixed embeddings,

and compares them with ``tests/expected/regression.json``. A deliberate change
of a loss, the network, the optimiser step or a metric changes these numbers
and fails ``make test`` until the file is regenerated on purpose::

    VFCROSS_UPDATE_REGRESSION=1 .venv/bin/python -m pytest -q tests/test_regression.py

(the diff of the file then shows the change in review).

Why these inputs and tolerances. CPUs differ: the same commit's default run
kept other fusion epochs on a CPU without native bfloat16. Training is
therefore always compared in float32 (autocast off whatever the CPU), on
seeded random tensors (no preprocessing, no MTCNN), with plain SGD. Measured
on this 2-core AVX2 machine, two torch threads instead of one (another
summation order, as another CPU's kernels would use) moved the backbone's
first step by 2.3e-5 relative (gradient norm; the losses by 2e-6) and the
fusion's three steps not at all; channels-last memory moved nothing. Later
backbone steps are chaotic at initialisation (the same change moved the
second step's loss by 4e-4 and the third's by 9e-3, with SGD as with Adam),
so the backbone is compared on its first step only, the fusion on three.
``TRAIN_RTOL`` = 5e-4 is 20x the largest measured move. The bfloat16 autocast
path moved the same numbers by more than 1 (relative): it is the other
precision path, and the reason nothing here runs under it. The metrics are
numpy on fixed embeddings: ``METRIC_ATOL`` = 1e-9. A 1% stronger center loss
or OPL, or an EER one pair off, fails the check
(:func:`test_a_changed_loss_or_metric_fails_the_check`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import make_table

from vfcross.backbone.objective import BackboneObjective
from vfcross.config import EvalConfig, RunConfig, override, preset
from vfcross.evaluation.evaluate import evaluate
from vfcross.fusion.task import FusionObjective

EXPECTED = Path(__file__).parent / "expected" / "regression.json"
TRAIN_RTOL = 5e-4
METRIC_ATOL = 1e-9


def _sgd_steps(objective: torch.nn.Module, batch: tuple[torch.Tensor, ...], lr: float,
               steps: int) -> list[dict[str, float]]:
    """Loss components and gradient norm of ``steps`` float32 SGD steps of ``objective`` on one fixed batch.

    Plain SGD, not the runs' Adam: Adam's first steps move every parameter by
    about ``lr`` whatever its gradient's size, so float32 rounding in a
    near-zero gradient flips whole updates (measured: two torch threads
    instead of one moved the third Adam step's loss by 4e-3 relative). SGD's
    update is proportional to the gradient, so the steps check the loss, its
    gradients and the network without that amplification.
    """
    optimizer = torch.optim.SGD(objective.parameters(), lr=lr)
    objective.train()
    record = []
    for _ in range(steps):
        parts = objective(*batch)
        optimizer.zero_grad()
        parts["loss"].backward()
        grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in objective.parameters()
                                                          if p.grad is not None]))
        optimizer.step()
        record.append({"grad_norm": float(grad_norm), **{k: float(parts[k].detach()) for k in
                      ("loss", "ce", *(k for k in ("center", "opl") if k in parts))}})
    return record


def backbone_steps(cfg: RunConfig) -> list[dict[str, float]]:
    """``cfg``'s backbone objective's first float32 training steps on seeded random faces and spectrograms."""
    torch.manual_seed(0)
    n_classes, p, k = 4, cfg.backbone.identities_per_batch, cfg.backbone.samples_per_identity
    objective = BackboneObjective(cfg.backbone, n_classes)
    generator = torch.Generator().manual_seed(1)
    size, rows, frames = cfg.backbone.input_size, cfg.voice.frequency_rows, cfg.backbone.voice_crop_frames
    labels = torch.arange(p).repeat_interleave(k) % n_classes
    faces = torch.randn(p * k, 3, size, size, generator=generator)
    voices = torch.randn(p * k, 1, rows, frames, generator=generator)
    return _sgd_steps(objective, (faces, voices, labels, labels), lr=0.01, steps=1)


def fusion_steps(cfg: RunConfig) -> list[dict[str, float]]:
    """``cfg``'s fusion objective's (the full model: gate, CE + OPL) first float32 steps on seeded random embeddings."""
    torch.manual_seed(0)
    n_classes, n, dim = 8, cfg.fusion.batch_size, 512
    objective = FusionObjective(cfg.fusion, n_classes, in_dim=dim)
    generator = torch.Generator().manual_seed(2)
    labels = torch.arange(n) % n_classes
    centres = torch.randn(n_classes, dim, generator=generator)
    faces = centres[labels] + torch.randn(n, dim, generator=generator)
    voices = centres[labels] + torch.randn(n, dim, generator=generator)
    return _sgd_steps(objective, (faces, voices, labels), lr=0.5, steps=3)


def fixed_embeddings() -> tuple[np.ndarray, object]:
    """A 30-test-identity table and embeddings in which a voice and a face of one identity share a direction."""
    table = make_table(n_test=30, n_train=4, missing_age=(3,))
    rng = np.random.default_rng(5)
    identities = sorted(table.identity.unique())
    shared = dict(zip(identities, rng.normal(size=(len(identities), 16)), strict=True))
    vectors = np.stack([shared[i] + 1.5 * rng.normal(size=16) for i in table.identity])
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), table


def evaluation_numbers() -> dict[str, float]:
    """The paper's evaluations (with intervals) on :func:`fixed_embeddings`, flattened to ``key: value``."""
    vectors, table = fixed_embeddings()
    result = evaluate(vectors, table, EvalConfig(seed=0, n_trials=120, n_boot=100))  # every pair of each list
    numbers = {"verification.eer": result["verification"]["eer"], "verification.auc": result["verification"]["auc"]}
    numbers.update({f"verification.auc_ci.{i}": v for i, v in enumerate(result["verification"]["auc_ci"])})
    numbers.update({f"grouped_auc.{r}": entry["auc"] for r, entry in result["grouped_auc"].items() if "auc" in entry})
    for direction in ("vf", "fv"):
        numbers.update({f"matching_{direction}.{n}": result[f"matching_{direction}"][n]["accuracy"] for n in ("2", "5")})
        numbers[f"map.{direction}"] = result["map"][direction]["map"]
        numbers.update({f"map.{direction}.ci.{i}": v for i, v in enumerate(result["map"][direction]["ci"])})
    return {k: float(v) for k, v in numbers.items()}


def measure(cfg: RunConfig | None = None) -> dict:
    """Everything this module compares, as JSON-ready data (``cfg``: the smoke preset unless given)."""
    cfg = preset("smoke") if cfg is None else cfg
    return {"backbone_steps": backbone_steps(cfg), "fusion_steps": fusion_steps(cfg),
            "evaluation": evaluation_numbers()}


def mismatches(measured: dict, expected: dict) -> list[str]:
    """One line per number that differs from ``expected`` by more than its tolerance (or is missing)."""
    problems = []
    for section in ("backbone_steps", "fusion_steps"):
        if len(measured[section]) != len(expected[section]):
            problems.append(f"{section}: {len(measured[section])} steps, expected {len(expected[section])}")
            continue
        for step, (got, want) in enumerate(zip(measured[section], expected[section], strict=True)):
            for key, value in want.items():
                if key not in got or not math.isclose(got[key], value, rel_tol=TRAIN_RTOL, abs_tol=1e-7):
                    problems.append(f"{section}[{step}].{key}: {got.get(key)} != {value} (rtol {TRAIN_RTOL})")
    for key, value in expected["evaluation"].items():
        got = measured["evaluation"].get(key)
        if got is None or not math.isclose(got, value, rel_tol=0, abs_tol=METRIC_ATOL):
            problems.append(f"evaluation.{key}: {got} != {value} (atol {METRIC_ATOL})")
    problems += [f"evaluation.{key}: not in the expected values" for key in
                 sorted(set(measured["evaluation"]) - set(expected["evaluation"]))]
    return problems


@pytest.fixture(scope="module")
def measured() -> dict:
    with torch.autocast("cpu", enabled=False):
        return measure()


def test_numbers_match_the_committed_values(measured):
    if os.environ.get("VFCROSS_UPDATE_REGRESSION"):
        EXPECTED.parent.mkdir(exist_ok=True)
        EXPECTED.write_text(json.dumps(measured, indent=1) + "\n")
        pytest.skip(f"wrote {EXPECTED}")
    problems = mismatches(measured, json.loads(EXPECTED.read_text()))
    assert not problems, "regression:\n" + "\n".join(problems)


def test_a_changed_loss_or_metric_fails_the_check(measured, monkeypatch):
    """The check can fail: a 1% stronger center loss, a 1% stronger OPL, and an EER read off-by-one-pair each do."""
    import vfcross.scores as scores_module

    cfg = preset("smoke")
    cfg = override(cfg, {"backbone.center_weight": cfg.backbone.center_weight * 1.01,
                         "fusion.alpha": cfg.fusion.alpha * 1.01})
    true_eer = scores_module.eer
    monkeypatch.setattr(scores_module, "eer", lambda s, y, sample_weight=None: true_eer(s, y, sample_weight) + 1 / 600)
    with torch.autocast("cpu", enabled=False):
        problems = mismatches(measure(cfg), measured)
    assert any(p.startswith("backbone_steps[0].center") for p in problems), problems
    assert any(p.startswith("fusion_steps[0].loss") for p in problems), problems
    assert any(p.startswith("evaluation.verification.eer") for p in problems), problems
