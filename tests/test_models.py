"""Every registered model family: forward, backward, parameter counts, argument checks."""
import re
from collections import Counter

import pytest
import torch
from torch import nn

from korth_bench import models
from korth_bench.models.resnet import ZeroPadShortcut


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


CASES = [
    (family, depth, width)
    for family in models.names()
    for depth in models.valid_depths(family)[:2]
    for width in (1, 2)
]


@pytest.mark.parametrize("family,depth,width", CASES)
def test_forward_backward(family, depth, width):
    torch.manual_seed(0)
    model = models.build(family, depth, width, num_classes=7)
    out = model(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 7)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("family,depth,width", CASES)
def test_each_nonlinearity_is_its_own_relu(family, depth, width):
    model = models.build(family, depth, width, num_classes=10, dropout=0.1)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus and not any(relu.inplace for relu in relus)
    calls = Counter()
    for relu in relus:
        relu.register_forward_hook(lambda module, inputs, output: calls.update([id(module)]))
    model(torch.randn(2, 3, 32, 32))
    assert len(calls) == len(relus)
    assert set(calls.values()) == {1}


# Exact counts for 10 classes; they round to the literature's 0.27M, 0.85M, 1.7M, 2.7M, 36.5M.
@pytest.mark.parametrize(
    "family,depth,width,expected,literature",
    [
        ("resnet", 20, 1, 269_722, 0.27e6),
        ("resnet", 56, 1, 853_018, 0.85e6),
        ("resnet", 110, 1, 1_727_962, 1.7e6),
        ("wrn", 16, 4, 2_748_890, 2.7e6),
        ("wrn", 28, 10, 36_479_194, 36.5e6),
    ],
)
def test_parameter_counts_match_literature(family, depth, width, expected, literature):
    with torch.device("meta"):  # no memory or init time for the 36M-parameter WRN
        model = models.build(family, depth, width, num_classes=10)
    assert num_params(model) == expected
    assert abs(expected - literature) / literature < 0.02


def test_shortcut_b_adds_projections_only_where_shape_changes():
    option_a = models.build("resnet", 20, 1, 10, shortcut="A")
    option_b = models.build("resnet", 20, 1, 10, shortcut="B")
    # Two stage transitions, 16->32 and 32->64, each a 1x1 conv plus BN (scale and shift).
    assert num_params(option_b) - num_params(option_a) == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert sum(isinstance(m, ZeroPadShortcut) for m in option_a.modules()) == 2
    assert not any(isinstance(m, ZeroPadShortcut) for m in option_b.modules())
    wrn_a = models.build("wrn", 10, 2, 10, shortcut="A")
    assert sum(isinstance(m, ZeroPadShortcut) for m in wrn_a.modules()) == 3


def test_zero_pad_shortcut_subsamples_and_appends_zero_channels():
    x = torch.randn(2, 4, 8, 8)
    y = ZeroPadShortcut(stride=2, extra_channels=4)(x)
    assert y.shape == (2, 8, 4, 4)
    assert torch.equal(y[:, :4], x[:, :, ::2, ::2])
    assert not y[:, 4:].any()


@pytest.mark.parametrize(
    "family,depth,message",
    [
        ("resnet", 21, "resnet depth=21 must be 6n+2 (8, 14, 20, 26, ...); nearest: 20 or 26"),
        ("resnet", 4, "depth=4 must be 6n+2 (8, 14, 20, 26, ...); nearest: 8"),
        ("wrn", 27, "wrn depth=27 must be 6n+4 (10, 16, 22, 28, ...); nearest: 22 or 28"),
        ("plain", 2, "plain depth=2 must be >= 3"),
        ("resnet", 20.0, "depth=20.0 must be an integer"),
    ],
)
def test_invalid_depth_names_nearest_valid(family, depth, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        models.build(family, depth)


@pytest.mark.parametrize("family", models.names())
@pytest.mark.parametrize("width", [0, -1, 1.5, "2"])
def test_invalid_width_is_refused(family, width):
    with pytest.raises(ValueError, match="width=.* must be an integer >= 1"):
        models.build(family, models.valid_depths(family)[0], width)


def test_invalid_options_list_what_is_allowed():
    with pytest.raises(ValueError, match="shortcut='C' must be one of 'A', 'B'"):
        models.build("resnet", 20, shortcut="C")
    with pytest.raises(ValueError, match="plain takes no option 'shortcut'; allowed: dropout"):
        models.build("plain", 6, shortcut="A")
    with pytest.raises(ValueError, match=r"dropout=.* must be a number in \[0, 1\)"):
        models.build("wrn", 10, dropout=1.0)
    with pytest.raises(ValueError, match="unknown model family 'vgg'; choose from: plain, resnet, wrn"):
        models.build("vgg", 11)


def test_none_options_keep_family_defaults():
    model = models.build("plain", 3, 1, 10, shortcut=None, dropout=None)
    assert isinstance(model.dropout, nn.Identity)


def test_valid_depths_and_describe():
    assert models.valid_depths("resnet", upto=32) == [8, 14, 20, 26, 32]
    assert models.valid_depths("wrn", upto=28) == [10, 16, 22, 28]
    assert models.valid_depths("plain", upto=5) == [3, 4, 5]
    described = models.describe()
    assert described["resnet"] == {"depth": "6n+2", "shortcut": "A", "dropout": 0.0}
    assert described["wrn"]["shortcut"] == "B"
