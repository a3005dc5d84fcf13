"""VGG with average pooling and BatchNorm, built from layer lists (as timm's ``vgg.py``)."""

from __future__ import annotations

from typing import Final, Literal

from torch import Tensor, nn

from dtif.models.layers import check_dropout, conv_bn_relu, scale_channels
from dtif.models.qcfs import Activation, activation_factory
from dtif.models.registry import register_model

__all__ = ["VGG", "VGG_CFGS", "vgg11", "vgg16"]

#: ``int`` = conv3x3-BN-ReLU with that many channels at width 1; ``"P"`` = AvgPool2d(2).
VGG_CFGS: Final[dict[str, tuple[int | Literal["P"], ...]]] = {
    "vgg11": (64, "P", 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P"),
    "vgg16": (
        64, 64, "P",
        128, 128, "P",
        256, 256, 256, "P",
        512, 512, 512, "P",
        512, 512, 512, "P",
    ),
}  # fmt: skip


class VGG(nn.Module):
    """VGG feature stack, global average pool, linear classifier.

    A pool is skipped when the feature map is already 1x1, so small inputs (8x8, 28x28)
    work; spatial size is tracked while building, never read from data.

    Args:
        cfg: Layer list (see :data:`VGG_CFGS`).
        num_classes: Number of output logits.
        in_channels: Input channels.
        image_size: Input height = width in pixels.
        width: Channel multiplier.
        dropout: Dropout probability before the classifier.
        activation: ``"relu"`` or ``"qcfs"`` (see ``dtif.models.qcfs``).
        levels: QCFS levels (``activation="qcfs"`` only).
    """

    def __init__(
        self,
        cfg: tuple[int | Literal["P"], ...],
        num_classes: int,
        in_channels: int,
        image_size: int,
        width: float = 1.0,
        dropout: float = 0.0,
        activation: Activation = "relu",
        levels: int | None = None,
    ) -> None:
        super().__init__()
        act = activation_factory(activation, levels)
        layers: list[nn.Module] = []
        channels, side = in_channels, image_size
        for item in cfg:
            if item == "P":
                if side > 1:
                    layers.append(nn.AvgPool2d(2))
                    side //= 2
            else:
                out = scale_channels(item, width)
                layers.append(conv_bn_relu(channels, out, act=act))
                channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(check_dropout(dropout))
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``x: [B, C, H, W]`` to logits ``[B, num_classes]``."""
        return self.fc(self.dropout(self.flatten(self.pool(self.features(x)))))


@register_model
def vgg11(
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    width: float,
    dropout: float = 0.0,
    activation: Activation = "relu",
    levels: int | None = None,
) -> VGG:
    """VGG-11 (BN, average pool). About 9.23 M parameters at width 1 for 1x28x28 input.

    Args:
        num_classes: Number of output logits.
        in_channels: Input channels.
        image_size: Input height = width in pixels.
        width: Channel multiplier.
        dropout: Dropout probability before the classifier.
        activation: ``"relu"`` or ``"qcfs"``.
        levels: QCFS levels (``activation="qcfs"`` only).

    Returns:
        The model.
    """
    return VGG(
        VGG_CFGS["vgg11"],
        num_classes,
        in_channels,
        image_size,
        width,
        dropout,
        activation,
        levels,
    )


@register_model
def vgg16(
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    width: float,
    dropout: float = 0.0,
    activation: Activation = "relu",
    levels: int | None = None,
) -> VGG:
    """VGG-16 (BN, average pool). About 14.72 M parameters at width 1 for 1x28x28 input.

    Args:
        num_classes: Number of output logits.
        in_channels: Input channels.
        image_size: Input height = width in pixels.
        width: Channel multiplier.
        dropout: Dropout probability before the classifier.
        activation: ``"relu"`` or ``"qcfs"``.
        levels: QCFS levels (``activation="qcfs"`` only).

    Returns:
        The model.
    """
    return VGG(
        VGG_CFGS["vgg16"],
        num_classes,
        in_channels,
        image_size,
        width,
        dropout,
        activation,
        levels,
    )
