"""Seeded, resumable training of the model-zoo ANNs, with a checkpoint at every epoch."""

from dtif.train.config import DEFAULT_LR, TrainConfig
from dtif.train.loop import train
from dtif.train.qcfs import to_qcfs
from dtif.train.state import CHECKPOINT_NAME, SUMMARY_NAME

__all__ = ["CHECKPOINT_NAME", "DEFAULT_LR", "SUMMARY_NAME", "TrainConfig", "to_qcfs", "train"]
