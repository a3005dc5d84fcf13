"""Simulation: the run context, time-aware layers, the network and the engine."""
