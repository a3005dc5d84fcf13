"""dtif: low-latency ANN-to-SNN conversion with dynamic-threshold integrate-and-fire neurons."""

from dtif.calibrate import DTIFCalibration, calibrate_dtif
from dtif.convert import MaxNorm, PercentileNorm, convert
from dtif.errors import (
    CalibrationError,
    CheckpointError,
    ConversionError,
    DatasetError,
    DtifError,
    InputError,
    UnsupportedOpsError,
)
from dtif.export import export_nir, import_nir
from dtif.metrics import EnergyModel, latency
from dtif.neurons import DTIF, IF, DTIFParams, IFParams
from dtif.sim.engine import SimulationResult, simulate
from dtif.sim.evaluate import Evaluation, evaluate
from dtif.sim.network import SpikingNetwork

__version__ = "0.1.0"

__all__ = [
    "DTIF",
    "IF",
    "CalibrationError",
    "CheckpointError",
    "ConversionError",
    "DTIFCalibration",
    "DTIFParams",
    "DatasetError",
    "DtifError",
    "EnergyModel",
    "Evaluation",
    "IFParams",
    "InputError",
    "MaxNorm",
    "PercentileNorm",
    "SimulationResult",
    "SpikingNetwork",
    "UnsupportedOpsError",
    "__version__",
    "calibrate_dtif",
    "convert",
    "evaluate",
    "export_nir",
    "import_nir",
    "latency",
    "simulate",
]
