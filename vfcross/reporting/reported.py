"""The paper's reported numbers: the one copy in the package.

Numbers printed in Zhong, Bu & Qin (2025) and the peer rows of its tables,
in %, on VoxCeleb1 (unseen-unheard test identities). They are REPORTED,
never measured here, and appear in reports only as rows labelled so.
"""

from __future__ import annotations

#: Numbers printed in Zhong, Bu & Qin (2025) and the peer rows of its tables, in %, on VoxCeleb1
#: (unseen-unheard test identities). They are REPORTED, never measured here.
PAPER = "Zhong, Bu & Qin 2025 (single stream + fusion + FOP)"
REPORTED: dict[str, list[dict]] = {
    "table2": [
        {"method": PAPER, "EER": 25.6, "AUC": 82.5},
        {"method": "DIMNet", "EER": 24.9, "AUC": 82.5},
        {"method": "Learnable PINs", "EER": 29.6, "AUC": 78.5},
    ],
    "table3": [{"method": PAPER, "G": 68.8, "N": 70.8, "A": 76.9, "GNA": 58.2}],
    "table4": [{"method": PAPER, "direction": "V-F", "N=2": 83.0, "N=4": 64.0, "N=6": 51.0, "N=8": 42.0,
                "N=10": 37.0}],
    "table5": [{"method": PAPER, "V-F": 6.92, "F-V": 7.55}],
    "table6": [
        {"method": "single stream + FOP loss, no fusion", "EER": 28.5, "AUC": 79.8},
        {"method": "+ fusion, CE only", "EER": 27.5, "AUC": 81.6},
        {"method": "+ fusion, OPL (cosine) only", "EER": 30.5, "AUC": 77.5},
        {"method": "full model (fusion + CE + OPL)", "EER": 25.6, "AUC": 82.5},
    ],
}
TABLE_TITLES = {
    "table2": "Table 2 - cross-modal verification (random negatives), %",
    "table3": "Table 3 - verification AUC with negatives of the same gender (G), nationality (N), age (A), all (GNA), %",
    "table4": "Table 4 - 1:N matching accuracy, %",
    "table5": "Table 5 - retrieval mean average precision, %",
    "table6": "Table 6 - ablation of the fusion and the loss (verification, random negatives), %",
}
