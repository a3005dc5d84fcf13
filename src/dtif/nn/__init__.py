"""The modules that sit in a spiking graph, and the run context that they read."""

from dtif.nn.context import LayerRecord, RunContext, TimeAware, bind
from dtif.nn.layers import RepeatTime, SpikeMaxPool
from dtif.nn.linear import EventLinear
from dtif.nn.neuron import SpikingNeuron, is_graded
from dtif.nn.pooling import AvgPool2x2
from dtif.nn.scale import Scale

__all__ = [
    "AvgPool2x2",
    "EventLinear",
    "LayerRecord",
    "RepeatTime",
    "RunContext",
    "Scale",
    "SpikeMaxPool",
    "SpikingNeuron",
    "TimeAware",
    "bind",
    "is_graded",
]
