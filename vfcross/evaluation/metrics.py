"""The metrics under their public names: they live in :mod:`vfcross.metrics`, below every stage, so that the AUC
that picks a training run's kept epoch is the one every table reports."""

from vfcross.metrics import eer, roc_auc, roc_points  # noqa: F401
