"""The named methods (`METHODS`), their calibrated constants, and the defaults of the CLI."""

from __future__ import annotations

from dataclasses import replace

from dtif.convert.normalize import MaxNorm, PercentileNorm, TrainedScale
from dtif.methods.recipe import Method
from dtif.neurons import DTIFParams, IFParams

AUTO = "dtif-auto"

# The default DTIF: binary payload, rational g, one fixed alpha (see docs/dtif.md).
DTIF_ALPHA = 8.0
_P999 = PercentileNorm(99.9)
# The negative firing level of the signed methods; 0, 0.1 and 0.5 were screened against it on
# held-out training images (docs/dtif.md, "Signed correction spikes").
SIGNED_THETA_NEG = 0.25
# The T at which the -bias methods calibrate their biases, chosen on held-out training images
# (docs/results.md, "What we tried").
BIAS_STEPS = 8
# The K tried by the -switch methods: the threshold dynamic for the first K steps, then 1.
SWITCH_GRID = (1, 2, 3, 4, 6, 8, 12, 16)
# Spikes per step of the -burst2 methods: a neuron whose input exceeds its scale carries the
# excess instead of saturating at one spike a step (docs/dtif.md). The -burst4 methods allow
# up to 4 (docs/results.md, "What we tried").
BURST = 2
BURSTS = (BURST, 4)
# The v0_spread values tried by the -spread methods after their search (0 is always tried):
# initial potentials spread across the neurons of a layer (docs/dtif.md).
SPREAD_GRID = (0.25, 0.5)
# The -mean methods also try DTIF's threshold from the running mean of the input, last.
THETA_INPUT_GRID = ("mean",)

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("if-max", IFParams(), MaxNorm(), "IF, max normalization (Diehl et al. 2015)"),
        Method(
            "if-p99.9", IFParams(), _P999, "IF, 99.9th-percentile normalization (Rueckauer 2017)"
        ),
        Method(
            "if-p99.99", IFParams(), PercentileNorm(99.99), "IF, 99.99th-percentile normalization"
        ),
        Method(
            "if-max-v0.5",
            IFParams(v0=0.5),
            MaxNorm(),
            "IF, max norm, initial potential 0.5 (Bu et al.)",
        ),
        Method("if-p99.9-v0.5", IFParams(v0=0.5), _P999, "IF, p99.9 norm, initial potential 0.5"),
        Method(
            "dtif",
            DTIFParams(alpha=DTIF_ALPHA),
            _P999,
            f"DTIF, binary payload, rational g, alpha={DTIF_ALPHA:g}, p99.9 norm",
        ),
        Method(
            "dtif-exp",
            DTIFParams(alpha=DTIF_ALPHA, g="exp"),
            _P999,
            f"DTIF, binary payload, exponential g, alpha={DTIF_ALPHA:g}, p99.9 norm",
        ),
        Method(
            "dtif-graded",
            DTIFParams(alpha=DTIF_ALPHA, payload="graded", burst=4, theta_min=0.25, v0=0.5),
            _P999,
            "DTIF, graded payload (MSAT reading), burst 4, theta_min 0.25, v0 0.5, p99.9 norm",
        ),
        Method(
            "dtif-pow2",
            DTIFParams(
                alpha=DTIF_ALPHA,
                payload="graded",
                burst=4,
                theta_min=0.25,
                v0=0.5,
                theta_levels="pow2",
            ),
            _P999,
            "DTIF graded with power-of-two threshold levels (shift-and-add synapses)",
        ),
        Method(
            "dtif-binary-biased",
            DTIFParams(alpha=DTIF_ALPHA, payload="binary-biased"),
            _P999,
            "ablation: binary payload but reset by theta(t); the rate is biased",
        ),
        Method(
            AUTO,
            DTIFParams(alpha=DTIF_ALPHA),
            _P999,
            "DTIF with per-layer alpha and v0 calibrated on training images",
            auto=True,
        ),
        Method(
            "if-auto",
            DTIFParams(alpha=0.0),
            _P999,
            "control for dtif-auto: the same search with alpha fixed at 0 (IF), per-layer v0 only",
            auto=True,
            alpha_grid=(0.0,),
        ),
        Method(
            "if-qcfs",
            IFParams(v0=0.5),
            TrainedScale(),
            "IF, trained QCFS scale, initial potential 0.5 (Bu et al. 2022; QCFS checkpoints only)",
        ),
        Method(
            "dtif-auto-qcfs",
            DTIFParams(alpha=DTIF_ALPHA),
            TrainedScale(),
            "dtif-auto on the trained QCFS scale (QCFS checkpoints only)",
            auto=True,
        ),
        Method(
            "dtif-auto-signed",
            DTIFParams(alpha=DTIF_ALPHA, signed=True, theta_neg=SIGNED_THETA_NEG),
            _P999,
            "dtif-auto with signed correction spikes (-1 when V < -theta_neg, net count > 0), "
            f"theta_neg={SIGNED_THETA_NEG:g}",
            auto=True,
        ),
        Method(
            "dtif-auto-signed-switch",
            DTIFParams(alpha=DTIF_ALPHA, signed=True, theta_neg=SIGNED_THETA_NEG),
            _P999,
            "dtif-auto-signed whose threshold is dynamic for the first K steps, then 1 (IF); "
            "K chosen after the search on the same images",
            auto=True,
            dynamic_steps_grid=SWITCH_GRID,
        ),
        Method(
            "if-auto-signed",
            DTIFParams(alpha=0.0, signed=True, theta_neg=SIGNED_THETA_NEG),
            _P999,
            "control for dtif-auto-signed: IF with the same signed spikes, per-layer v0 searched",
            auto=True,
            alpha_grid=(0.0,),
        ),
        Method(
            "dtif-signed",
            DTIFParams(alpha=4.0, v0=0.5, signed=True, theta_neg=SIGNED_THETA_NEG),
            _P999,
            "DTIF alpha 4, v0 0.5, signed correction spikes, p99.9 norm (no search)",
        ),
        Method(
            "if-p99.9-v0.5-signed",
            IFParams(v0=0.5, signed=True, theta_neg=SIGNED_THETA_NEG),
            _P999,
            "control for dtif-signed: IF, p99.9 norm, v0 0.5, signed correction spikes",
        ),
        Method(
            "if-qcfs-signed",
            IFParams(v0=0.5, signed=True, theta_neg=SIGNED_THETA_NEG),
            TrainedScale(),
            "if-qcfs with signed correction spikes (QCFS checkpoints only)",
        ),
        Method(
            "dtif-auto-qcfs-signed",
            DTIFParams(alpha=DTIF_ALPHA, signed=True, theta_neg=SIGNED_THETA_NEG),
            TrainedScale(),
            "dtif-auto-qcfs with signed correction spikes (QCFS checkpoints only)",
            auto=True,
        ),
        Method(
            "dtif-auto-qcfs-signed-switch",
            DTIFParams(alpha=DTIF_ALPHA, signed=True, theta_neg=SIGNED_THETA_NEG),
            TrainedScale(),
            "dtif-auto-qcfs-signed with the dynamic threshold for the first K steps only "
            "(QCFS checkpoints only)",
            auto=True,
            dynamic_steps_grid=SWITCH_GRID,
        ),
        Method(
            "if-auto-qcfs-signed",
            DTIFParams(alpha=0.0, signed=True, theta_neg=SIGNED_THETA_NEG),
            TrainedScale(),
            "control for dtif-auto-qcfs-signed: the same search with alpha fixed at 0 (IF)",
            auto=True,
            alpha_grid=(0.0,),
        ),
    ]
}


def _derive(base: str, suffix: str, description: str, **change: object) -> None:
    """Register METHODS[base] with `change` applied as "<base>-<suffix>"."""
    name = f"{base}-{suffix}"
    METHODS[name] = replace(METHODS[base], name=name, description=description, **change)


# Bias calibration for the first BIAS_STEPS steps after the search: "<base>-bias".
_derive(
    "dtif-auto-signed",
    "bias",
    "dtif-auto-signed, then each layer's bias calibrated on the same images for its "
    f"mean rate at T={BIAS_STEPS} (layer by layer)",
    bias_steps=BIAS_STEPS,
)
_derive(
    "dtif-auto-signed-switch",
    "bias",
    f"dtif-auto-signed-switch, then the bias calibration of dtif-auto-signed-bias (T={BIAS_STEPS})",
    bias_steps=BIAS_STEPS,
)
_derive(
    "if-auto-signed",
    "bias",
    "control for dtif-auto-signed-bias: if-auto-signed with the same bias calibration",
    bias_steps=BIAS_STEPS,
)
_derive(
    "dtif-auto-qcfs-signed",
    "bias",
    "dtif-auto-qcfs-signed with the bias calibration of dtif-auto-signed-bias "
    f"(T={BIAS_STEPS}; QCFS checkpoints only)",
    bias_steps=BIAS_STEPS,
)
_derive(
    "if-qcfs-signed",
    "bias",
    f"if-qcfs-signed with the same bias calibration (T={BIAS_STEPS}; QCFS checkpoints only)",
    bias_steps=BIAS_STEPS,
)
# Up to b spikes a step once searched: "<base>-burst<b>".
for _b in BURSTS:
    _derive(
        "dtif-auto-signed-switch-bias",
        f"burst{_b}",
        f"dtif-auto-signed-switch-bias with up to {_b} spikes a step after the switch "
        "(one a step while the threshold is dynamic; at every step if the search chose no switch)",
        burst=_b,
    )
    _derive(
        "if-auto-signed-bias",
        f"burst{_b}",
        f"control for dtif-auto-signed-switch-bias-burst{_b}: if-auto-signed-bias with up "
        f"to {_b} spikes a step",
        burst=_b,
    )
# v0_spread chosen from SPREAD_GRID after the search: "<base>-spread".
_derive(
    "dtif-auto-qcfs-signed",
    "spread",
    "dtif-auto-qcfs-signed, then initial potentials spread across each layer's neurons "
    f"(v0_spread 0 or {', '.join(map(str, SPREAD_GRID))}, chosen by the search's loss; "
    "QCFS checkpoints only)",
    spread_grid=SPREAD_GRID,
)
_derive(
    "if-auto-qcfs-signed",
    "spread",
    "control for dtif-auto-qcfs-signed-spread: if-auto-qcfs-signed with the same choice "
    "of v0_spread",
    spread_grid=SPREAD_GRID,
)
for _b in BURSTS:
    _derive(
        f"dtif-auto-signed-switch-bias-burst{_b}",
        "spread",
        f"dtif-auto-signed-switch-bias-burst{_b} with v0_spread chosen after its search "
        "(as dtif-auto-qcfs-signed-spread)",
        spread_grid=SPREAD_GRID,
    )
_derive(
    "if-auto-signed-bias",
    "spread",
    f"control for dtif-auto-signed-switch-bias-burst{BURST}-spread: if-auto-signed-bias "
    "with the same choice of v0_spread",
    spread_grid=SPREAD_GRID,
)

# theta_input "present" or "mean" chosen by the search's loss, last: "<base>-mean".
for _base in (
    "dtif-auto-signed-switch-bias",
    f"dtif-auto-signed-switch-bias-burst{BURST}-spread",
    "dtif-auto-qcfs-signed",
    "dtif-auto-qcfs-signed-spread",
):
    _derive(
        _base,
        "mean",
        f"{_base}, with the threshold set by the running mean of the input instead of the "
        "present input where the search's loss prefers it",
        theta_input_grid=THETA_INPUT_GRID,
    )

# The same choice made after the burst and the bias calibration, each rule with its own
# calibration: "<base>-mean-last".
for _base in (
    "dtif-auto-signed-switch-bias",
    *(f"dtif-auto-signed-switch-bias-burst{_b}-spread" for _b in BURSTS),
):
    _derive(
        _base,
        "mean-last",
        f"{_base}-mean, with the rule chosen after the bursts and the bias calibration (each "
        "rule calibrated with its own biases) instead of right after the search",
        theta_input_grid=THETA_INPUT_GRID,
        theta_input_last=True,
    )

# The per-layer search run a second time, from the values of the first: "<base>-2pass".
_derive(
    "dtif-auto-qcfs-signed-spread-mean",
    "2pass",
    "dtif-auto-qcfs-signed-spread-mean with its per-layer (alpha, v0) search run a second "
    "time, the spread and the rule of the first in place",
    search_passes=2,
)
_derive(
    "if-auto-qcfs-signed-spread",
    "2pass",
    "control for dtif-auto-qcfs-signed-spread-mean-2pass: if-auto-qcfs-signed-spread with its "
    "v0 search run a second time",
    search_passes=2,
)

# The per-layer search once more on the finished network, biases calibrated again: "<base>-final".
for _b in BURSTS:
    _derive(
        f"dtif-auto-signed-switch-bias-burst{_b}-spread-mean-last",
        "final",
        f"dtif-auto-signed-switch-bias-burst{_b}-spread-mean-last, then its per-layer "
        "(alpha, v0) search once more on the finished network (bursts, offsets and rule in "
        "place) and its biases calibrated again",
        final_pass=True,
    )
    _derive(
        f"if-auto-signed-bias-burst{_b}",
        "final",
        f"control for dtif-auto-signed-switch-bias-burst{_b}-spread-mean-last-final: "
        f"if-auto-signed-bias-burst{_b} with its v0 search once more on the finished network "
        "and its biases calibrated again",
        final_pass=True,
    )

# One lambda per channel (channel-wise p99.9) instead of one per layer: "<base>-cw". A channel
# whose activations are small in its layer gets its own, lower scale, so it fires sooner.
_P999_CW = PercentileNorm(99.9, channelwise=True)
for _base in (
    f"dtif-auto-signed-switch-bias-burst{BURST}-spread-mean-last",
    *(f"if-auto-signed-bias-burst{_b}" for _b in BURSTS),
):
    _derive(_base, "cw", f"{_base} with one threshold scale per channel (p99.9)", norm=_P999_CW)

DEFAULT_METHODS = ("if-max", "if-p99.9", "if-max-v0.5", "dtif")
