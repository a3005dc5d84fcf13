"""Conversion passes, in the order `convert` runs them, and the table of conversion options."""

from dtif.convert.normalize import MaxNorm, Norm, PercentileNorm, TrainedScale
from dtif.convert.options import MAXPOOL_POLICIES, MaxPoolPolicy
from dtif.convert.outputs import PickOutput, pick_output
from dtif.convert.pipeline import build_snn, convert, prepare_ann

__all__ = [
    "MAXPOOL_POLICIES",
    "MaxNorm",
    "MaxPoolPolicy",
    "Norm",
    "PercentileNorm",
    "TrainedScale",
    "PickOutput",
    "build_snn",
    "convert",
    "pick_output",
    "prepare_ann",
]
