"""Wide ResNet of Zagoruyko & Komodakis (2016): WRN-depth-k, depth 6n+4.

Layout: 3x3 conv stem (16 channels); three stages of ``n`` pre-activation blocks with 16k, 32k,
64k channels (stride 2 on entering stages 2 and 3); BN + ReLU; global average pool; linear.
A block is BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3 plus the shortcut. Where the shape changes
the default shortcut is a 1x1 conv (no BN) on the block's pre-activated input, as in the
authors' code; WRN-16-4 has 2.7M and WRN-28-10 36.5M parameters.
"""
from __future__ import annotations

import torch
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
from korth_bench.models.resnet import SHORTCUTS, ZeroPadShortcut, conv3x3, residual_stages

DEPTHS = DepthRule(step=6, offset=4)


class WideBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv-BN-ReLU-[dropout]-conv, plus the shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut_kind: str, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.keeps_shape = stride == 1 and in_channels == out_channels
        self.projects = not self.keeps_shape and shortcut_kind == "B"
        if self.keeps_shape:
            self.shortcut = nn.Identity()
        elif self.projects:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        else:
            self.shortcut = ZeroPadShortcut(stride, out_channels - in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu1(self.bn1(x))
        out = self.conv1(activated)
        out = self.conv2(self.dropout(self.relu2(self.bn2(out))))
        # The authors' projection reads the pre-activated input; identity and zero padding read x.
        return out + self.shortcut(activated if self.projects else x)


class WideResNet(nn.Module):
    """WRN with ``blocks_per_stage`` blocks in each of three stages.

    Args:
        blocks_per_stage: ``n``; depth is ``6n + 4``.
        widen_factor: ``k``; stage widths are 16k, 32k, 64k (the stem stays at 16).
        num_classes: classifier outputs.
        shortcut_kind: ``"B"`` (1x1 projection, the WRN default) or ``"A"`` (zero padding).
        dropout: dropout probability between the two convs of every block.
    """

    def __init__(self, blocks_per_stage: int, widen_factor: int = 1, num_classes: int = 10,
                 shortcut_kind: str = "B", dropout: float = 0.0):
        super().__init__()
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = conv3x3(3, 16)
        self.stages = residual_stages(WideBlock, 16, widths, blocks_per_stage, shortcut_kind, dropout)
        self.bn = nn.BatchNorm2d(widths[-1])
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.stages(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


@register("wrn", depth_rule=DEPTHS)
def wrn(depth: int, width: int = 1, num_classes: int = 10, *,
        shortcut: str = "B", dropout: float = 0.0) -> WideResNet:
    """WRN-``depth``-``width`` (Zagoruyko & Komodakis 2016).

    Args:
        depth: 6n+4 (10, 16, 22, 28, 40, ...).
        width: the widen factor k (integer >= 1).
        num_classes: classifier outputs.
        shortcut: ``"B"`` 1x1 projection (the WRN default) or ``"A"`` zero padding, each only
            where the shape changes.
        dropout: dropout between the two convs of each block (the paper uses 0.3 on CIFAR).

    Returns:
        The network.
    """
    return WideResNet(
        blocks_per_stage=DEPTHS.repeats("wrn", depth),
        widen_factor=check_width("wrn", width),
        num_classes=check_num_classes("wrn", num_classes),
        shortcut_kind=check_choice("wrn", "shortcut", shortcut, SHORTCUTS),
        dropout=check_dropout("wrn", dropout),
    )
