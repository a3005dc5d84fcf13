"""Simulation: the spiking network, the chunked time loop, evaluation over a test set."""

from dtif.sim.engine import simulate
from dtif.sim.evaluate import Evaluation, evaluate
from dtif.sim.network import SpikingNetwork
from dtif.sim.result import SimulationResult

__all__ = ["Evaluation", "SimulationResult", "SpikingNetwork", "evaluate", "simulate"]
