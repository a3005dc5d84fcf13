"""dtif: low-latency ANN-to-SNN conversion with dynamic-threshold integrate-and-fire neurons."""

from dtif.calibrate import DTIFCalibration, calibrate_biases, calibrate_dtif
from dtif.convert import MaxNorm, PercentileNorm, TrainedScale, convert, pick_output
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
from dtif.metrics import EnergyModel, latency, paired_latency
from dtif.models.qcfs import quantized_to
from dtif.neurons import DTIF, IF, DTIFParams, IFParams
from dtif.sim import Evaluation, SimulationResult, SpikingNetwork, evaluate, simulate
from dtif.sim.allocator import keep_freed_memory
from dtif.sim.early_exit import AutoExit, EarlyExit
from dtif.sim.exit_calibration import calibrate_exit
from dtif.train import to_qcfs
from dtif.version import __version__

__all__ = [
    "DTIF",
    "AutoExit",
    "IF",
    "CalibrationError",
    "CheckpointError",
    "ConversionError",
    "DTIFCalibration",
    "DTIFParams",
    "DatasetError",
    "DtifError",
    "EarlyExit",
    "EnergyModel",
    "Evaluation",
    "IFParams",
    "InputError",
    "MaxNorm",
    "PercentileNorm",
    "SimulationResult",
    "SpikingNetwork",
    "TrainedScale",
    "UnsupportedOpsError",
    "__version__",
    "calibrate_biases",
    "calibrate_dtif",
    "calibrate_exit",
    "convert",
    "evaluate",
    "export_nir",
    "import_nir",
    "keep_freed_memory",
    "latency",
    "paired_latency",
    "pick_output",
    "simulate",
    "to_qcfs",
    "quantized_to",
]
