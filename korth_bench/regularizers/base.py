"""The regularizer interface, its registry, and the walk over a model's regularized layers.

Notation (docs/regularizers.md): a conv weight ``W [o, i, kh, kw]`` or a linear weight ``[o, i]``; the
penalty of a model is ``sum_layers R(W)`` (or its mean over layers with ``reduction="mean"``).
"""
from __future__ import annotations

import inspect
import warnings
from typing import Dict, List, Mapping, Tuple

import torch
from torch import nn

from korth_bench.registry import Registry
from korth_bench.errors import ConfigError, IgnoredSetting

def _load_plugins(registry: Registry) -> None:
    from korth_bench import plugins

    plugins.load_all(registry.values, register)


_REGISTRY = Registry("regularizer", plugins=_load_plugins,
                     hint="one of your own: --plugin MODULE_OR_FILE, or an installed package's "
                          "korth_bench.regularizers entry point")
REDUCTIONS = ("sum", "mean")
COEFFICIENT = "coefficient"  # the trial key of lambda0, the weight of the penalty in the loss
BATCH_MAX_NUMEL = 1 << 16
"""Largest weight (elements) that ``penalty`` stacks with its equal-shaped peers. Stacking saves
launches on small layers (ResNet-20/56, up to 64x64x3x3: 1.5-2.7x faster than a per-layer loop)
but costs a copy and a slower batched product on large ones (WRN-16-4's 128- and 256-channel
layers on a CPU: the stacked path was 0.8-0.9x the loop)."""


def register(name: str):
    """Class decorator adding a ``Regularizer`` subclass under ``name`` (duplicate -> ValueError).

    A user's regularizer implements ``formula(weight, stride)`` for one weight; ``batched`` then
    loops over the stack unless the class also overrides ``batched_formula``::

        @register("l2")
        class L2(Regularizer):
            def formula(self, weight, stride):
                return weight.square().sum()
    """
    add = _REGISTRY.register(name)

    def decorator(cls):
        if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
            raise TypeError(f"register({name!r}) expects a Regularizer subclass, got {cls!r}")
        add(cls)
        cls.name = name
        return cls

    return decorator


def get(name: str, **params) -> "Regularizer":
    """The regularizer ``name`` built with ``params``; an unknown name or parameter, a missing
    required one (``required``), or a value out of range raises ``ConfigError`` naming what is
    allowed."""
    cls = _REGISTRY.get(name)
    allowed = cls.defaults()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        choices = ", ".join(allowed) if allowed else "none (it takes no parameters)"
        raise ConfigError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for regularizer {name!r}; "
            f"allowed: {choices}"
        )
    for key in required(name):
        if key != COEFFICIENT and params.get(key) is None:
            raise ConfigError(_missing(name, key))
    return cls(**params)


def required(name: str) -> Tuple[str, ...]:
    """The one table of what a regularizer cannot run without: ``coefficient`` (lambda0 > 0) for
    every regularizer that has a penalty (all but ``none``), then every constructor parameter
    without a default (``dn_relaxed``'s ``relaxation``: r = 0 would be ``dn``).

    A default of 0 would silently train the baseline under the regularizer's name, so these are
    refused when missing rather than filled in."""
    cls = _REGISTRY.get(name)
    own = tuple(key for key, default in cls.defaults().items() if default is None)
    return ((COEFFICIENT,) if cls.has_penalty else ()) + own


def _missing(name: str, key: str) -> str:
    """The one line refusing a required ``key`` of regularizer ``name`` that was not given."""
    if key == COEFFICIENT:
        return (f"regularizer={name!r} needs a coefficient > 0, got coefficient=0.0 (the default "
                f"when none is given), which trains the unregularized baseline under its name: "
                f"give a coefficient (e.g. coefficient=1e-3) or use regularizer=none")
    return (f"regularizer={name!r} needs {key}, which has no default: give {key} "
            f"({_REGISTRY.get(name).required_help.get(key, 'korth-bench list shows the parameters')})")


def check(name: str, params: Mapping[str, object], *, coefficient: float = 0.0,
          include_linear: bool = False) -> Dict[str, object]:
    """The parameters regularizer ``name`` is built with, checked as ``get`` checks them, and its
    coefficient checked against ``required``.

    Args:
        name: a registered regularizer.
        params: parameter -> value, ``None`` meaning not given (a trial gives every regularizer's
            parameters, most of them ``None``).
        coefficient: lambda0, the penalty's weight (0 = not given).
        include_linear: whether the classifier's weight is penalized too.
    Returns:
        ``params`` with the defaults of the parameters ``name`` takes filled in (the others None),
        and ``coefficient``: as given, or 0 for a regularizer without a penalty (``none``), where
        a nonzero one is ignored with an ``IgnoredSetting`` warning.
    Raises:
        ConfigError: an unknown name; a value for a parameter ``name`` does not take; a missing
            required parameter or coefficient; a value out of range; a classifier weight for a
            conv-only regularizer.
    """
    cls = _REGISTRY.get(name)
    accepted = cls.defaults()
    resolved: Dict[str, object] = {}
    for key, value in params.items():
        if key not in accepted:
            if value is not None:
                takers = sorted(other for other, taken in describe().items() if key in taken)
                raise ConfigError(f"{key}={value!r} does not apply to regularizer {name!r} "
                                  f"(it applies to: {', '.join(takers) or 'none'})")
            resolved[key] = None
        else:
            resolved[key] = accepted[key] if value is None else value
    get(name, **{key: value for key, value in resolved.items() if key in accepted})
    if coefficient < 0:
        raise ConfigError(f"coefficient={coefficient!r} must be >= 0")
    if COEFFICIENT in required(name) and coefficient == 0:
        raise ConfigError(_missing(name, COEFFICIENT))
    if not cls.has_penalty:
        if coefficient != 0:
            warnings.warn(f"coefficient={coefficient!r} is ignored: regularizer={name!r} has no "
                          "penalty (its coefficient is 0)", IgnoredSetting, stacklevel=2)
        coefficient = 0.0
    if include_linear and not cls.accepts_linear:
        raise ConfigError(f"regularize_linear=true does not apply to regularizer {name!r}: it is "
                          "defined on conv weights only")
    return {**resolved, COEFFICIENT: float(coefficient)}


def names() -> List[str]:
    """Registered regularizer names, sorted."""
    return _REGISTRY.names()


def describe() -> Dict[str, Dict[str, object]]:
    """``{name: {parameter: default}}`` for every registered regularizer (``None``: required)."""
    return {name: _REGISTRY.get(name).defaults() for name in names()}


def regularized_layers(model: nn.Module,
                       include_linear: bool = False) -> List[Tuple[str, nn.Module]]:
    """``(name, module)`` of every ``Conv2d`` (stem and 1x1 shortcuts included), plus every
    ``Linear`` when ``include_linear``, in ``model.named_modules()`` order."""
    kinds = (nn.Conv2d, nn.Linear) if include_linear else (nn.Conv2d,)
    return [(name, module) for name, module in model.named_modules() if isinstance(module, kinds)]


def layer_stride(module: nn.Module) -> Tuple[int, int]:
    """The stride ``(S_h, S_w)`` a regularizer sees for a layer (1 for linear layers)."""
    return tuple(module.stride) if isinstance(module, nn.Conv2d) else (1, 1)


def pair_stride(stride) -> Tuple[int, int]:
    """``stride`` as ``(S_h, S_w)``: an int or a pair of positive ints."""
    pair = (stride, stride) if isinstance(stride, int) else tuple(stride)
    if len(pair) != 2 or not all(isinstance(s, int) and s >= 1 for s in pair):
        raise ValueError(f"stride must be a positive int or a pair of them, got {stride!r}")
    return pair


def check_number(name: str, value, low: float, high: float = float("inf"),
                 high_inclusive: bool = True, integer: bool = False) -> None:
    """Raise ``ConfigError`` unless ``value`` is a real (or integer) number in the given range."""
    kind = int if integer else (int, float)
    upper_ok = value <= high if high_inclusive else value < high
    if isinstance(value, bool) or not isinstance(value, kind) or not (low <= value and upper_ok):
        closing = "]" if high_inclusive else ")"
        what = "an integer" if integer else "a number"
        raise ConfigError(f"{name}={value!r} must be {what} in [{low}, {high}{closing}")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ConfigError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def _full_precision(weight: torch.Tensor) -> torch.Tensor:
    # Penalties are small sums of squares of differences: half precision loses them, so fp16/bf16
    # weights (or autocast) are computed in float32; float64 stays float64 (gradcheck).
    return weight.to(torch.promote_types(weight.dtype, torch.float32))


class Regularizer:
    """A kernel penalty ``R(W)``; subclasses implement ``formula`` and/or ``batched_formula``.

    Public entry points: ``reg(weight, stride=1)`` (one weight, scalar tensor),
    ``reg.batched(weights, stride=1)`` (a stack ``[B, o, i, kh, kw]`` or ``[B, o, i]`` of equal
    shapes, tensor ``[B]``) and ``reg.penalty(model)``. All three run outside autocast in at least
    float32 and return differentiable tensors.
    """

    name = ""
    has_penalty = True      # False: no penalty, so no coefficient (none, the baseline)
    required_help: Dict[str, str] = {}  # required parameter -> what to give, for the refusal
    accepts_linear = True   # False: linear weights raise ValueError (cs is defined on convs only)
    accepts_grouped = True  # False: penalty() rejects Conv2d with groups > 1 (ocnn)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        inherited = (cls.formula is Regularizer.formula,
                     cls.batched_formula is Regularizer.batched_formula)
        if all(inherited):
            raise TypeError(f"{cls.__name__} must implement formula() or batched_formula()")

    @classmethod
    def defaults(cls) -> Dict[str, object]:
        """``{parameter: default}`` from the constructor's signature; a parameter without a
        default is required and maps to ``None``."""
        parameters = inspect.signature(cls).parameters.values()
        return {p.name: None if p.default is p.empty else p.default for p in parameters
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def __repr__(self) -> str:
        params = ", ".join(f"{p}={getattr(self, p)!r}" for p in self.defaults())
        return f"{type(self).__name__}({params})"

    # -- what a subclass implements --------------------------------------------------------------
    def formula(self, weight: torch.Tensor, stride: Tuple[int, int]) -> torch.Tensor:
        """``R(W)`` for one weight (float32 or float64); default: ``batched_formula`` on a stack
        of one."""
        return self.batched_formula(weight.unsqueeze(0), stride)[0]

    def batched_formula(self, weights: torch.Tensor, stride: Tuple[int, int]) -> torch.Tensor:
        """``[R(W_b) for b]`` for a stack of equal shapes; default: a loop over ``formula``."""
        return torch.stack([self.formula(weight, stride) for weight in weights])

    def state_dict(self) -> Dict[str, object]:
        """Random state a checkpoint must hold so that a resumed trial draws the same numbers
        (only regularizers with their own generator, such as ``srip``, have any)."""
        return {}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        """Restore what ``state_dict`` returned."""

    # -- public API ------------------------------------------------------------------------------
    def __call__(self, weight: torch.Tensor, stride=1) -> torch.Tensor:
        self._check_weight(weight.dim(), weight.shape)
        with torch.autocast(weight.device.type, enabled=False):
            return self.formula(_full_precision(weight), pair_stride(stride))

    def batched(self, weights: torch.Tensor, stride=1) -> torch.Tensor:
        self._check_weight(weights.dim() - 1, weights.shape[1:])
        with torch.autocast(weights.device.type, enabled=False):
            return self.batched_formula(_full_precision(weights), pair_stride(stride))

    def penalty(self, model: nn.Module, reduction: str = "sum", include_linear: bool = False,
                batched: bool = True) -> torch.Tensor:
        """``sum_layers R(W)`` over ``regularized_layers(model, include_linear)``, or its mean over
        layers with ``reduction="mean"``.

        Layers of equal (weight shape, stride) form one group, computed by one ``batched`` call
        when a weight has at most ``BATCH_MAX_NUMEL`` elements; larger layers, and every layer
        with ``batched=False`` (the reference the batched path is measured against), one at a
        time. Both paths visit layers in the same order, so a regularizer drawing random numbers
        (srip) draws the same ones either way.
        """
        check_reduction(reduction)
        groups = self._layer_groups(model, include_linear)
        parts = []
        for (_, stride, _, _), weights in groups.items():
            if batched and weights[0].numel() <= BATCH_MAX_NUMEL:
                parts.append(self.batched(torch.stack(weights), stride).sum())
            else:
                parts.extend(self(weight, stride) for weight in weights)
        if not parts:
            return _model_zero(model)
        total = torch.stack(parts).sum()
        num_layers = sum(len(weights) for weights in groups.values())
        return total / num_layers if reduction == "mean" else total

    def _layer_groups(self, model: nn.Module,
                      include_linear: bool) -> Dict[tuple, List[torch.Tensor]]:
        groups: Dict[tuple, List[torch.Tensor]] = {}
        for name, module in regularized_layers(model, include_linear):
            if not self.accepts_grouped and getattr(module, "groups", 1) != 1:
                raise ConfigError(
                    f"regularizer {self.name!r} does not support grouped convolutions "
                    f"(layer {name!r} has groups={module.groups})"
                )
            weight = module.weight
            key = (tuple(weight.shape), layer_stride(module), weight.dtype, weight.device)
            groups.setdefault(key, []).append(weight)
        return groups

    def _check_weight(self, dim: int, shape) -> None:
        if dim not in (2, 4):
            raise ConfigError(
                f"expected a conv weight [o, i, kh, kw] or a linear weight [o, i] (with a leading "
                f"batch dimension for batched), got shape {list(shape)}"
            )
        if dim == 2 and not self.accepts_linear:
            raise ConfigError(f"regularizer {self.name!r} is defined on conv weights only, "
                             f"got a linear weight of shape {list(shape)}")


def _model_zero(model: nn.Module) -> torch.Tensor:
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else None
    return torch.zeros((), device=device)


@register("none")
class NoRegularizer(Regularizer):
    """``R(W) = 0``: the unregularized baseline; ``penalty`` returns zero without visiting
    layers."""

    has_penalty = False

    def formula(self, weight, stride):
        return weight.new_zeros(())

    def batched_formula(self, weights, stride):
        return weights.new_zeros(weights.shape[0])

    def penalty(self, model, reduction="sum", include_linear=False, batched=True):
        check_reduction(reduction)
        return _model_zero(model)
