"""Conversion passes, in the order `convert` runs them."""

from dtif.convert.normalize import MaxNorm, PercentileNorm
from dtif.convert.pipeline import build_snn, convert, prepare_ann

__all__ = ["MaxNorm", "PercentileNorm", "build_snn", "convert", "prepare_ann"]
