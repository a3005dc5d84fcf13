"""Calibration on training images: DTIF's per-layer search, layer-wise bias calibration, and
per-layer error diagnostics."""

from dtif.calibrate.bias import bias_layers, calibrate_biases
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
    "bias_layers",
    "calibrate_biases",
    "calibrate_dtif",
    "layer_errors",
    "search_images",
]
