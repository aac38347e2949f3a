"""Kernel regularizers: ``get(name, **params)``, ``names()``, ``register(name)``, ``describe()``,
``required(name)`` (what a regularizer cannot run without, ``coefficient`` included).

Each family lives in its own module; importing them here registers them. The normative formulas are
those of docs/regularizers.md.
"""
from korth_bench.regularizers.base import (
    REDUCTIONS,
    Regularizer,
    check,
    describe,
    get,
    names,
    register,
    regularized_layers,
    required,
)
from korth_bench.regularizers import conv_similarity, disentangled, gram, ocnn  # noqa: F401  (registers)

__all__ = ["REDUCTIONS", "Regularizer", "check", "describe", "get", "names", "register", "regularized_layers", "required"]
