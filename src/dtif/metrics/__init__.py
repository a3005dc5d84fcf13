"""Metrics: synaptic operations, energy and latency. Measuring never alters outputs."""

from dtif.metrics.bootstrap import AccuracyGap, PairedLatency, accuracy_gap, paired_latency
from dtif.metrics.energy import EnergyModel
from dtif.metrics.latency import latency

__all__ = [
    "AccuracyGap",
    "EnergyModel",
    "PairedLatency",
    "accuracy_gap",
    "latency",
    "paired_latency",
]
