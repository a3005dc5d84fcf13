"""Named conversion methods: a neuron and a normalization, given short names for the CLI.

`recipe` holds what a method is and how it builds a network, `table` the named methods and
their constants, `files` the lookup by name or spec file.
"""

from dtif.methods.files import get_method, method_from_file, neuron_from_dict, parse_methods
from dtif.methods.recipe import Method, set_burst
from dtif.methods.table import (
    AUTO,
    BIAS_STEPS,
    BURST,
    DEFAULT_METHODS,
    DTIF_ALPHA,
    METHODS,
    SIGNED_THETA_NEG,
    SWITCH_GRID,
)

__all__ = [
    "AUTO",
    "BIAS_STEPS",
    "BURST",
    "DEFAULT_METHODS",
    "DTIF_ALPHA",
    "METHODS",
    "SIGNED_THETA_NEG",
    "SWITCH_GRID",
    "Method",
    "get_method",
    "method_from_file",
    "neuron_from_dict",
    "parse_methods",
    "set_burst",
]
