"""The paper's reported numbers (Tables 2-6, %, VoxCeleb1), and the FAME baseline: the one copy in the package.
They are never measured here, appear only in rows labelled "reported", and stay None where the paper prints none."""

from __future__ import annotations

from vfcross.config import CE_ONLY, FULL_MODEL, NO_FUSION, OPL_ONLY

#: The paper's own method, as its rows are labelled.
PAPER = "Zhong, Bu & Qin 2025 (single stream + fusion + FOP)"
#: The dataset every reported number was measured on.
REPORTED_DATASET = "VoxCeleb1"

REPORTED: dict[str, list[dict]] = {
    "table2": [
        {"method": PAPER, "EER": 25.6, "AUC": 82.5},
        {"method": "DIMNet", "EER": 24.9, "AUC": 82.5},
        {"method": "Learnable PINs", "EER": 29.6, "AUC": 78.5},
        {"method": "MAV-Celeb", "EER": 29.0, "AUC": 78.9},
        {"method": "Deep Latent Space", "EER": 29.5, "AUC": 78.8},
        {"method": "Multi-view Approach", "EER": 28.0, "AUC": None},
        {"method": "Adversarial-Metric Learning", "EER": None, "AUC": 80.6},
    ],
    "table3": [
        {"method": PAPER, "G": 68.8, "N": 70.8, "A": 76.9, "GNA": 58.2},
        {"method": "DIMNet-I", "G": 71.0, "N": 81.1, "A": 77.7, "GNA": 62.8},
        {"method": "DIMNet-IG", "G": 71.2, "N": 81.9, "A": 78.0, "GNA": 62.8},
        {"method": "Learnable PINs", "G": 61.1, "N": 77.2, "A": 74.9, "GNA": 58.8},
        {"method": "Deep Latent Space", "G": 62.4, "N": 53.1, "A": 73.5, "GNA": 51.4},
    ],
    "table4": [
        {"method": PAPER, "direction": "V-F", "N=2": 83.0, "N=4": 64.0, "N=6": 51.0, "N=8": 42.0, "N=10": 37.0},
        {"method": "SVHF", "direction": "V-F", "N=2": 82.0, "N=4": 61.0, "N=6": 49.0, "N=8": 43.0, "N=10": 36.0},
        {"method": "Learnable PINs", "direction": "V-F", "N=2": 84.0, "N=4": 54.0, "N=6": 42.0, "N=8": 36.0,
         "N=10": 30.0},
        {"method": "Single Stream Net", "direction": "V-F", "N=2": 78.0, "N=4": 56.0, "N=6": 42.0, "N=8": 36.0,
         "N=10": 30.0},
        {"method": "DIMNet", "direction": "V-F", "N=2": 84.0, "N=4": 65.0, "N=6": 52.0, "N=8": 44.0, "N=10": 38.0},
    ],
    "table5": [
        {"method": PAPER, "V-F": 6.92, "F-V": 7.55},
        {"method": "VFMR", "V-F": 4.70, "F-V": 5.47},
        {"method": "DIMNet", "V-F": 6.22, "F-V": 6.65},
        {"method": "Bi-Pcm-FST", "V-F": 6.36, "F-V": 6.04},
        {"method": "Deep Latent Space", "V-F": 6.87, "F-V": 7.57},
    ],
    "table6": [
        {"method": NO_FUSION, "EER": 28.5, "AUC": 79.8},
        {"method": CE_ONLY, "EER": 27.5, "AUC": 81.6},
        {"method": OPL_ONLY, "EER": 30.5, "AUC": 77.5},
        {"method": FULL_MODEL, "EER": 25.6, "AUC": 82.5},
    ],
}

#: The FOP baseline of the FAME 2026 challenge (Face-voice Association in Multilingual Environments; the
#: organisers' baseline repository mavceleb/mavceleb_baseline), EER % on MAV-Celeb's test identities: trained on
#: one language, tested on the heard and the unheard one; overall = mean of the four EERs. Reported, never measured
#: here; the FOP loss is the one this package implements, on pre-extracted VGGFace / utterance-level features.
FAME_BASELINE = "FOP (FAME 2026 baseline)"


def _fame_rows(dataset: str, other: str, eers: tuple[float, float, float, float], overall: float) -> list[dict]:
    """Reported FAME rows of one MAV-Celeb version: (English train: English, other; other train: English, other)."""
    cells = (("English", "English", eers[0]), ("English", other, eers[1]), (other, "English", eers[2]),
             (other, other, eers[3]))
    rows = [{"method": FAME_BASELINE, "dataset": dataset, "trained on": train, "tested on": test,
             "condition": "heard" if train == test else "unheard", "EER": eer} for train, test, eer in cells]
    return rows + [{"method": FAME_BASELINE, "dataset": dataset, "trained on": "both", "tested on": "both",
                    "condition": "overall (mean of the 4 EERs)", "EER": overall}]


REPORTED["multilingual"] = (_fame_rows("MAV-Celeb v1 (English-Urdu)", "Urdu", (45.1, 48.3, 47.0, 44.3), 46.2)
                            + _fame_rows("MAV-Celeb v3 (English-German)", "German", (34.5, 43.7, 43.2, 39.6), 40.2))

TABLE_TITLES = {
    "table2": "Table 2 - cross-modal verification (random negatives), %",
    "table3": "Table 3 - verification AUC with negatives of the same gender (G), nationality (N), age (A), all "
              "(GNA), %",
    "table4": "Table 4 - 1:N matching accuracy, %",
    "table5": "Table 5 - retrieval mean average precision, %",
    "table6": "Table 6 - ablation of the fusion and the loss (verification, random negatives), %",
    "probes": "Attribute probes on held-out identities (accuracy or R^2; chance = majority class or 0)",
    "single_vs_dual": "Single vs dual stream: cost and verification (random negatives), %",
    "coverage": "Protocols - where each table's rows came from, and how many of each list's rows were scored",
    "multilingual": "FAME protocol - verification trained on one language, tested on the heard and the unheard one, %",
}


def paper(table: str, method: str = PAPER) -> dict:
    """The paper's row of ``method`` in ``table`` (its own method's by default), e.g. ``paper("table3")["G"]``; a
    Table 6 row is named by its variant (a key of ``TABLE6_VARIANTS``)."""
    return next(row for row in REPORTED[table] if row["method"] == method)


def paper_matching_curve() -> dict[int, float]:
    """The paper's 1:N V-F matching accuracy by N (Table 4 / Fig. 6)."""
    row = paper("table4")
    return {int(key[2:]): value for key, value in row.items() if key.startswith("N=")}
