"""CIFAR-style ResNets (3x3 stem, no max pool) built from block counts per stage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from torch import Tensor, nn

from dtif.models.layers import conv_bn_relu, scale_channels
from dtif.models.qcfs import Activation, activation_factory
from dtif.models.registry import register_model

__all__ = ["RESNET_CFGS", "BasicBlock", "ResNet", "ResNetCfg", "resnet18", "resnet20"]

#: ``(stem_channels, ((channels, num_blocks, stride), ...))`` at width 1.
ResNetCfg = tuple[int, tuple[tuple[int, int, int], ...]]

RESNET_CFGS: Final[dict[str, ResNetCfg]] = {
    "resnet18": (64, ((64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2))),
    "resnet20": (16, ((16, 3, 1), (32, 3, 2), (64, 3, 2))),
}


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus shortcut, then ReLU.

    The shortcut is the identity (an empty ``Sequential``, traced away by torch.fx) or,
    when stride or channels change, a 1x1 conv with that stride followed by BN.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the first conv and of the shortcut.
        act: Builds each activation module (``nn.ReLU`` or a QCFS factory).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        act: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = act()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu2 = act()

    def forward(self, x: Tensor) -> Tensor:
        """Map ``x: [B, in, H, W]`` to ``[B, out, ceil(H / stride), ceil(W / stride)]``."""
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return self.relu2(out)


class ResNet(nn.Module):
    """Stem conv3x3-BN-ReLU (stride 1), BasicBlock stages, global average pool, linear.

    Args:
        cfg: ``(stem_channels, ((channels, num_blocks, stride), ...))`` at width 1.
        num_classes: Number of output logits.
        in_channels: Input channels.
        width: Channel multiplier.
        activation: ``"relu"`` or ``"qcfs"`` (see ``dtif.models.qcfs``).
        levels: QCFS levels (``activation="qcfs"`` only).
    """

    def __init__(
        self,
        cfg: ResNetCfg,
        num_classes: int,
        in_channels: int,
        width: float = 1.0,
        activation: Activation = "relu",
        levels: int | None = None,
    ) -> None:
        super().__init__()
        act = activation_factory(activation, levels)
        stem_channels, stages = cfg
        channels = scale_channels(stem_channels, width)
        self.stem = conv_bn_relu(in_channels, channels, act=act)
        blocks: list[nn.Module] = []
        for stage_channels, num_blocks, stride in stages:
            out = scale_channels(stage_channels, width)
            for i in range(num_blocks):
                blocks.append(BasicBlock(channels, out, stride if i == 0 else 1, act))
                channels = out
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``x: [B, C, H, W]`` to logits ``[B, num_classes]``."""
        return self.fc(self.flatten(self.pool(self.layers(self.stem(x)))))


@register_model
def resnet18(
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    width: float,
    activation: Activation = "relu",
    levels: int | None = None,
) -> ResNet:
    """CIFAR ResNet-18. About 11.17 M parameters at width 1 for 1x28x28 input.

    Args:
        num_classes: Number of output logits.
        in_channels: Input channels.
        image_size: Input height = width in pixels (any size >= 1; unused when building).
        width: Channel multiplier.
        activation: ``"relu"`` or ``"qcfs"``.
        levels: QCFS levels (``activation="qcfs"`` only).

    Returns:
        The model.
    """
    del image_size  # global average pooling makes the head size-independent
    return ResNet(RESNET_CFGS["resnet18"], num_classes, in_channels, width, activation, levels)


@register_model
def resnet20(
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    width: float,
    activation: Activation = "relu",
    levels: int | None = None,
) -> ResNet:
    """CIFAR ResNet-20 (He et al. 2016). About 0.27 M parameters at width 1 for 1x28x28 input.

    Args:
        num_classes: Number of output logits.
        in_channels: Input channels.
        image_size: Input height = width in pixels (any size >= 1; unused when building).
        width: Channel multiplier.
        activation: ``"relu"`` or ``"qcfs"``.
        levels: QCFS levels (``activation="qcfs"`` only).

    Returns:
        The model.
    """
    del image_size  # global average pooling makes the head size-independent
    return ResNet(RESNET_CFGS["resnet20"], num_classes, in_channels, width, activation, levels)
