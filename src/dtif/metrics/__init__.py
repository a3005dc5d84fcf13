"""Metrics: synaptic operations, energy and latency. Measuring never alters outputs."""

from dtif.metrics.energy import EnergyModel
from dtif.metrics.latency import latency

__all__ = ["EnergyModel", "latency"]
