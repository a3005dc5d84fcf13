"""The paired bootstrap of L_delta: exact cases, censoring, agreement with `latency`, errors."""

from __future__ import annotations

import pytest
import torch

import dtif
from dtif.errors import InputError
from dtif.metrics import accuracy_gap, latency, paired_latency
from dtif.metrics.bootstrap import resampled_latency


def _curves(n: int, steps: int, first: int, ann: torch.Tensor) -> torch.Tensor:
    """Every image the ANN gets right is right from step `first` on; the others never."""
    c = torch.zeros(n, steps, dtype=torch.bool)
    c[:, first - 1 :] = ann[:, None]
    return c


def test_resampled_latency_by_hand() -> None:
    acc = torch.tensor(
        [
            [0.5, 0.95, 0.90, 0.95],  # dips below 0.94 at step 3: L = 4
            [0.95, 0.95, 0.95, 0.95],  # L = 1
            [0.5, 0.5, 0.5, 0.5],  # never: T + 1 = 5
            [0.5, 0.94, 0.94, 0.94],  # exactly at the target counts: L = 2
        ],
        dtype=torch.float64,
    )
    ann = torch.full((4,), 0.95, dtype=torch.float64)
    assert resampled_latency(acc, ann, 1.0).tolist() == [4, 1, 5, 2]


def test_a_always_three_steps_sooner() -> None:
    ann = torch.rand(400, generator=torch.Generator().manual_seed(0)) < 0.9
    a, b = _curves(400, 16, 2, ann), _curves(400, 16, 5, ann)
    res = paired_latency(a, b, ann, resamples=300)
    assert (res.latency_a, res.latency_b) == (2, 5)
    assert (res.diff_low, res.diff_high) == (-3.0, -3.0)
    assert (res.prob_a_lower, res.prob_tie) == (1.0, 0.0)
    assert (res.num_images, res.num_steps, res.resamples) == (400, 16, 300)


def test_same_method_is_a_tie() -> None:
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(300, 12, generator=gen) < 0.8
    ann = torch.rand(300, generator=gen) < 0.85
    res = paired_latency(a, a.clone(), ann, resamples=200)
    assert res.latency_a == res.latency_b
    assert (res.diff_low, res.diff_high, res.prob_a_lower, res.prob_tie) == (0.0, 0.0, 0.0, 1.0)


def test_point_estimates_agree_with_latency() -> None:
    gen = torch.Generator().manual_seed(2)
    ann = torch.rand(500, generator=gen) < 0.9
    # a noisy method that converges: right with probability rising to the ANN's answer
    p = torch.linspace(0.3, 1.0, 20)
    a = (torch.rand(500, 20, generator=gen) < p) & ann[:, None]
    b = _curves(500, 20, 8, ann)
    res = paired_latency(a, b, ann, delta_points=1.0, resamples=100)
    base = float(ann.double().mean())
    assert res.latency_a == latency(a.double().mean(0).tolist(), base, 1.0)
    assert res.latency_b == latency(b.double().mean(0).tolist(), base, 1.0) == 8
    assert res.diff_low <= res.diff_high
    assert 0.0 <= res.prob_a_lower + res.prob_tie <= 1.0


def test_never_reached_is_censored_at_t_max_plus_one() -> None:
    ann = torch.ones(50, dtype=torch.bool)
    never = torch.zeros(50, 10, dtype=torch.bool)
    sure = _curves(50, 10, 3, ann)
    res = paired_latency(never, sure, ann, resamples=50)
    assert res.latency_a is None and res.latency_b == 3
    assert (res.diff_low, res.diff_high) == (8.0, 8.0)  # (10 + 1) - 3


def test_seeded_and_leaves_the_global_generator_alone() -> None:
    gen = torch.Generator().manual_seed(3)
    a = torch.rand(200, 8, generator=gen) < 0.9
    b = torch.rand(200, 8, generator=gen) < 0.9
    ann = torch.rand(200, generator=gen) < 0.92
    state = torch.random.get_rng_state()
    one = paired_latency(a, b, ann, resamples=100, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert one == paired_latency(a, b, ann, resamples=100, seed=7)
    assert one.to_dict()["resamples"] == 100


def test_top_level_name() -> None:
    assert dtif.paired_latency is paired_latency


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"correct_b": torch.zeros(5, 4, dtype=torch.bool)}, "correct_b must be a tensor of shape"),
        (
            {"ann_correct": torch.zeros(5, dtype=torch.bool)},
            "ann_correct must be a tensor of shape",
        ),
        ({"correct_a": torch.full((6, 4), 2.0)}, "must hold 0/1"),
        ({"correct_a": torch.zeros(4)}, "correct_a must be [images, steps]"),
        ({"resamples": 0}, "resamples must be an integer >= 1"),
        ({"level": 1.0}, "level must be in (0, 1)"),
        ({"delta_points": -1.0}, "delta_points must be >= 0"),
    ],
)
def test_bad_input_is_named(kwargs: dict[str, object], needle: str) -> None:
    args: dict[str, object] = {
        "correct_a": torch.zeros(6, 4, dtype=torch.bool),
        "correct_b": torch.zeros(6, 4, dtype=torch.bool),
        "ann_correct": torch.ones(6, dtype=torch.bool),
    }
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        paired_latency(
            args.pop("correct_a"),  # type: ignore[arg-type]
            args.pop("correct_b"),  # type: ignore[arg-type]
            args.pop("ann_correct"),  # type: ignore[arg-type]
            **args,  # type: ignore[arg-type]
        )
    assert needle in str(err.value)


def test_accuracy_gap_by_hand() -> None:
    ann = torch.ones(100, dtype=torch.bool)
    snn = torch.ones(100, 5, dtype=torch.bool)
    snn[:3, 4] = False  # three images lost at T_max; one more lost only at step 2
    snn[3, 1] = False
    gap = accuracy_gap(snn, ann, resamples=400)
    assert gap.step == 5 and gap.gap == pytest.approx(-3.0)
    assert gap.low < -3.0 < gap.high <= 0.0  # it can only be a loss, never a gain
    assert accuracy_gap(snn, ann, step=2, resamples=50).gap == pytest.approx(-1.0)
    same = accuracy_gap(torch.ones(20, 3, dtype=torch.bool), torch.ones(20, dtype=torch.bool))
    assert (same.gap, same.low, same.high) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"step": 0}, "step must be an integer in 1..4"),
        ({"step": 5}, "step must be an integer in 1..4"),
        ({"ann_correct": torch.ones(3, dtype=torch.bool)}, "ann_correct must be a tensor"),
        ({"correct": torch.ones(6)}, "correct must be [images, steps]"),
        ({"resamples": -2}, "resamples must be an integer >= 1"),
    ],
)
def test_accuracy_gap_bad_input(kwargs: dict[str, object], needle: str) -> None:
    args: dict[str, object] = {
        "correct": torch.ones(6, 4, dtype=torch.bool),
        "ann_correct": torch.ones(6, dtype=torch.bool),
    }
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        accuracy_gap(args.pop("correct"), args.pop("ann_correct"), **args)  # type: ignore[arg-type]
    assert needle in str(err.value)
