"""The one table of conversion options: neurons, norms and max-pool policies, by name.

Every reader of these names (methods, checkpoints, calibration, NIR, the command line) goes
through this table, and every writer uses `to_dict`: `{"type": class name, **fields}`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_args

from dtif.convert.normalize import MaxNorm, Norm, PercentileNorm, TrainedScale
from dtif.errors import InputError
from dtif.neurons import DTIFParams, IFParams, NeuronParams

MaxPoolPolicy = Literal["error", "avg", "gate"]
MAXPOOL_POLICIES: tuple[MaxPoolPolicy, ...] = get_args(MaxPoolPolicy)

NEURONS: dict[str, type[Any]] = {
    "IFParams": IFParams,
    "IF": IFParams,
    "DTIFParams": DTIFParams,
    "DTIF": DTIFParams,
}
NORMS: dict[str, type[Any]] = {
    "MaxNorm": MaxNorm,
    "PercentileNorm": PercentileNorm,
    "TrainedScale": TrainedScale,
}
_TABLES = {"neuron": NEURONS, "norm": NORMS}


def to_dict(options: NeuronParams | Norm) -> dict[str, Any]:
    """`{"type": class name, **fields}` of neuron parameters or a norm.

    A neuron without signed spikes leaves out `signed` and `theta_neg`, and one whose
    threshold is always dynamic leaves out `dynamic_steps`, and one without spread initial
    potentials leaves out `v0_spread`, and one whose threshold follows the present input
    leaves out `theta_input`, so its dict (and the results and files keyed by it) is the
    same as before those options existed.
    """
    if not dataclasses.is_dataclass(options) or isinstance(options, type):
        raise InputError(f"expected neuron parameters or a norm, got {options!r}")
    fields = dataclasses.asdict(options)
    if fields.get("signed") is False:
        del fields["signed"], fields["theta_neg"]
    if "dynamic_steps" in fields and fields["dynamic_steps"] is None:
        del fields["dynamic_steps"]
    if fields.get("v0_spread") == 0.0:
        del fields["v0_spread"]
    if fields.get("theta_input") == "present":
        del fields["theta_input"]
    return {"type": type(options).__name__, **fields}


def from_dict(spec: object, kind: Literal["neuron", "norm"], source: str) -> Any:
    """The neuron parameters or norm that `spec` ({"type": name, **fields}) describes.

    Raises:
        InputError: not such a mapping, an unknown type, or bad fields; the message names
            `source`.
    """
    table = _TABLES[kind]
    if not isinstance(spec, dict):
        raise InputError(
            f'{source}: {kind} must be a mapping like {{"type": ..., ...}}, got {spec!r}'
        )
    name = spec.get("type")
    if name not in table:
        raise InputError(
            f"{source}: unknown {kind} type {name!r}; the {kind} type must be one of "
            f"{sorted(table)}"
        )
    fields = {k: v for k, v in spec.items() if k != "type"}
    try:
        return table[name](**fields)
    except TypeError as err:
        raise InputError(f"{source}: bad {kind} parameters {fields}: {err}") from err


def check_policy(policy: object) -> MaxPoolPolicy:
    """`policy` if it is a max-pool policy.

    Raises:
        InputError: it is not one of `MAXPOOL_POLICIES`.
    """
    if policy not in MAXPOOL_POLICIES:
        raise InputError(f"maxpool must be one of {MAXPOOL_POLICIES}, got {policy!r}")
    return policy  # type: ignore[return-value]  # checked against the Literal's values
