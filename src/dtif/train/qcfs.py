"""Make a ReLU network QCFS-ready for fine-tuning: each lambda from its ReLU's calibration outputs."""

from __future__ import annotations

import copy

import torch
from torch import nn

from dtif.checkpoint import load_checkpoint
from dtif.convert.normalize import CalibrationData, Observer, observe
from dtif.errors import InputError
from dtif.models import ModelSpec
from dtif.models.qcfs import check_levels, swap_relu

#: Percentile of each ReLU's outputs (zeros included) that sets its initial lambda.
DEFAULT_INIT_PERCENTILE = 99.9


def relu_percentiles(model: nn.Module, calib: object, p: float) -> dict[str, float]:
    """The ``p``-th percentile of each ``nn.ReLU`` module's outputs, zeros included.

    Runs ``calib`` through ``model`` in eval mode (twice: the max, then a histogram), with
    forward hooks that are removed afterwards; the model's mode is restored.

    Args:
        model: the network.
        calib: calibration images, as ``dtif.convert``'s ``calib`` (training images).
        p: the percentile in ``(0, 100]``.

    Returns:
        lambda per ReLU module name; a ReLU silent on all images gets 1.

    Raises:
        InputError: ``p`` is out of range.
        CalibrationError: empty or bad calibration data, or a batch that does not fit.
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p <= 100.0:
        raise InputError(f"the initial-lambda percentile must be in (0, 100], got {p!r}")
    data = CalibrationData(calib)
    found = model.named_modules(remove_duplicate=False)
    relus = [(name, m) for name, m in found if isinstance(m, nn.ReLU) and name]
    observers: dict[int, Observer] = {id(m): Observer(channelwise=False) for _, m in relus}
    hooks = [
        m.register_forward_hook(lambda mod, _inp, out: observers[id(mod)](out))
        for m in {id(m): m for _, m in relus}.values()
    ]
    was_training = model.training
    model.eval()
    try:
        observe(model, data, observers.values(), passes=2)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    out = {}
    for name, m in relus:
        obs = observers[id(m)]
        value = float(obs.percentile(p)) if obs.max is not None else 0.0
        out[name] = value if value > 0 else 1.0
    return out


def to_qcfs(
    model: nn.Module,
    levels: int,
    calib: object = None,
    scale: float | None = None,
    p: float = DEFAULT_INIT_PERCENTILE,
) -> nn.Module:
    """A copy of ``model`` with every ``nn.ReLU`` module swapped for a QCFS, ready to fine-tune.

    Each lambda starts at the ``p``-th percentile of its ReLU's outputs on ``calib`` (training
    images), or at ``scale`` for every layer. Only ``nn.ReLU`` modules are swapped; functional
    ReLUs (``F.relu``, ``torch.relu``, ``x.relu()``, ``x.clamp(min=0)``) stay ReLUs, and a
    ReLU module used at several places becomes one QCFS with one lambda. The user's model is
    not changed.

    Args:
        model: the trained ReLU network.
        levels: QCFS levels L (4 or 8 are usual).
        calib: calibration images (a tensor or an iterable of batches), or ``None`` with
            ``scale``.
        scale: one initial lambda for every layer, instead of ``calib``.
        p: the percentile of the ReLU outputs (zeros included) used with ``calib``.

    Returns:
        The QCFS copy, in the training mode of ``model``.

    Raises:
        InputError: bad ``levels``, ``scale`` or ``p``; neither or both of ``calib`` and
            ``scale``; or no ``nn.ReLU`` module in the model.
        CalibrationError: bad calibration data.
    """
    check_levels(levels)
    if (calib is None) == (scale is None):
        raise InputError("give either calib (calibration images) or scale (one lambda), not both")
    clone = copy.deepcopy(model)
    scales = relu_percentiles(clone, calib, p) if calib is not None else scale
    swap_relu(clone, levels, scales)  # type: ignore[arg-type]  # a dict or a float
    return clone


def _activation(spec: ModelSpec) -> tuple[str, int | None]:
    return str(spec.kwargs.get("activation", "relu")), spec.kwargs.get("levels")


def init_from_checkpoint(
    path: str, spec: ModelSpec, dataset: str, calib: torch.Tensor, p: float
) -> nn.Module:
    """The model ``spec`` describes, with the weights of the ANN checkpoint ``path``.

    A ReLU checkpoint fine-tuned as QCFS gets each lambda from :func:`relu_percentiles` on
    ``calib``; a QCFS checkpoint keeps its lambdas (its levels may change).

    Raises:
        CheckpointError: the file is not a loadable ANN checkpoint.
        InputError: it holds another dataset, model, width or model argument, or is a QCFS
            checkpoint to be fine-tuned as a ReLU network.
    """
    ckpt = load_checkpoint(path)
    source, target = ckpt.spec, spec
    src_act, _ = _activation(source)
    dst_act, levels = _activation(target)
    others = {k: v for k, v in source.kwargs.items() if k not in ("activation", "levels")}
    wanted = {k: v for k, v in target.kwargs.items() if k not in ("activation", "levels")}
    same = (
        ckpt.dataset == dataset
        and (source.name, source.width, source.num_classes)
        == (target.name, target.width, target.num_classes)
        and (source.in_channels, source.image_size) == (target.in_channels, target.image_size)
        and others == wanted
    )
    if not same:
        raise InputError(
            f"--init-from {path} holds {source.name} (width {source.width:g}, {others or 'no extra arguments'}) "
            f"trained on {ckpt.dataset}; this run trains {target.name} (width {target.width:g}, "
            f"{wanted or 'no extra arguments'}) on {dataset}. Pass a checkpoint of the same dataset, model "
            "and width (--model/--width/--dataset)."
        )
    model = ckpt.model
    if src_act == "relu" and dst_act == "qcfs":
        model = to_qcfs(model, levels, calib, p=p)  # type: ignore[arg-type]  # qcfs has levels
    elif src_act == "qcfs" and dst_act == "relu":
        raise InputError(
            f"--init-from {path} is a QCFS checkpoint; fine-tune it with --activation qcfs "
            "--levels L, or start a ReLU run from a ReLU checkpoint"
        )
    built = target.build()
    built.load_state_dict(model.state_dict())
    return built
