"""Train-and-compare workflows of notebooks 03 and 05 (fusion against its backbone, the Table 6 variants, the
backbones): the runs are trained or reused here and their vectors handed to evaluation, which trains nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vfcross.backbone.embedding import Embeddings
from vfcross.backbone.task import stage_embeddings, train_backbone
from vfcross.config import TABLE6_VARIANTS, RunConfig
from vfcross.evaluation.intervals import Decision, paired_decision
from vfcross.scores import VerificationPairs
from vfcross.evaluation.protocols import protocols_for
from vfcross.evaluation.evaluate import score_seeds
from vfcross.fusion.task import project, split_projection, train_fusion
from vfcross.reporting.claims import DUAL_BACKBONE, SINGLE_BACKBONE


@dataclass(frozen=True)
class SplitComparison:
    """Fusion models (one per seed) against their backbone on one split: the paired AUC difference over seeds
    (``decision`` None, with a ``note``, where the split has too few identities)."""

    split: str
    identities: int
    decision: Decision | None
    histograms: dict[str, tuple[np.ndarray, np.ndarray]]
    note: str = ""

    @property
    def rows(self) -> list[dict]:
        """Per seed: ``{"seed", "difference", "a" (fusion AUC), "b" (backbone AUC)}``."""
        return [] if self.decision is None else list(self.decision.per_seed)

    def ci(self, level: float = 0.95) -> tuple[float, float] | None:
        """The interval of the mean difference over seeds (None where none could be made)."""
        return None if self.decision is None else self.decision.interval(level)

    def describe(self) -> str:
        """One line per seed (fusion AUC, backbone AUC, difference), then the mean difference and its interval."""
        if self.note:
            return self.note
        lines = [f"{self.split} identities: {self.identities}"]
        lines += [f"seed {r['seed']}: fusion AUC {100 * r['a']:.1f}% vs backbone {100 * r['b']:.1f}%: "
                  f"{100 * r['difference']:+.1f} points" for r in self.rows]
        ci = self.ci()
        lines.append(f"mean over {len(self.rows)} seeds: {100 * self.decision.difference:+.1f} points, 95% CI "
                     + ("n/a" if ci is None else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]")
                     + (" (seed spread not measured: 1 seed)" if len(self.rows) == 1 else ""))
        return "\n".join(lines)

    def table(self) -> pd.DataFrame:
        """The per-seed rows as a table (AUCs and differences in %)."""
        return pd.DataFrame([{"seed": r["seed"], "fusion AUC %": round(100 * r["a"], 2),
                              "backbone AUC %": round(100 * r["b"], 2),
                              "difference (points)": round(100 * r["difference"], 2)} for r in self.rows])


def compare_on_split(models: Mapping[int, object], embeddings: Mapping[int, object], split: str,
                     eval_cfg) -> SplitComparison:
    """Fusion models (seed -> model) against the same seed's backbone embeddings, on one split's pairs (drawn once);
    the paired difference's interval counts identities and seeds. Under two identities: an empty comparison."""
    first = min(models)
    table = embeddings[first].table.reset_index(drop=True)
    rows = (table["split"] == split).fillna(False).to_numpy()
    part = table[rows].reset_index(drop=True)
    if part["identity"].nunique() < 2:
        return SplitComparison(split, int(part["identity"].nunique()), None, {},
                               note=f"no comparison on the {split} split: it has fewer than two identities")
    for seed in models:
        if not embeddings[seed].table.reset_index(drop=True).equals(table):
            raise ValueError(f"backbone seed {seed}'s embeddings are of other rows than seed {first}'s")
    systems = {"fusion": {seed: project(model, embeddings[seed].vectors[rows], part) for seed, model in models.items()},
               "backbone": {seed: embeddings[seed].vectors[rows] for seed in models}}
    scored = score_seeds(systems, part, "random", eval_cfg.n_pairs, eval_cfg.seed, split, memory_gb=eval_cfg.memory_gb)
    decision = paired_decision(scored, "fusion", "backbone", "auc", eval_cfg.n_boot, eval_cfg.seed)
    at = {name: scored.seeds[name].index(first) for name in systems}
    shown = {f"backbone (seed {first})": scored.scores["backbone"][at["backbone"]],
             f"fusion + FOP (seed {first})": scored.scores["fusion"][at["fusion"]]}
    histograms = {name: score.arrays[:2] for name, score in shown.items() if score.arrays is not None}
    return SplitComparison(split, int(part["identity"].nunique()), decision, histograms)


def train_variants(cfg: RunConfig, embeddings: Mapping[int, Embeddings], split: str,
                   progress: bool = False) -> dict[str, dict[int, np.ndarray]]:
    """``{variant: {seed: u/v of the split's rows}}``: every Table 6 variant trained (or reused) for every seed,
    fusion seed s on backbone seed s's embeddings, so that each seed replicates the whole method."""
    return {variant: {seed: split_projection(train_fusion(cfg, embeddings[seed], variant, seed, progress)[0],
                                             embeddings[seed], split)
                      for seed in cfg.fusion.seeds}
            for variant in TABLE6_VARIANTS}


def train_backbones(cfg: RunConfig, manifest: pd.DataFrame, rows: pd.DataFrame,
                    progress: bool = False) -> dict[str, dict[int, np.ndarray]]:
    """``{SINGLE_BACKBONE | DUAL_BACKBONE: {seed: vectors of rows}}``, each trained (or reused: notebook 02's)."""
    systems = {SINGLE_BACKBONE: {}, DUAL_BACKBONE: {}}
    for name, architecture in ((SINGLE_BACKBONE, "single"), (DUAL_BACKBONE, "dual")):
        for seed in cfg.backbone.seeds:
            train_backbone(cfg, manifest, architecture, seed, progress=progress)
            systems[name][seed] = stage_embeddings(cfg, rows, seed, architecture, progress=progress).vectors
    return systems


def ablation_pairs(table: pd.DataFrame, cfg: RunConfig) -> tuple[VerificationPairs | None, str]:
    """(the official random list's pairs, "") where ``eval.lists`` is set and it has scorable rows in ``table``;
    else (None, why not), and the caller generates pairs on ``table``'s identities."""
    if not cfg.eval.lists:
        return None, ""
    official = protocols_for(table, cfg.eval, cfg.data_root or None).verification("random")
    if not official.scorable:
        return None, (f"the official random list has no scorable rows here ({official.note}): Table 6 and the claims "
                      f"use pairs generated on the {table.identity.nunique()} test identities instead")
    return official.protocol, ""
