"""Checkpoints of trained ANNs and converted SNNs: plain tensors and metadata, loaded safely."""

from dtif.checkpoint.ann import Checkpoint, load_checkpoint, save_checkpoint
from dtif.checkpoint.files import CHECKPOINT_FORMAT, FORMAT_VERSION, SNN_FORMAT
from dtif.checkpoint.snn import load_snn, save_snn

__all__ = [
    "CHECKPOINT_FORMAT",
    "FORMAT_VERSION",
    "SNN_FORMAT",
    "Checkpoint",
    "load_checkpoint",
    "load_snn",
    "save_checkpoint",
    "save_snn",
]
