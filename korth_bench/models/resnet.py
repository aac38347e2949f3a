"""CIFAR ResNet of He et al. (2016), section 4.2: depth 6n+2, three stages of 16/32/64 channels.

Layout: 3x3 conv stem (16w channels) + BN + ReLU; three stages of ``n`` post-activation
BasicBlocks with 16w, 32w, 64w channels (stride 2 on entering stages 2 and 3); global average
pool; linear classifier. ``w`` is the integer ``width``. Option A shortcuts (the paper's CIFAR
setting) have no parameters, so ResNet-20/56/110 have 0.27M/0.85M/1.7M parameters.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from korth_bench.models._api import (
    DepthRule,
    check_choice,
    check_dropout,
    check_num_classes,
    check_width,
    init_weights,
    register,
)

SHORTCUTS = ("A", "B")
DEPTHS = DepthRule(step=6, offset=2)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and append zero channels (no parameters)."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def shortcut(kind: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity where the shape is kept; otherwise option A (zero padding) or B (1x1 conv + BN)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "A":
        return ZeroPadShortcut(stride, out_channels - in_channels)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """conv-BN-ReLU-[dropout]-conv-BN, plus the shortcut, then ReLU (post-activation)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut_kind: str, dropout: float):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = shortcut(shortcut_kind, in_channels, out_channels, stride)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.relu1(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


def residual_stages(block: type, in_channels: int, widths: Sequence[int], blocks_per_stage: int,
                    shortcut_kind: str, dropout: float) -> nn.Sequential:
    """Three stages of ``blocks_per_stage`` blocks; each later stage opens with stride 2."""
    stages = []
    for index, out_channels in enumerate(widths):
        blocks = []
        for block_index in range(blocks_per_stage):
            stride = 2 if index > 0 and block_index == 0 else 1
            blocks.append(block(in_channels, out_channels, stride, shortcut_kind, dropout))
            in_channels = out_channels
        stages.append(nn.Sequential(*blocks))
    return nn.Sequential(*stages)


class CifarResNet(nn.Module):
    """CIFAR ResNet with ``blocks_per_stage`` BasicBlocks in each of three stages.

    Args:
        blocks_per_stage: ``n``; depth is ``6n + 2``.
        width: integer multiplier of the stage widths 16/32/64.
        num_classes: classifier outputs.
        shortcut_kind: ``"A"`` (zero padding) or ``"B"`` (1x1 projection) where shapes change.
        dropout: dropout probability between the two convs of every block (0 disables).
    """

    def __init__(self, blocks_per_stage: int, width: int = 1, num_classes: int = 10,
                 shortcut_kind: str = "A", dropout: float = 0.0):
        super().__init__()
        widths = [16 * width, 32 * width, 64 * width]
        self.conv1 = conv3x3(3, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        self.stages = residual_stages(BasicBlock, widths[0], widths, blocks_per_stage,
                                      shortcut_kind, dropout)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


@register("resnet", depth_rule=DEPTHS)
def resnet(depth: int, width: int = 1, num_classes: int = 10, *,
           shortcut: str = "A", dropout: float = 0.0) -> CifarResNet:
    """CIFAR ResNet-``depth`` (He et al. 2016).

    Args:
        depth: 6n+2 (8, 14, 20, 32, 44, 56, 110, ...).
        width: integer multiplier of the 16/32/64 stage widths.
        num_classes: classifier outputs.
        shortcut: ``"A"`` identity with zero-padded channels (the CIFAR default) or ``"B"``
            1x1 conv + BN projection, each only where the shape changes.
        dropout: dropout between the two convs of each block (0, the paper's setting, disables).

    Returns:
        The network.
    """
    return CifarResNet(
        blocks_per_stage=DEPTHS.repeats("resnet", depth),
        width=check_width("resnet", width),
        num_classes=check_num_classes("resnet", num_classes),
        shortcut_kind=check_choice("resnet", "shortcut", shortcut, SHORTCUTS),
        dropout=check_dropout("resnet", dropout),
    )
