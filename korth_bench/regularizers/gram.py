"""Gram-residual regularizers: ``so``, ``dso``, ``mc``, ``srip``, and the Gram helpers they share.

Notation (docs/regularizers.md): ``K = W.reshape(o, -1)`` in R^{o x n} (a linear weight is already K),
``G_o = K K^T``, ``G_n = K^T K``, ``G_s`` the smaller of the two, ``I`` the identity of its size.
Every function here works on a stack of B layers at once (``torch.bmm``).
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from korth_bench.regularizers.base import Regularizer, check_number, register
from korth_bench.errors import ConfigError


def filter_matrices(weights: torch.Tensor) -> torch.Tensor:
    """``K`` of each layer: ``[B, o, i, kh, kw]`` or ``[B, o, i]`` -> ``[B, o, n]``, n = i*kh*kw."""
    return weights.flatten(2)


def gram(matrices: torch.Tensor, side: str = "smaller") -> torch.Tensor:
    """``G_o`` (side ``rows``), ``G_n`` (``columns``) or ``G_s`` (``smaller``) of ``[B, o, n]``."""
    return SymmetricGram.apply(_gram_factor(matrices, side))


def gram_residual(matrices: torch.Tensor, side: str = "smaller") -> torch.Tensor:
    """``G - I`` for the Gram of ``gram(matrices, side)``."""
    grams = gram(matrices, side)
    return grams - torch.eye(grams.shape[1], dtype=grams.dtype, device=grams.device)


def _gram_factor(matrices: torch.Tensor, side: str) -> torch.Tensor:
    """``A`` with ``G = A A^T``: K for ``G_o``, K^T for ``G_n``."""
    if side == "smaller":
        out_channels, fan_in = matrices.shape[1:]
        side = "rows" if out_channels <= fan_in else "columns"
    return matrices if side == "rows" else matrices.mT


class SymmetricGram(torch.autograd.Function):
    """``G = A A^T`` for ``A [B, r, c]``, with the gradient ``dA = (dG + dG^T) A`` in one batched
    product; autograd's own rule for ``bmm(A, A^T)`` takes two (``dG A`` and ``dG^T A``) and an
    addition. The backward is built from differentiable ops, so double backward still works."""

    @staticmethod
    def forward(ctx, factor: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(factor)
        return torch.bmm(factor, factor.mT)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        factor, = ctx.saved_tensors
        return torch.bmm(grad + grad.mT, factor)


@register("so")
class SoftOrthogonality(Regularizer):
    """SO: ``R(W) = ||G_s - I||_F^2``.

    Equal to ``||G_o - I||_F^2`` up to the constant ``n - o`` (the same gradient); the smaller Gram
    is the cheaper one and is exactly zero for orthonormal rows (o <= n) or columns (o > n).
    """

    def batched_formula(self, weights, stride):
        return gram_residual(filter_matrices(weights)).square().sum((1, 2))


@register("dso")
class DoubleSoftOrthogonality(Regularizer):
    """DSO: ``R(W) = ||G_o - I||_F^2 + ||G_n - I||_F^2``.

    Computed as ``2 ||G_s - I||_F^2 + |n - o|``, which is the same number: ``||G_o||_F = ||G_n||_F``
    and ``tr G_o = tr G_n``, so the two residuals differ by the constant ``n - o``. The larger Gram
    (576 x 576 for a 64-filter 3x3 conv) is never formed.
    """

    def batched_formula(self, weights, stride):
        matrices = filter_matrices(weights)
        out_channels, fan_in = matrices.shape[1:]
        so = gram_residual(matrices).square().sum((1, 2))
        return 2 * so + abs(fan_in - out_channels)


@register("mc")
class MutualCoherence(Regularizer):
    """MC: ``R(W) = max_ab |(G_s - I)_ab|``."""

    def batched_formula(self, weights, stride):
        return gram_residual(filter_matrices(weights)).abs().amax((1, 2))


@register("srip")
class SpectralRestrictedIsometry(Regularizer):
    """SRIP: ``R(W) = s^2`` (``s`` with ``squared=False``), a power-iteration estimate of
    ``sigma_max(A)``, ``A = G_s - I``.

    ``s = ||A^t b|| / ||A^(t-1) b||`` after ``t = power_iterations`` products with a random
    standard-normal vector ``b``, computed with a normalization after each product (the same value)
    and the gradient flowing through the normalizations. The [SRIP] paper writes ``sigma_max(A)``;
    its code penalizes the squared estimate, the default here.

    ``b`` comes from this regularizer's own ``torch.Generator`` (one per device, seeded with
    ``seed``), never from the global RNG: one fresh vector per layer per call. ``penalty(model)``
    walks the layers by shape group (equal weight shape and stride, groups in order of their first
    layer) and draws each group's vectors one layer at a time within it, the same order batched or
    not.

    Args:
        power_iterations: t >= 1, the number of products with A (2, as [SRIP]).
        squared: penalize ``s^2`` (True, as the [SRIP] code) or ``s``.
        seed: seed of the generator for ``b``.
    """

    def __init__(self, power_iterations: int = 2, squared: bool = True, seed: int = 0):
        check_number("power_iterations", power_iterations, 1, integer=True)
        if not isinstance(squared, bool):
            raise ConfigError(f"squared={squared!r} must be True or False")
        check_number("seed", seed, 0, 2**63 - 1, integer=True)
        self.power_iterations = power_iterations
        self.squared = squared
        self.seed = seed
        self._generators: Dict[torch.device, torch.Generator] = {}

    def batched_formula(self, weights, stride):
        residual = gram_residual(filter_matrices(weights))
        vector = F.normalize(self._start_vectors(residual), dim=1)
        for _ in range(self.power_iterations - 1):
            vector = F.normalize(torch.bmm(residual, vector), dim=1)
        image = torch.bmm(residual, vector)
        if self.squared:
            return image.square().sum((1, 2))
        return torch.linalg.vector_norm(image, dim=(1, 2))

    def state_dict(self) -> Dict[str, object]:
        return {str(device): generator.get_state() for device, generator in self._generators.items()}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        for device, generator_state in state.items():
            generator = torch.Generator(torch.device(device))
            generator.set_state(generator_state)
            self._generators[torch.device(device)] = generator

    def _start_vectors(self, residual: torch.Tensor) -> torch.Tensor:
        """``b`` for each layer of a stack, ``[B, s, 1]``, drawn one layer at a time."""
        device = residual.device
        if device not in self._generators:
            self._generators[device] = torch.Generator(device).manual_seed(self.seed)
        generator = self._generators[device]
        size = residual.shape[1]
        return torch.stack([
            torch.randn(size, 1, generator=generator, dtype=residual.dtype, device=device)
            for _ in range(residual.shape[0])
        ])
