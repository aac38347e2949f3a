"""Convolutional Similarity ``cs`` ([CS], Belmekki et al., arXiv 2411.03226), computed by FFT."""
from __future__ import annotations

import torch

from korth_bench.regularizers.base import Regularizer, register
from korth_bench.errors import ConfigError

PAIRS = ("all", "adjacent")


def power_spectra(weights: torch.Tensor) -> torch.Tensor:
    """``|F_a^c(f)|^2`` of every kernel slice zero-padded to ``(2kh-1, 2kw-1)``.

    ``[B, o, i, kh, kw]`` -> ``[B, o, i, 2kh-1, kw]``: ``rfft2`` keeps the ``kw`` non-redundant
    columns of the ``2kw-1`` frequencies along the last axis.
    """
    kh, kw = weights.shape[-2:]
    spectra = torch.fft.rfft2(weights, s=(2 * kh - 1, 2 * kw - 1))
    # |F|^2 written out: abs() of a complex zero has no gradient.
    return spectra.real.square() + spectra.imag.square()


def frequency_sum(values: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """``(1/L) sum_f`` over the full ``(2kh-1) x (2kw-1)`` grid of a Hermitian-symmetric quantity
    given on ``rfft2``'s half grid (last two axes), L = (2kh-1)(2kw-1).

    The padded width 2kw-1 is odd, so there is no Nyquist column: column 0 stands for itself and
    every other column for itself and its mirror image, hence weight 2.
    """
    column_weights = torch.full((kw,), 2.0, dtype=values.dtype, device=values.device)
    column_weights[0] = 1.0
    num_frequencies = (2 * kh - 1) * (2 * kw - 1)
    return (values.sum(-2) * column_weights).sum(-1) / num_frequencies


@register("cs")
class ConvolutionalSimilarity(Regularizer):
    """CS: ``R(W) = sum_{(a,b) in pairs} sum_c sum_lags ((W_a^c * W_b^c)[lag])^2``.

    ``W_a^c * W_b^c`` is the full 2D cross-correlation of the channel-c slices of filters a and b,
    over all (2kh-1)(2kw-1) lags. Conv weights only (a linear weight raises ``ValueError``).

    By Parseval, with ``F_a^c`` the DFT of the slice zero-padded to the lag grid (no wrap-around),
    a pair contributes ``(1/L) sum_f |F_a^c(f)|^2 |F_b^c(f)|^2``. All pairs a<b then cost time
    linear in o: ``(1/2L) sum_f [(sum_a |F_a^c|^2)^2 - sum_a |F_a^c|^4]``; adjacent pairs are
    summed pair by pair from the same spectra.

    Where the definition is ours: [CS] penalizes adjacent pairs only (b = a+1) because its direct
    computation needed custom CUDA kernels; the FFT makes all pairs affordable, so ``all`` is the
    default and ``adjacent`` reproduces the [CS] code.

    Args:
        pairs: ``all`` (every a<b) or ``adjacent`` (b = a+1).
    """

    accepts_linear = False

    def __init__(self, pairs: str = "all"):
        if pairs not in PAIRS:
            raise ConfigError(f"pairs={pairs!r} must be one of {', '.join(PAIRS)}")
        self.pairs = pairs

    def batched_formula(self, weights, stride):
        power = power_spectra(weights)
        if self.pairs == "all":
            ordered_pairs = power.sum(1).square() - power.square().sum(1)
            products = ordered_pairs / 2
        else:
            products = (power[:, :-1] * power[:, 1:]).sum(1)
        # products: [B, i, 2kh-1, kw], summed over channels and frequencies.
        return frequency_sum(products, *weights.shape[-2:]).sum(1)
