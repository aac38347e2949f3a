"""A plain (shortcut-free) VGG-style CNN, the setting of the Convolutional Similarity paper.

Layout for ``depth`` D (the number of 3x3 conv layers; the classifier is not counted):
the D layers are split into three stages as evenly as possible, later stages taking the
remainder (D=3: 1,1,1; D=4: 1,1,2; D=8: 2,3,3). Stage s has 32w * 2^s channels (32w, 64w,
128w for integer width w); every layer is conv3x3 (no bias) + BN + ReLU; a 2x2 max-pool follows
stages 1 and 2 (32x32 inputs: 32 -> 16 -> 8); then global average pool, optional dropout and
a linear classifier.
"""
from __future__ import annotations

from typing import List

import torch
from torch import nn

from korth_bench.models._api import (
    DepthRule,
    check_dropout,
    check_num_classes,
    check_width,
    init_weights,
    register,
)
from korth_bench.models.resnet import conv3x3

DEPTHS = DepthRule(step=1, offset=0, min_repeats=3)
NUM_STAGES = 3


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(conv3x3(in_channels, out_channels), nn.BatchNorm2d(out_channels), nn.ReLU())


def layers_per_stage(depth: int) -> List[int]:
    """Split ``depth`` layers over the stages as evenly as possible, later stages first."""
    base, remainder = divmod(depth, NUM_STAGES)
    return [base + (1 if stage >= NUM_STAGES - remainder else 0) for stage in range(NUM_STAGES)]


class PlainCNN(nn.Module):
    """Plain CNN with ``layers`` conv layers per stage (see the module docstring).

    Args:
        layers: conv layers in each of the three stages.
        width: integer multiplier of the stage widths 32/64/128.
        num_classes: classifier outputs.
        dropout: dropout probability before the classifier (0 disables).
    """

    def __init__(self, layers: List[int], width: int = 1, num_classes: int = 10, dropout: float = 0.0):
        super().__init__()
        modules: List[nn.Module] = []
        in_channels = 3
        for stage, count in enumerate(layers):
            out_channels = 32 * width * 2**stage
            for _ in range(count):
                modules.append(ConvBNReLU(in_channels, out_channels))
                in_channels = out_channels
            if stage < len(layers) - 1:
                modules.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*modules)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(self.features(x)), 1)
        return self.fc(self.dropout(x))


@register("plain", depth_rule=DEPTHS)
def plain(depth: int, width: int = 1, num_classes: int = 10, *, dropout: float = 0.0) -> PlainCNN:
    """Plain CNN with ``depth`` conv layers (>= 3).

    Args:
        depth: number of 3x3 conv layers, at least one per stage.
        width: integer multiplier of the 32/64/128 stage widths.
        num_classes: classifier outputs.
        dropout: dropout before the classifier (0 disables).

    Returns:
        The network.
    """
    DEPTHS.repeats("plain", depth)
    return PlainCNN(
        layers=layers_per_stage(depth),
        width=check_width("plain", width),
        num_classes=check_num_classes("plain", num_classes),
        dropout=check_dropout("plain", dropout),
    )
