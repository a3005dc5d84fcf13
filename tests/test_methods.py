"""Named methods: the calibrated ones (`dtif-auto`, `if-auto`) never read the test data, and
spec files with an `alpha_grid`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from dtif.errors import InputError
from dtif.methods import METHODS, get_method
from dtif.report.compare import compare_methods
from tests.helpers.nets import calibration_images, calibration_net

AUTO_SIGNED, IF_SIGNED = "dtif-auto-signed", "if-auto-signed"


class _Tracked:
    """A test loader that counts how often it is iterated."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.batches = [(x, y)]
        self.reads = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.reads += 1
        return iter(self.batches)


def test_calibrated_methods_never_read_the_test_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    import dtif.methods.recipe

    seen: list[int] = []
    real = dtif.methods.recipe.calibrate_dtif

    def spy(model: nn.Module, calib: object, **kw: Any) -> Any:
        seen.append(loader.reads)
        assert torch.equal(torch.as_tensor(calib), calib_x)  # only the calibration images
        return real(model, calib, **kw)

    monkeypatch.setattr(dtif.methods.recipe, "calibrate_dtif", spy)  # where Method.build looks
    calib_x = calibration_images()
    gen = torch.Generator().manual_seed(5)
    loader = _Tracked(torch.rand(10, 1, 8, 8, generator=gen), torch.randint(0, 3, (10,)))
    results = compare_methods(
        calibration_net(),
        calib_x,
        loader,
        [METHODS[m] for m in ("if-max", "dtif-auto", "if-auto", AUTO_SIGNED, IF_SIGNED)],
        num_steps=8,
        num_test=10,
        progress=False,
        log=lambda _: None,
    )
    assert seen == [1, 2, 3, 4]  # each calibration ran before that method's evaluation
    # The chosen values do not depend on the test data: another test set, same choice.
    other = _Tracked(torch.rand(10, 1, 8, 8, generator=gen), torch.randint(0, 3, (10,)))
    again = compare_methods(
        calibration_net(),
        calib_x,
        other,
        [METHODS["dtif-auto"]],
        8,
        10,
        progress=False,
        log=lambda _: None,
    )
    used = results["methods"]["dtif-auto"]["neuron_used"]
    assert again["methods"]["dtif-auto"]["neuron_used"] == used
    assert set(results["methods"]["if-auto"]["neuron_used"]["alpha"]) == {0.0}
    for name in (AUTO_SIGNED, IF_SIGNED):  # the signed methods searched with signed neurons
        assert results["methods"][name]["neuron_used"]["signed"] is True
    assert set(results["methods"][IF_SIGNED]["neuron_used"]["alpha"]) == {0.0}
    search = results["methods"]["dtif-auto"]["calibration"]["search"]
    assert search == again["methods"]["dtif-auto"]["calibration"]["search"]
    assert search["loss"] >= 0 and search["num_images"] == len(calib_x)
    assert "calibration" not in results["methods"]["if-max"]  # nothing was calibrated


def test_alpha_grid_in_a_spec_file(tmp_path: Path) -> None:
    spec = {
        "name": "mine",
        "neuron": {"type": "DTIF", "alpha": 4.0},
        "norm": {"type": "PercentileNorm", "p": 99.9},
        "auto": True,
        "alpha_grid": [0, 2],
    }
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(spec))
    method = get_method(str(path))
    assert method.auto and method.alpha_grid == (0.0, 2.0)
    assert method.to_dict()["alpha_grid"] == [0.0, 2.0]
    assert "alpha_grid" not in METHODS["dtif-auto"].to_dict()  # old results still resume
    path.write_text(json.dumps({**spec, "alpha_grid": "big"}))
    with pytest.raises(InputError, match="alpha_grid"):
        get_method(str(path))


@pytest.mark.parametrize("name", ["dtif-signed", "if-p99.9-v0.5-signed"])
def test_fixed_signed_methods_build_and_run(name: str) -> None:
    x = calibration_images()
    snn = METHODS[name].build(calibration_net(), x, "error", target_steps=2)
    assert all(m.params.signed for m in snn.neurons())
    res = snn.simulate(x[:8], 12)
    assert torch.isfinite(res.outputs).all()
    assert float(res.synops[-1]) > 0


def test_switch_method_chooses_k_on_calibration_images(tmp_path: Path) -> None:
    method = METHODS["dtif-auto-signed-switch"]
    assert "dynamic_steps_grid" not in METHODS["dtif-auto-signed"].to_dict()  # still resumes
    assert method.to_dict()["dynamic_steps_grid"] == list(method.dynamic_steps_grid)
    x = calibration_images()
    snn = method.build(calibration_net(), x, "error", target_steps=2)
    k = snn.meta["neuron"].dynamic_steps
    assert k is None or k in method.dynamic_steps_grid
    assert all(m.params.dynamic_steps == k and m.params.signed for m in snn.neurons())
    spec = {"neuron": {"type": "DTIF"}, "auto": True, "dynamic_steps_grid": [2, 4]}
    path = tmp_path / "switch.json"
    path.write_text(json.dumps(spec))
    assert get_method(str(path)).dynamic_steps_grid == (2, 4)
    path.write_text(json.dumps({**spec, "dynamic_steps_grid": [0]}))
    with pytest.raises(InputError, match="dynamic_steps_grid"):
        get_method(str(path))


def test_burst_methods_search_with_one_spike_then_burst(tmp_path: Path) -> None:
    x = calibration_images()
    for name in ("dtif-auto-signed-switch-bias", "if-auto-signed-bias"):
        plain = METHODS[name].build(calibration_net(), x, "error", target_steps=2)
        burst = METHODS[f"{name}-burst2"].build(calibration_net(), x, "error", target_steps=2)
        assert burst.meta["neuron"] == replace(plain.meta["neuron"], burst=2)  # same search
        assert all(m.params.burst == 2 for m in burst.neurons())
        assert METHODS[f"{name}-burst2"].to_dict()["burst"] == 2
        assert float(burst.simulate(x[:8], 12).synops[-1]) > 0
    path = tmp_path / "burst.json"
    path.write_text(json.dumps({"neuron": {"type": "IF"}, "burst": 3}))
    assert get_method(str(path)).burst == 3
    path.write_text(json.dumps({"neuron": {"type": "IF"}, "burst": 0}))
    with pytest.raises(InputError, match="burst"):
        get_method(str(path))


def test_burst4_methods_are_the_burst2_chain_with_up_to_4_spikes() -> None:
    chain = [
        "dtif-auto-signed-switch-bias-burst{}",
        "dtif-auto-signed-switch-bias-burst{}-spread",
        "dtif-auto-signed-switch-bias-burst{}-spread-mean-last",
        "dtif-auto-signed-switch-bias-burst{}-spread-mean-last-final",
        "if-auto-signed-bias-burst{}",
        "if-auto-signed-bias-burst{}-final",
    ]
    for pattern in chain:
        two, four = METHODS[pattern.format(2)], METHODS[pattern.format(4)]
        assert (two.burst, four.burst) == (2, 4)
        assert replace(four, name=two.name, description=two.description, burst=2) == two
    assert METHODS["if-auto-signed-bias-burst4-final"].alpha_grid == (0.0,)


def test_bias_calibration_never_reads_the_test_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    import dtif.methods.recipe

    seen: list[int] = []
    real = dtif.methods.recipe.calibrate_biases

    def spy(snn: Any, calib: object, steps: int, **kw: Any) -> Any:
        seen.append(loader.reads)
        assert torch.equal(torch.as_tensor(calib), calib_x)  # only the calibration images
        assert steps == dtif.methods.BIAS_STEPS
        return real(snn, calib, steps, **kw)

    monkeypatch.setattr(dtif.methods.recipe, "calibrate_biases", spy)
    calib_x = calibration_images()
    gen = torch.Generator().manual_seed(6)
    loader = _Tracked(torch.rand(10, 1, 8, 8, generator=gen), torch.randint(0, 3, (10,)))
    names = ("dtif-auto-signed-bias", "if-auto-signed-bias")
    results = compare_methods(
        calibration_net(),
        calib_x,
        loader,
        [METHODS[m] for m in names],
        num_steps=8,
        num_test=10,
        progress=False,
        log=lambda _: None,
    )
    # if-max, the reference, is evaluated first; each calibration ran before its evaluation
    assert seen == [1, 2]
    for name in names:
        assert results["methods"][name]["method"]["bias_steps"] == dtif.methods.BIAS_STEPS


def _qcfs_net() -> nn.Module:
    """The calibration net with its ReLUs swapped for QCFS (8 levels, lambda 2)."""
    from dtif.models.qcfs import swap_relu

    net = calibration_net()
    swap_relu(net, 8, 2.0)
    return net


def test_spread_methods_choose_v0_spread_on_calibration_images(tmp_path: Path) -> None:
    net = _qcfs_net()
    x = calibration_images()
    for name in ("dtif-auto-qcfs-signed", "if-auto-qcfs-signed"):
        method = METHODS[f"{name}-spread"]
        assert method.to_dict()["spread_grid"] == list(method.spread_grid)
        assert "spread_grid" not in METHODS[name].to_dict()  # its results still resume
        plain = METHODS[name].build(net, x, "error", target_steps=2)
        snn = method.build(net, x, "error", target_steps=2)
        spread = snn.meta["neuron"].v0_spread
        assert spread == 0.0 or spread in method.spread_grid
        assert snn.meta["neuron"] == replace(plain.meta["neuron"], v0_spread=spread)  # same search
        assert all(m.params.v0_spread == spread and m.params.signed for m in snn.neurons())
    relu = METHODS["dtif-auto-signed-switch-bias-burst2-spread"]
    snn = relu.build(calibration_net(), x, "error", target_steps=2)
    assert relu.burst == 2 and relu.bias_steps == METHODS["if-auto-signed-bias-spread"].bias_steps
    assert all(m.params.burst == 2 for m in snn.neurons())
    assert snn.meta["neuron"].v0_spread in (0.0, *relu.spread_grid)
    spec = {"neuron": {"type": "DTIF"}, "auto": True, "spread_grid": [0.5]}
    path = tmp_path / "spread.json"
    path.write_text(json.dumps(spec))
    assert get_method(str(path)).spread_grid == (0.5,)
    for bad in ([2.0], [], "0.5"):
        path.write_text(json.dumps({**spec, "spread_grid": bad}))
        with pytest.raises(InputError, match="spread_grid"):
            get_method(str(path))
    path.write_text(json.dumps({**spec, "auto": False}))  # a grid without a search
    with pytest.raises(InputError, match="auto"):
        get_method(str(path))


def test_mean_methods_choose_theta_input_on_calibration_images() -> None:
    x = calibration_images()
    name = "dtif-auto-signed-switch-bias"
    method = METHODS[f"{name}-mean"]
    assert method.to_dict()["theta_input_grid"] == ["mean"]
    assert "theta_input_grid" not in METHODS[name].to_dict()  # its results still resume
    plain = METHODS[name].build(calibration_net(), x, "error", target_steps=2)
    snn = method.build(calibration_net(), x, "error", target_steps=2)
    rule = snn.meta["neuron"].theta_input
    assert rule in ("present", "mean")
    assert snn.meta["neuron"] == replace(plain.meta["neuron"], theta_input=rule)  # same search
    assert all(m.params.theta_input == rule for m in snn.neurons())
    with pytest.raises(InputError, match="theta_input_grid"):
        replace(METHODS["if-max"], theta_input_grid=("mean",))


def test_mean_last_chooses_the_rule_after_the_bias_calibration(tmp_path: Path) -> None:
    from dtif.calibrate.search import search_loss

    x = calibration_images()
    name = "dtif-auto-signed-switch-bias"
    method = METHODS[f"{name}-mean-last"]
    assert method.to_dict()["theta_input_last"] is True
    assert "theta_input_last" not in METHODS[f"{name}-mean"].to_dict()  # its results resume
    plain = METHODS[name].build(calibration_net(), x, "error", target_steps=2)
    snn = method.build(calibration_net(), x, "error", target_steps=2)
    losses = snn.meta["calibration"]["theta_input_losses"]
    assert set(losses) == {"present", "mean"}
    rule = snn.meta["neuron"].theta_input
    assert losses[rule] == min(losses.values())
    assert snn.meta["neuron"] == replace(plain.meta["neuron"], theta_input=rule)  # same search
    assert all(m.params.theta_input == rule for m in snn.neurons())
    assert snn.meta["bias_calibration"]["steps"] == method.bias_steps
    # the present rule's network is the plain method's, biases included
    assert losses["present"] == pytest.approx(search_loss(plain, x, 2)[0])
    if rule == "present":
        offsets = [m.input_offset for m in snn.neurons()]
        assert all(torch.equal(a, m.input_offset) for a, m in zip(offsets, plain.neurons()))
    gen = torch.Generator().manual_seed(3)
    loader = [(torch.rand(6, 1, 8, 8, generator=gen), torch.randint(0, 3, (6,)))]
    saved = compare_methods(
        calibration_net(), x, loader, [method], 16, 6, progress=False, log=lambda _: None
    )
    calibration = saved["methods"][method.name]["calibration"]  # target_steps 16 // 8 = 2
    assert calibration["search"]["theta_input_losses"] == pytest.approx(losses)
    assert calibration["bias"]["steps"] == method.bias_steps
    spec = {"neuron": {"type": "DTIF"}, "auto": True, "theta_input_grid": ["mean"]}
    path = tmp_path / "last.json"
    path.write_text(json.dumps({**spec, "theta_input_last": True, "bias_steps": 2}))
    loaded = get_method(str(path))
    assert loaded.theta_input_grid == ("mean",) and loaded.theta_input_last
    for bad in ({"theta_input_grid": ["median"]}, {"theta_input_last": "yes"}):
        path.write_text(json.dumps({**spec, **bad}))
        with pytest.raises(InputError, match="theta_input"):
            get_method(str(path))
    with pytest.raises(InputError, match="theta_input_last"):
        replace(METHODS[name], theta_input_last=True)  # nothing to choose from


def test_two_pass_methods_search_again_from_the_first_pass(tmp_path: Path) -> None:
    from dtif.calibrate.search import search_loss

    net = _qcfs_net()
    x = calibration_images()
    for name in ("dtif-auto-qcfs-signed-spread-mean", "if-auto-qcfs-signed-spread"):
        method = METHODS[f"{name}-2pass"]
        assert method.to_dict()["search_passes"] == 2
        assert "search_passes" not in METHODS[name].to_dict()  # its results still resume
        once = METHODS[name].build(net, x, "error", target_steps=2)
        twice = method.build(net, x, "error", target_steps=2)
        first, second = once.meta["neuron"], twice.meta["neuron"]
        # the second pass changes alpha and v0 only, and never raises the search's loss
        assert second == replace(first, alpha=second.alpha, v0=second.v0)
        assert twice.meta["calibration"]["passes"] == 2
        loss_once, loss_twice = search_loss(once, x, 2)[0], search_loss(twice, x, 2)[0]
        assert twice.meta["calibration"]["loss"] == pytest.approx(loss_twice)
        assert loss_twice <= loss_once + 1e-9
        if name.startswith("if-"):
            assert set(second.alpha) == {0.0}  # the control stays IF
    spec = {"neuron": {"type": "DTIF"}, "auto": True, "search_passes": 3}
    path = tmp_path / "passes.json"
    path.write_text(json.dumps(spec))
    assert get_method(str(path)).search_passes == 3
    for bad in (0, "2", True):
        path.write_text(json.dumps({**spec, "search_passes": bad}))
        with pytest.raises(InputError, match="search_passes"):
            get_method(str(path))
    with pytest.raises(InputError, match="search_passes"):
        replace(METHODS["if-max"], search_passes=2)  # nothing to search


def test_final_pass_searches_the_finished_network_then_its_biases_again(tmp_path: Path) -> None:
    import dtif
    from dtif.calibrate.search import search_loss

    x = calibration_images()
    for name in (
        "dtif-auto-signed-switch-bias-burst2-spread-mean-last",
        "if-auto-signed-bias-burst2",
    ):
        method = METHODS[f"{name}-final"]
        assert method.to_dict()["final_pass"] is True
        assert "final_pass" not in METHODS[name].to_dict()  # its results still resume
        plain = METHODS[name].build(calibration_net(), x, "error", target_steps=2)
        final = method.build(calibration_net(), x, "error", target_steps=2)
        first, last = plain.meta["neuron"], final.meta["neuron"]
        # the pass changes alpha and v0 only; burst and rule stay as the finished network's
        assert last == replace(first, alpha=last.alpha, v0=last.v0)
        assert all(m.params.burst == 2 for m in final.neurons())
        calibration = final.meta["calibration"]
        assert calibration["final_pass_loss"] <= search_loss(plain, x, 2)[0] + 1e-9
        if "theta_input_losses" in plain.meta["calibration"]:
            assert (
                calibration["theta_input_losses"] == plain.meta["calibration"]["theta_input_losses"]
            )
        # the offsets are calibrated afresh: the same as calibrating the new values once
        again = dtif.convert(calibration_net(), x, neuron=last, norm=method.norm, maxpool="error")
        dtif.calibrate_biases(again, x, method.bias_steps)
        for a, b in zip(final.neurons(), again.neurons()):
            assert torch.allclose(a.input_offset, b.input_offset, atol=1e-6)
        if name.startswith("if-"):
            assert set(last.alpha) == {0.0}  # the control stays IF
    path = tmp_path / "final.json"
    spec = {"neuron": {"type": "DTIF"}, "auto": True, "final_pass": True}
    path.write_text(json.dumps(spec))
    assert get_method(str(path)).final_pass
    path.write_text(json.dumps({**spec, "final_pass": "yes"}))
    with pytest.raises(InputError, match="final_pass"):
        get_method(str(path))
    with pytest.raises(InputError, match="final_pass"):
        replace(METHODS["if-max"], final_pass=True)  # nothing to search


def test_channelwise_methods_are_their_bases_with_one_scale_per_channel() -> None:
    x = calibration_images()
    for base in (
        "dtif-auto-signed-switch-bias-burst2-spread-mean-last",
        "if-auto-signed-bias-burst2",
        "if-auto-signed-bias-burst4",
    ):
        cw = METHODS[f"{base}-cw"]
        assert cw.norm.channelwise and not METHODS[base].norm.channelwise
        assert (
            replace(cw, name=base, description=METHODS[base].description, norm=METHODS[base].norm)
            == METHODS[base]
        )
        assert cw.to_dict()["norm"]["channelwise"] is True
    snn = METHODS["if-auto-signed-bias-burst2-cw"].build(
        calibration_net(), x, "error", target_steps=2
    )
    scales = [v for k, v in snn.state_dict().items() if k.endswith(".scale")]
    assert scales and all(s.ndim == 1 and s.numel() > 1 for s in scales)
    assert any(not torch.allclose(s, s[0].expand_as(s)) for s in scales)  # not one per layer
    assert all(m.params.burst == 2 for m in snn.neurons())
    assert float(snn.simulate(x[:8], 12).synops[-1]) > 0
