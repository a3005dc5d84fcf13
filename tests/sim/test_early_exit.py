"""Early exit: exited images leave the batch, each result equals the image run alone, the
policy's rule and spec, and calibration on calibration images only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dtif
from dtif.errors import InputError
from dtif.neurons import NeuronParams
from dtif.sim.early_exit import AutoExit, EarlyExit, exit_steps, exit_summary, parse_exit
from dtif.sim.exit_calibration import calibrate_exit, choose_exit

NEURONS: dict[str, NeuronParams] = {
    "IF": dtif.IF(),
    "IF v0": dtif.IF(v0=0.5),
    "DTIF binary": dtif.DTIF(alpha=4.0),
    "DTIF graded burst": dtif.DTIF(alpha=4.0, payload="graded", burst=3),
}


class Net(nn.Module):
    """conv-ReLU, max-pool (a spiking gate with state), residual conv-ReLU, FC-ReLU, FC."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc1 = nn.Linear(4 * 4 * 4, 8)
        self.fc2 = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.relu(self.conv2(x) + x)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def _snn(neuron: NeuronParams) -> dtif.SpikingNetwork:
    torch.manual_seed(0)
    model = Net().eval()
    calib = torch.rand(16, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    return dtif.convert(model, calib, neuron=neuron, maxpool="gate")


def _images(n: int = 12) -> torch.Tensor:
    return torch.rand(n, 2, 8, 8, generator=torch.Generator().manual_seed(2))


def _policy(snn: dtif.SpikingNetwork, x: torch.Tensor, steps: int) -> EarlyExit:
    """A margin threshold at the median margin: some images exit early, some never."""
    out = snn.simulate(x, steps, record=False).outputs
    margins = torch.stack([EarlyExit("margin", 0.0, 1).score(out[t], t + 1) for t in range(steps)])
    return EarlyExit("margin", float(margins.median()), 2)


@pytest.mark.parametrize("name", list(NEURONS))
def test_exited_image_equals_running_alone(name: str) -> None:
    snn, x, steps = _snn(NEURONS[name]), _images(), 24
    policy = _policy(snn, x, steps)
    res = snn.simulate(x, steps, exit=policy)
    assert res.exit_steps is not None
    exits = res.exit_steps
    assert (exits < steps).any() and exits.min() >= 1  # some exit early
    for i in range(x.shape[0]):
        e = int(exits[i])
        alone = snn.simulate(x[i : i + 1], e)
        torch.testing.assert_close(res.outputs[-1, i], alone.outputs[-1, 0])
        assert torch.equal(
            res.outputs[e - 1 :, i], res.outputs[-1, i].expand_as(res.outputs[e - 1 :, i])
        )
        # the same policy on the image alone exits at the same step
        solo = snn.simulate(x[i : i + 1], steps, exit=policy)
        assert solo.exit_steps is not None and int(solo.exit_steps[0]) == e
    # SOPs at exit: each image's own SOPs up to its exit step, averaged over the batch
    alone_sops = [
        float(snn.simulate(x[i : i + 1], int(exits[i])).synops[-1]) for i in range(len(x))
    ]
    assert float(res.synops[-1]) == pytest.approx(sum(alone_sops) / len(x), rel=1e-9)
    # the offline rule on the fixed-T run gives the same exit steps
    fixed = snn.simulate(x, steps)
    assert torch.equal(exit_steps(policy, fixed.outputs), exits)
    # without recording, exited images leave in groups; the answers are the same
    lazy = snn.simulate(x, steps, exit=policy, record=False)
    assert lazy.exit_steps is not None and torch.equal(lazy.exit_steps, exits)
    torch.testing.assert_close(lazy.outputs, res.outputs)


def test_exited_images_leave_the_batch() -> None:
    snn, x, steps = _snn(dtif.IF()), _images(), 24
    policy = _policy(snn, x, steps)
    first = next(m for m in snn.modules() if isinstance(m, dtif.sim.network.SpikingNeuron))
    sizes: list[int] = []
    hook = first.register_forward_pre_hook(lambda m, args: sizes.append(int(args[0].shape[0])))
    try:
        res = snn.simulate(x, steps, exit=policy)
    finally:
        hook.remove()
    assert res.exit_steps is not None
    running = [int((res.exit_steps >= t).sum()) for t in range(1, steps + 1)]
    assert sizes == running  # the layer computes on the images still running, step by step
    assert sizes[-1] < sizes[0]


def test_batch_chunks_and_policy_that_never_fires() -> None:
    snn, x = _snn(dtif.DTIF(alpha=4.0)), _images()
    never = EarlyExit("confidence", 2.0, 1)
    res = snn.simulate(x, 8, exit=never, batch_chunk=5)
    fixed = snn.simulate(x, 8)
    assert res.exit_steps is not None and bool((res.exit_steps == 8).all())
    torch.testing.assert_close(res.outputs, fixed.outputs)
    torch.testing.assert_close(res.synops, fixed.synops)
    always = EarlyExit("confidence", 0.0, 1)
    res = snn.simulate(x, 8, exit=always)
    assert res.exit_steps is not None and bool((res.exit_steps == 1).all())
    torch.testing.assert_close(res.outputs[-1], fixed.outputs[0])


def test_parse_exit_and_bad_policies() -> None:
    assert parse_exit("auto") == AutoExit(0.5)
    assert parse_exit("auto:1") == AutoExit(1.0)
    assert parse_exit("margin:0.3:k=4") == EarlyExit("margin", 0.3, 4)
    assert parse_exit("confidence:0.9") == EarlyExit("confidence", 0.9, 3)
    for bad in ("fast", "margin", "margin:x", "auto:-1", "margin:1:k=0"):
        with pytest.raises(InputError):
            parse_exit(bad)
    with pytest.raises(InputError, match="rule"):
        EarlyExit("entropy", 1.0, 1)  # type: ignore[arg-type]


def test_exit_summary_from_histogram() -> None:
    hist = [0.0, 10.0, 0.0, 5.0, 5.0]  # 10 images at step 2, 5 at 4, 5 at 5
    s = exit_summary(hist)
    assert s == {"mean_step": pytest.approx((20 + 20 + 25) / 20), "median_step": 2, "p95_step": 5}


def test_choose_exit_least_mean_step_within_target() -> None:
    # 4 images, 3 classes; image 3 flips from class 1 to class 0 (the ANN's) at step 4
    out = torch.zeros(6, 4, 3, dtype=torch.float64)
    out[:, 0, 0] = 5.0
    out[:, 1, 1] = 5.0
    out[:, 2, 2] = torch.arange(1, 7, dtype=torch.float64)
    out[:3, 3, 1] = 0.2
    out[3:, 3, 0] = 3.0
    out = torch.cumsum(out, 0)
    ref = torch.tensor([0, 1, 2, 0])
    strict = choose_exit(out, ref, target_loss=0.0)
    assert strict.met and strict.loss == 0.0
    steps = exit_steps(strict.policy, out)
    assert int(steps[3]) >= 4  # image 3 must not exit on its wrong early answer
    loose = choose_exit(out, ref, target_loss=25.0)  # one wrong image of four is allowed
    assert loose.mean_step <= strict.mean_step


def test_calibrate_exit_reads_images_only() -> None:
    snn = _snn(dtif.DTIF(alpha=4.0))
    calib = _images(20)
    cal = calibrate_exit(snn, calib, 16)
    assert cal.num_images == 20 and cal.policy.k >= 1
    assert cal.loss <= cal.target_loss or not cal.met


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_early_exit_on_cuda_matches_cpu() -> None:
    snn, x, steps = _snn(dtif.DTIF(alpha=4.0)), _images(), 16
    policy = _policy(snn, x, steps)
    cpu = snn.simulate(x, steps, exit=policy)
    gpu = snn.to("cuda").simulate(x.cuda(), steps, exit=policy)
    assert gpu.exit_steps is not None and cpu.exit_steps is not None
    assert (gpu.exit_steps.cpu() == cpu.exit_steps).float().mean() >= 0.9  # float rounding
    torch.testing.assert_close(gpu.synops.cpu(), cpu.synops, rtol=0.05, atol=1.0)
