"""Model registry: one ``@register_model`` entry per variant, ``create_model`` the only factory.

Follows timm (``timm/models/_registry.py``): each architecture file registers its variants
by name; callers build models only through :func:`create_model`. :class:`ModelSpec`
records the name and arguments so that a checkpoint can rebuild the same architecture.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from torch import nn

from dtif.errors import InputError

__all__ = ["ModelSpec", "create_model", "model_names", "register_model"]

ModelFn = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelFn)

_MODELS: dict[str, ModelFn] = {}

#: Arguments every entry function takes (keyword-only), validated by :func:`create_model`.
COMMON_ARGS: tuple[str, ...] = ("num_classes", "in_channels", "image_size", "width")


def register_model(fn: F) -> F:
    """Register a model entry function under its ``__name__``.

    The function must take the keyword arguments ``num_classes``, ``in_channels``,
    ``image_size`` and ``width``; any further keyword arguments are model-specific.

    Args:
        fn: Entry function returning a freshly built ``nn.Module``.

    Returns:
        ``fn`` unchanged.

    Raises:
        InputError: If the name is already registered or ``fn`` lacks a common argument.
    """
    name = fn.__name__
    if name in _MODELS:
        raise InputError(f"model {name!r} is already registered; pick another function name")
    params = inspect.signature(fn).parameters
    missing = [a for a in COMMON_ARGS if a not in params]
    if missing:
        raise InputError(f"model entry {name!r} must accept keyword arguments {missing}")
    _MODELS[name] = fn
    return fn


def model_names() -> list[str]:
    """Return the registered model names, sorted."""
    return sorted(_MODELS)


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive int, got {value!r}")
    return value


def create_model(
    name: str,
    num_classes: int = 10,
    in_channels: int = 1,
    image_size: int = 28,
    width: float = 1.0,
    **kw: Any,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: Registered model name (see :func:`model_names`).
        num_classes: Number of output logits.
        in_channels: Input channels (1 for MNIST, 3 for CIFAR).
        image_size: Height = width of the square input in pixels.
        width: Channel multiplier; every layer keeps at least one channel.
        **kw: Model-specific keyword arguments (e.g. ``dropout``).

    Returns:
        A new model in training mode, mapping ``[B, in_channels, image_size, image_size]``
        to ``[B, num_classes]``.

    Raises:
        InputError: If ``name`` is unknown, an argument is out of range, or ``kw`` holds an
            argument the model does not accept.
    """
    fn = _MODELS.get(name)
    if fn is None:
        raise InputError(f"unknown model {name!r}; valid names: {', '.join(model_names())}")
    _check_positive_int("num_classes", num_classes)
    _check_positive_int("in_channels", in_channels)
    _check_positive_int("image_size", image_size)
    if (
        isinstance(width, bool)
        or not isinstance(width, (int, float))
        or not math.isfinite(width)
        or width <= 0
    ):
        raise InputError(f"width must be a finite number > 0, got {width!r}")
    params = inspect.signature(fn).parameters
    extra = sorted(set(kw) - set(params) - set(COMMON_ARGS))
    if extra:
        accepted = sorted(set(params) - set(COMMON_ARGS))
        raise InputError(
            f"model {name!r} does not accept {extra}; its extra arguments are {accepted}"
        )
    return fn(
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        width=float(width),
        **kw,
    )


@dataclass(frozen=True)
class ModelSpec:
    """Name and arguments that rebuild a model through :func:`create_model`.

    Store :meth:`to_dict` in a checkpoint; rebuild with ``ModelSpec.from_dict(d).build()``.

    Attributes:
        name: Registered model name.
        num_classes: Number of output logits.
        in_channels: Input channels.
        image_size: Input height = width in pixels.
        width: Channel multiplier.
        kwargs: Model-specific keyword arguments (read-only mapping).
    """

    name: str
    num_classes: int = 10
    in_channels: int = 1
    image_size: int = 28
    width: float = 1.0
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Freeze the mapping so the spec cannot change after construction.
        object.__setattr__(self, "kwargs", MappingProxyType(dict(self.kwargs)))

    def build(self) -> nn.Module:
        """Build the model this spec describes.

        Returns:
            A new model from :func:`create_model`.

        Raises:
            InputError: As :func:`create_model`.
        """
        return create_model(
            self.name,
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            image_size=self.image_size,
            width=self.width,
            **self.kwargs,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-friendly dict of the spec."""
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "width": self.width,
            "kwargs": dict(self.kwargs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Rebuild a spec from :meth:`to_dict` output.

        Args:
            data: Mapping with key ``name`` and optionally the other fields.

        Returns:
            The spec.

        Raises:
            InputError: If ``name`` is missing or an unknown key is present.
        """
        known = {"name", *COMMON_ARGS, "kwargs"}
        unknown = sorted(set(data) - known)
        if "name" not in data or unknown:
            raise InputError(
                f"model spec needs key 'name' and only keys {sorted(known)}; got {sorted(data)}"
            )
        return cls(**dict(data))
