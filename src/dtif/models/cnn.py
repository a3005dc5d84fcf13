"""Small Diehl-style CNN for MNIST/CIFAR-sized inputs."""

from __future__ import annotations

from torch import Tensor, nn

from dtif.errors import InputError
from dtif.models.layers import check_dropout, conv_bn_relu, scale_channels
from dtif.models.qcfs import Activation, activation_factory
from dtif.models.registry import register_model

__all__ = ["CNN", "cnn"]


class CNN(nn.Module):
    """conv32-conv64-pool-conv64-pool-fc256-fc, all conv-BN-ReLU with average pooling.

    Args:
        num_classes: Number of output logits.
        in_channels: Input channels.
        image_size: Input height = width in pixels (at least 4).
        width: Channel multiplier for the convs and the hidden linear layer.
        dropout: Dropout probability before the last linear layer.
        activation: ``"relu"`` or ``"qcfs"`` (see ``dtif.models.qcfs``).
        levels: QCFS levels (``activation="qcfs"`` only).

    Raises:
        InputError: If ``image_size < 4``, ``dropout`` is not in ``[0, 1)``, or the
            activation or levels are invalid.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        width: float = 1.0,
        dropout: float = 0.2,
        activation: Activation = "relu",
        levels: int | None = None,
    ) -> None:
        super().__init__()
        act = activation_factory(activation, levels)
        if image_size < 4:
            raise InputError(f"cnn needs image_size >= 4 (two 2x2 pools), got {image_size}")
        c1, c2, c3 = (scale_channels(c, width) for c in (32, 64, 64))
        hidden = scale_channels(256, width)
        side = image_size // 2 // 2  # AvgPool2d(2) floors odd sizes
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, c1, act=act),
            conv_bn_relu(c1, c2, act=act),
            nn.AvgPool2d(2),
            conv_bn_relu(c2, c3, act=act),
            nn.AvgPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c3 * side * side, hidden),
            act(),
            nn.Dropout(check_dropout(dropout)),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Map ``x: [B, C, H, W]`` to logits ``[B, num_classes]``."""
        return self.classifier(self.features(x))


@register_model
def cnn(
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    width: float,
    dropout: float = 0.2,
    activation: Activation = "relu",
    levels: int | None = None,
) -> CNN:
    """Diehl-style CNN. About 0.86 M parameters at width 1 for 1x28x28 input.

    Args:
        num_classes: Number of output logits.
        in_channels: Input channels.
        image_size: Input height = width in pixels (at least 4).
        width: Channel multiplier.
        dropout: Dropout probability before the last linear layer.
        activation: ``"relu"`` or ``"qcfs"``.
        levels: QCFS levels (``activation="qcfs"`` only).

    Returns:
        The model.
    """
    return CNN(num_classes, in_channels, image_size, width, dropout, activation, levels)
