"""Calibration on training images: DTIF's per-layer search, and per-layer error diagnostics."""

from dtif.calibrate.layer_error import ann_activations, layer_errors
from dtif.calibrate.search import (
    ALPHA_GRID,
    START,
    V0_GRID,
    DTIFCalibration,
    calibrate_dtif,
    search_images,
)

__all__ = [
    "ALPHA_GRID",
    "START",
    "V0_GRID",
    "DTIFCalibration",
    "ann_activations",
    "calibrate_dtif",
    "layer_errors",
    "search_images",
]
