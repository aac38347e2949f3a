"""Disentangled-norm regularizers ``dn`` and ``dn_relaxed`` ([DN], Wu et al., arXiv 2306.09939).

Notation (docs/regularizers.md): ``k_i`` row i of ``K = W.reshape(o, -1)`` in R^{o x n},
``cos_ij = <k_i, k_j> / (|k_i| |k_j|)``, m = o(o-1)/2 correlation pairs per layer.
"""
from __future__ import annotations

import math
from fractions import Fraction

import torch

from korth_bench.regularizers.base import Regularizer, check_number, register
from korth_bench.regularizers.gram import filter_matrices, gram

# Keeps cos_ij finite for a zero filter: its cosines are 0 and only its diagonal term remains.
NORM_EPSILON = 1e-12


def cosine_matrix(matrices: torch.Tensor, grams: torch.Tensor) -> torch.Tensor:
    """``cos_ij`` for ``K [B, o, n]`` given ``G_o [B, o, o]``; rows of a zero filter are 0."""
    norms = torch.linalg.vector_norm(matrices, dim=2).clamp_min(NORM_EPSILON)
    return grams / (norms.unsqueeze(2) * norms.unsqueeze(1))


def upper_pairs(matrix: torch.Tensor) -> torch.Tensor:
    """Entries ``(i, j)``, ``i < j``, of ``[B, o, o]`` as ``[B, m]``."""
    rows, cols = torch.triu_indices(*matrix.shape[1:], offset=1, device=matrix.device)
    return matrix[:, rows, cols]


def impossible_pair_count(out_channels: int, fan_in: int) -> int:
    """``k0``: the least number of filter pairs that cannot be orthogonal.

    0 when o <= n. Otherwise at most n filters are mutually orthogonal; the best arrangement (Turán)
    puts the o filters in n balanced groups of parallel filters: with ``q, s = divmod(o, n)``,
    ``k0 = s*(q+1)*q/2 + (n-s)*q*(q-1)/2`` (o - n for n < o <= 2n; 96 for 64 filters over 16
    inputs).
    """
    if out_channels <= fan_in:
        return 0
    per_group, larger_groups = divmod(out_channels, fan_in)
    return (larger_groups * (per_group + 1) * per_group // 2
            + (fan_in - larger_groups) * per_group * (per_group - 1) // 2)


def relaxed_pair_count(out_channels: int, fan_in: int, relaxation: float) -> int:
    """``k = k0 + floor(r * (m - k0))``, exact: r is read as the decimal it prints as
    (``Fraction(str(r))``), since in floating point ``floor(0.29 * 100)`` is 28."""
    pairs = out_channels * (out_channels - 1) // 2
    k0 = impossible_pair_count(out_channels, fan_in)
    return k0 + math.floor(Fraction(str(relaxation)) * (pairs - k0))


@register("dn")
class DisentangledNorm(Regularizer):
    """DN (strict): ``R(W) = alpha * sum_i (|k_i|^2 - 1)^2 + beta * sum_{i<j} cos_ij^2``.

    The diagonal of the Gram residual (filter norms -> 1) and the correlations (cosines -> 0) are
    penalized separately; each pair counts once, on cosines (``so`` counts each pair twice, on inner
    products). A zero filter contributes its diagonal term and no cosines (an epsilon in the norm).

    Args:
        diag_weight: alpha >= 0.
        corr_weight: beta >= 0.
    """

    def __init__(self, diag_weight: float = 1.0, corr_weight: float = 1.0):
        check_number("diag_weight", diag_weight, 0)
        check_number("corr_weight", corr_weight, 0)
        self.diag_weight = diag_weight
        self.corr_weight = corr_weight

    def batched_formula(self, weights, stride):
        matrices = filter_matrices(weights)
        grams = gram(matrices, side="rows")
        diagonal = (torch.diagonal(grams, dim1=1, dim2=2) - 1).square().sum(1)
        squared_cosines = upper_pairs(cosine_matrix(matrices, grams)).square()
        correlation = self.correlation(squared_cosines, *matrices.shape[1:])
        return self.diag_weight * diagonal + self.corr_weight * correlation

    def correlation(self, squared_cosines: torch.Tensor, out_channels: int,
                    fan_in: int) -> torch.Tensor:
        """The correlation sum of each layer from its ``[B, m]`` squared cosines."""
        return squared_cosines.sum(1)


@register("dn_relaxed")
class RelaxedDisentangledNorm(DisentangledNorm):
    """DN (relaxed): as ``dn``, but the ``k`` largest ``cos_ij^2`` of the layer are left out of the
    correlation sum, ``k = k0 + floor(r * (m - k0))`` (``relaxed_pair_count``).

    ``k0`` is the number of pairs that cannot be orthogonal (``impossible_pair_count``), so r = 0
    relaxes only what is impossible and r -> 1 relaxes everything. Where the definition is ours:
    [DN] chooses its k by a Monte-Carlo estimate that is not published; this rule has the same two
    regimes (strict where orthogonality is possible, relaxed on capacity-rich layers) and one
    sweepable parameter. In a CIFAR ResNet no layer is over-determined at width 1, so there r = 0
    equals ``dn``.

    Args:
        relaxation: r in [0, 1), required (r = 0 is ``dn`` at width 1, so no default).
        diag_weight, corr_weight: as ``dn``.
    """

    required_help = {"relaxation": "r in [0, 1), e.g. relaxation=0.3; r = 0 is dn"}

    def __init__(self, relaxation: float, diag_weight: float = 1.0, corr_weight: float = 1.0):
        super().__init__(diag_weight=diag_weight, corr_weight=corr_weight)
        check_number("relaxation", relaxation, 0, 1, high_inclusive=False)
        self.relaxation = relaxation

    def correlation(self, squared_cosines, out_channels, fan_in):
        dropped = relaxed_pair_count(out_channels, fan_in, self.relaxation)
        kept = squared_cosines.shape[1] - dropped
        # Summing the kept (smallest) values, rather than subtracting the dropped ones from the
        # total, keeps the result exactly >= 0 and free of cancellation.
        smallest = torch.topk(squared_cosines, kept, dim=1, largest=False, sorted=False)
        return smallest.values.sum(1)
