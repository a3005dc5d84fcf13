"""`Profile`: what a spiking network costs for one input shape (fan-out maps, MAC counts)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx

from dtif.metrics.synops import count_macs, measure_fanout


@dataclass
class Profile:
    """What the network costs for one input shape.

    Attributes:
        fanout: fan-out per output element of each time-aware layer, [1, ...].
        layer_sizes: neurons per sample of each time-aware layer.
        static_macs: MACs per sample of the static prefix (done once per inference).
        ann_macs: MACs per sample of the ANN.
        sample_step_bytes: working memory of one sample for one step (an estimate).
    """

    fanout: dict[str, torch.Tensor]
    layer_sizes: dict[str, int]
    static_macs: int
    ann_macs: int
    sample_step_bytes: int


def measure_profile(
    static: fx.GraphModule,
    dynamic: fx.GraphModule,
    ann: fx.GraphModule,
    x: torch.Tensor,
) -> Profile:
    """Measure the profile of a network on one zero sample `x`, [1, ...]."""
    with torch.inference_mode():
        boundary = tuple(b.clone() for b in static(x))
    fanout = measure_fanout(dynamic, boundary)
    sizes = {name: f.numel() for name, f in fanout.items()}
    biggest = max([*sizes.values(), *(b.numel() for b in boundary), 1])
    return Profile(
        fanout=fanout,
        layer_sizes=sizes,
        static_macs=count_macs(static, x),
        ann_macs=count_macs(ann, x),
        sample_step_bytes=8 * 4 * biggest,
    )
