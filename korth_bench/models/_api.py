"""The model-family registry, ``build``, and the argument checks every family shares.

A family is a builder function ``builder(depth, width, num_classes, **options) -> nn.Module``
registered with the depths it accepts (torchvision ``_api.py`` style). ``build`` resolves the
name, refuses options the builder does not take, and calls it; the builder checks values.
"""
from __future__ import annotations

import functools
import inspect
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence

import torch
from torch import nn

from korth_bench.registry import Registry
from korth_bench.errors import ConfigError


@dataclass(frozen=True)
class DepthRule:
    """Depths of the form ``step * n + offset`` with ``n >= min_repeats``.

    Args:
        step: spacing of valid depths (6 for the CIFAR ResNet: three stages of two-layer blocks).
        offset: layers outside the repeated blocks (2 for ResNet: stem and classifier).
        min_repeats: smallest ``n``.
    """

    step: int
    offset: int
    min_repeats: int = 1

    @property
    def minimum(self) -> int:
        return self.step * self.min_repeats + self.offset

    @property
    def formula(self) -> str:
        return f">= {self.minimum}" if self.step == 1 else f"{self.step}n+{self.offset}"

    def valid(self, upto: int) -> List[int]:
        return list(range(self.minimum, upto + 1, self.step))

    def repeats(self, family: str, depth: Any) -> int:
        """Return ``n`` for a valid ``depth``; raise ``ValueError`` naming the nearest valid ones."""
        if not is_integer(depth):
            raise ConfigError(f"{family} depth={depth!r} must be an integer")
        if depth >= self.minimum and (depth - self.offset) % self.step == 0:
            return (depth - self.offset) // self.step
        if depth < self.minimum:
            nearest = f"{self.minimum}"
        else:
            below = depth - (depth - self.offset) % self.step
            nearest = f"{below} or {below + self.step}"
        first = ", ".join(map(str, self.valid(self.minimum + 3 * self.step)))
        raise ConfigError(f"{family} depth={depth} must be {self.formula} ({first}, ...); "
                          f"nearest: {nearest}")


@dataclass(frozen=True)
class ModelFamily:
    builder: Callable[..., nn.Module]
    depth_rule: DepthRule

    def options(self) -> Dict[str, Any]:
        """Keyword options beyond depth, width and num_classes, with their defaults."""
        parameters = inspect.signature(self.builder).parameters.values()
        return {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}


_FAMILIES = Registry("model family")


def register(name: str, *, depth_rule: DepthRule = DepthRule(step=1, offset=0)) -> Callable:
    """Decorator adding a model family.

    Args:
        name: family name used by ``build`` and the ``model`` config key.
        depth_rule: the depths the family accepts (any depth >= 1 by default).

    Returns:
        A decorator that registers ``builder(depth, width, num_classes, *, option=default, ...)``
        and returns it unchanged. Options must be keyword-only so ``describe`` can list them.
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _FAMILIES.register(name)(ModelFamily(builder, depth_rule))
        return builder

    return decorator


def build(family: str, depth: int, width: int = 1, num_classes: int = 10, **options: Any) -> nn.Module:
    """Build a network of a registered family.

    Args:
        family: ``resnet``, ``wrn``, ``plain`` or a user-registered name (see ``names()``).
        depth: number of weighted layers; each family has its rule (``valid_depths``).
        width: integer channel multiplier >= 1 (the widen factor for ``wrn``).
        num_classes: size of the classifier output.
        **options: family options such as ``shortcut`` and ``dropout`` (see ``describe()``).
            An option given as ``None`` keeps the family default, so a caller can pass the same
            keys to every family.

    Returns:
        The network, in training mode, with freshly initialized weights.

    Raises:
        ValueError: unknown family, an option the family does not take, or an invalid value.
    """
    entry: ModelFamily = _FAMILIES.get(family)
    allowed = entry.options()
    given = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{family} takes no option {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    return entry.builder(depth, width, num_classes, **given)


def check(family: str, depth: int, width: int = 1, num_classes: int = 10, **options: Any) -> None:
    """Raise ``ConfigError`` for a network ``build`` would refuse (family, depth rule, width,
    options), allocating nothing: the network is built on the meta device, once per argument set."""
    _check_on_meta(family, depth, width, num_classes, tuple(sorted(options.items())))


@functools.lru_cache(maxsize=4096)
def _check_on_meta(family: str, depth: int, width: int, num_classes: int, options: tuple) -> None:
    with torch.device("meta"):
        build(family, depth, width, num_classes, **dict(options))


def names() -> List[str]:
    """Registered family names, sorted."""
    return _FAMILIES.names()


def valid_depths(family: str, upto: int = 200) -> List[int]:
    """Depths ``family`` accepts, up to ``upto`` inclusive."""
    return _FAMILIES.get(family).depth_rule.valid(upto)


def describe() -> Dict[str, Dict[str, Any]]:
    """``{family: {"depth": rule, option: default, ...}}`` for ``korth-bench list``."""
    return {
        name: {"depth": _FAMILIES.get(name).depth_rule.formula, **_FAMILIES.get(name).options()}
        for name in names()
    }


def is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_width(family: str, width: Any) -> int:
    """Widths are integer multipliers so that every channel count stays an integer."""
    if not is_integer(width) or width < 1:
        raise ConfigError(f"{family} width={width!r} must be an integer >= 1")
    return int(width)


def check_num_classes(family: str, num_classes: Any) -> int:
    if not is_integer(num_classes) or num_classes < 1:
        raise ConfigError(f"{family} num_classes={num_classes!r} must be an integer >= 1")
    return int(num_classes)


def check_dropout(family: str, dropout: Any) -> float:
    if not isinstance(dropout, numbers.Real) or isinstance(dropout, bool) or not 0 <= dropout < 1:
        raise ConfigError(f"{family} dropout={dropout!r} must be a number in [0, 1)")
    return float(dropout)


def check_choice(family: str, option: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(
            f"{family} {option}={value!r} must be one of {', '.join(map(repr, choices))}"
        )
    return value


def init_weights(model: nn.Module) -> None:
    """He (Kaiming) normal init with fan_out for convs, as fb.resnet.torch and the WRN code;
    BN scale 1 and shift 0; the classifier keeps PyTorch's default weights and a zero bias."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
