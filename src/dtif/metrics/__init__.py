"""Metrics: synaptic operations, energy and latency. Measuring never alters outputs."""

from dtif.metrics.bootstrap import PairedLatency, paired_latency
from dtif.metrics.energy import EnergyModel
from dtif.metrics.latency import latency

__all__ = ["EnergyModel", "PairedLatency", "latency", "paired_latency"]
