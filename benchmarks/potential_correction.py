"""Per-channel mean-error corrections after `dtif-auto`, judged on held-out TRAINING images.

An experiment, not part of the package. After the per-layer search of `dtif-auto`, each
spiking layer in graph order gets a per-channel correction computed from calibration images
(the 1,000 training images of `latency.py`; never the test split). Its deficit is
D(T) = T * min(a, lambda) - S(T), with a the ANN's activation and S(T) the layer's summed
output, averaged over the batch and the channel's positions, in threshold units:

- `potential`: V(0) += the mean of D(T) over T = 1..H (a fixed lag, paid back once);
- `centered`: the same minus its mean over channels (the searched layer v0 is kept);
- `bias`: a constant current D(H) / H per step (a rate error, paid at every step);
- `guarded`: `potential` at gain 0, 0.5 or 1 per layer, whichever gives the lowest
  `calibrate_dtif` loss on its 128 search images (gain 0 keeps the layer as it was).

The network is `dtif-auto` with the alpha and v0 that `latency.py` chose (read from its JSON).
Each variant is evaluated on the same 1,000 held-out training images as
`calibration_validation.py` and printed as one JSON line.

    python benchmarks/potential_correction.py MODEL [VARIANTS] [H]
    python benchmarks/potential_correction.py vgg16 base,potential,centered,bias,guarded 32
"""

import json
import sys
import time
from pathlib import Path

import torch
from calibration_validation import held_out
from latency import CHECKPOINTS, RECIPES

from dtif.calibrate import _loss, search_images
from dtif.checkpoint import load_checkpoint
from dtif.convert.normalize import CalibrationData, PercentileNorm
from dtif.convert.pipeline import convert
from dtif.metrics.layer_error import ann_activations
from dtif.neurons import DTIFParams
from dtif.neurons.module import _DYNAMICS, SpikingNeuron, channel_view
from dtif.sim.engine import simulate
from dtif.sim.evaluate import evaluate

SHIFTS: dict[str, torch.Tensor] = {}  # layer -> per-channel V(0) shift, threshold units
_forward = SpikingNeuron.forward


def _shifted_forward(self: SpikingNeuron, x: torch.Tensor) -> torch.Tensor:
    """SpikingNeuron.forward with V(0) += SHIFTS[layer] (set before the layer's first step)."""
    shift = SHIFTS.get(self.layer_name)
    ctx = self.context()
    if shift is not None and ctx.mode != "fanout" and self.layer_name not in ctx.states:
        xt, static = self.split_time(x)
        init, _ = _DYNAMICS[type(self.params)]
        state = init(xt if static else xt[0], self.params)
        state.v.add_(channel_view(shift, state.v.ndim, 1))
        ctx.states[self.layer_name] = state
    return _forward(self, x)


SpikingNeuron.forward = _shifted_forward  # type: ignore[method-assign]


def deficits(snn, neurons, acts, x, i, lo, hi):
    """Mean over T = lo..hi of layer i's deficit D(T), per channel, in threshold units."""
    m, a, batch = neurons[i], acts[i], x.shape[0]
    lam = channel_view(m.scale, a.ndim, 1)
    target = torch.minimum(a, lam).double()
    total = torch.zeros_like(target)
    acc = torch.zeros_like(target)
    seen = [0]

    def hook(_m, _args, y):
        for y_t in y.view(-1, batch, *y.shape[1:]):
            total.add_(y_t)
            seen[0] += 1
            if lo <= seen[0] <= hi:
                acc.add_(seen[0] * target - total)

    handle = m.register_forward_hook(hook)
    try:
        simulate(snn, x, hi, batch_chunk=batch, record=False)
    finally:
        handle.remove()
    dims = [0, *range(2, a.ndim)]
    per_channel = (acc / (hi - lo + 1)).mean(dim=dims)
    return (per_channel / m.scale.double()).float()


def main() -> None:
    model_name = sys.argv[1]
    variants = sys.argv[2].split(",") if len(sys.argv) > 2 else ["base", "potential", "guarded"]
    horizon = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    torch.set_num_threads(2)
    tag = f"fashion-mnist-{model_name}-w{RECIPES[model_name][0]:g}"
    model = load_checkpoint(CHECKPOINTS / f"{tag}.pt").model.eval()
    source = Path(f"benchmarks/results/latency_{tag}_T128_n2000.json")
    used = json.loads(source.read_text())["methods"]["dtif-auto"]["neuron_used"]
    params = DTIFParams(
        alpha=tuple(used["alpha"]), v0=tuple(used["v0"]), theta_min=used["theta_min"]
    )
    calib, xs, ys = held_out(1000)
    loader = [(xs[i : i + 250], ys[i : i + 250]) for i in range(0, 1000, 250)]
    images = torch.cat(list(CalibrationData(calib)))
    search_x = search_images(CalibrationData(calib), 128, seed=0)  # as calibrate_dtif's
    for variant in variants:
        SHIFTS.clear()
        snn = convert(model, calib, neuron=params, norm=PercentileNorm(99.9))
        neurons = [m for m in snn.layers() if isinstance(m, SpikingNeuron)]
        x = images[:256]
        acts = ann_activations(snn.ann, x)
        snn.profile(tuple(x.shape[1:]))
        with torch.inference_mode():
            ann_logits = snn.ann(search_x)
        gains: list[float] = []
        t0 = time.time()
        handles = []
        for i, m in enumerate(neurons):
            if variant == "base":
                break
            if variant == "bias":
                d = deficits(snn, neurons, acts, x, i, horizon, horizon) / horizon
                current = channel_view(d * m.scale, acts[i].ndim, 1)
                handles.append(m.register_forward_pre_hook(lambda _m, a, c=current: (a[0] + c,)))
                continue
            d = deficits(snn, neurons, acts, x, i, 1, horizon)
            if variant == "centered":
                d = d - d.mean()
            if variant != "guarded":
                SHIFTS[m.layer_name] = d
                continue
            best = None
            for g in (0.0, 0.5, 1.0):
                SHIFTS[m.layer_name] = d * g
                loss, _ = _loss(snn, search_x, ann_logits, horizon)
                if best is None or loss < best[0] - 1e-9:
                    best = (loss, g)
            SHIFTS[m.layer_name] = d * best[1]
            gains.append(best[1])
        spent = time.time() - t0
        ev = evaluate(snn, loader, 128, progress=False)
        acc = [round(a * 100, 2) for a in ev.accuracy]
        print(
            json.dumps(
                {
                    "model": model_name,
                    "variant": variant,
                    "horizon": horizon,
                    "correction_s": round(spent),
                    "gains": gains,
                    "acc_pow2": {t: acc[t - 1] for t in (1, 2, 4, 8, 16, 32, 64, 128)},
                    "L1": ev.latency(1.0),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
