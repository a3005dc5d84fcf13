"""Spiking neuron models: pure step functions over explicit state, and the module that runs them."""

from dtif.neurons.dt_if_neuron import (
    DTIFParams,
    DTIFState,
    dtif_initial_state,
    dtif_payload,
    dtif_step,
    dtif_threshold,
    is_dynamic,
)
from dtif.neurons.if_neuron import IFParams, IFState, if_initial_state, if_step

IF = IFParams
DTIF = DTIFParams
NeuronParams = IFParams | DTIFParams

__all__ = [
    "DTIF",
    "IF",
    "DTIFParams",
    "DTIFState",
    "IFParams",
    "IFState",
    "NeuronParams",
    "dtif_initial_state",
    "dtif_payload",
    "dtif_step",
    "dtif_threshold",
    "if_initial_state",
    "if_step",
    "is_dynamic",
]
