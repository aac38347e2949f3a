"""Kernel regularizers: ``get(name, **params)``, ``names()``, ``register(name)``, ``describe()``.

Each family lives in its own module; importing them here registers them. The normative formulas are
those of papers.md, "Regularizer definitions (normative)".
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
)
from korth_bench.regularizers import conv_similarity, disentangled, gram, ocnn  # noqa: F401  (registers)

__all__ = ["REDUCTIONS", "Regularizer", "check", "describe", "get", "names", "register", "regularized_layers"]
