"""Orthogonality and similarity measures for reporting: no gradient, float64 inside.

Notation (docs/regularizers.md): ``K = W.reshape(o, -1)`` in R^{o x n}, ``G_o = K K^T``, ``G_s`` the smaller
Gram, ``k_i`` row i of K, ``cos_ij`` the cosine of filters i and j.

- ``layer_rows(model)``: one row per regularized layer (the weight columns of the ``layers`` table).
- ``feature_map_rows(model, images)``: one row per conv output and per ``nn.ReLU`` (feature-map
  similarity on a probe batch).
- ``summarize(layer_rows, fm_rows)``: the aggregates of the ``trials`` table.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from korth_bench.regularizers import get, regularized_layers
from korth_bench.regularizers.disentangled import NORM_EPSILON, cosine_matrix, upper_pairs
from korth_bench.regularizers.gram import filter_matrices, gram, gram_residual

# Images per chunk in feature_map_rows: bounds the [chunk, C, C] cosine block (52 MB at C = 640).
IMAGES_PER_CHUNK = 16


@torch.no_grad()
def layer_rows(model: nn.Module, include_linear: bool = False) -> List[Dict]:
    """One dict per layer of ``regularized_layers(model, include_linear)``.

    Keys: ``layer``, ``kind`` (``conv``/``linear``), ``shape`` (list of int), ``out_channels`` (o),
    ``fan_in`` (n), ``overdetermined`` (o > n), ``gram_residual_fro`` ``||G_s - I||_F``,
    ``diag_deviation`` ``mean_i | |k_i|^2 - 1 |``, ``offdiag_fro`` (Frobenius norm of the
    off-diagonal part of ``G_o - I``), ``cos_mean`` and ``cos_max`` (mean and max of ``|cos_ij|``
    over i<j; None for o = 1), ``spectral_norm`` ``sigma_max(G_s - I)`` (exact, by eigvalsh),
    ``cs_mean`` (the ``cs`` penalty divided by the o(o-1)/2 pairs a<b: the mean per-pair
    convolutional similarity; conv layers only, else None), ``cs_normalized_mean`` (the same with
    every filter divided by its norm |k_a|, since ``cs`` shrinks with the weights), and
    ``fm_sim``/``dead_channels`` (None: they come from ``feature_map_rows``).
    """
    return [_weight_row(name, module.weight.detach().to(torch.float64))
            for name, module in regularized_layers(model, include_linear)]


def _weight_row(name: str, weight: torch.Tensor) -> Dict:
    matrices = filter_matrices(weight.unsqueeze(0))
    out_channels, fan_in = matrices.shape[1:]
    residual = gram_residual(matrices)[0]
    grams = gram(matrices, side="rows")
    squared_norms = torch.diagonal(grams, dim1=1, dim2=2)[0]
    cosines = upper_pairs(cosine_matrix(matrices, grams))[0].abs()
    with_cs = weight.dim() == 4 and out_channels > 1
    return {
        "layer": name,
        "kind": "conv" if weight.dim() == 4 else "linear",
        "shape": list(weight.shape),
        "out_channels": out_channels,
        "fan_in": fan_in,
        "overdetermined": out_channels > fan_in,
        "gram_residual_fro": torch.linalg.matrix_norm(residual).item(),
        "diag_deviation": (squared_norms - 1).abs().mean().item(),
        # Off its diagonal G_o - I equals G_o, each pair (i, j) appearing twice.
        "offdiag_fro": (2 * upper_pairs(grams).square().sum()).sqrt().item(),
        "cos_mean": cosines.mean().item() if cosines.numel() else None,
        "cos_max": cosines.max().item() if cosines.numel() else None,
        "spectral_norm": torch.linalg.eigvalsh(residual).abs().max().item(),
        "cs_mean": _mean_pair_similarity(weight) if with_cs else None,
        "cs_normalized_mean": _mean_pair_similarity(_unit_filters(weight)) if with_cs else None,
        "fm_sim": None,
        "dead_channels": None,
    }


def _mean_pair_similarity(weight: torch.Tensor) -> float:
    """The ``cs`` penalty (all pairs a<b) averaged over its o(o-1)/2 pairs."""
    out_channels = weight.shape[0]
    return get("cs")(weight).item() / (out_channels * (out_channels - 1) / 2)


def _unit_filters(weight: torch.Tensor) -> torch.Tensor:
    norms = torch.linalg.vector_norm(weight.flatten(1), dim=1).clamp_min(NORM_EPSILON)
    return weight / norms.view(-1, 1, 1, 1)


class _SimilarityMeter:
    """Forward hook reducing one probe point's output to running sums as it goes (keeps no
    activations): the per-image mean |cos| over live channel pairs, and which channels ever live."""

    def __init__(self, layer: str, kind: str):
        self.layer, self.kind = layer, kind
        # Running sums stay tensors on the model's device: no host sync inside the forward pass.
        self.similarity_sum = 0.0
        self.images_with_pairs = 0
        self.ever_alive: Optional[torch.Tensor] = None

    def __call__(self, module, inputs, output):
        for chunk in output.detach().split(IMAGES_PER_CHUNK):
            maps = chunk.flatten(2).to(torch.float64)  # [N, C, H*W]
            alive = (maps != 0).any(2)  # [N, C]: a channel whose map is all zero is left out
            units = F.normalize(maps, dim=2)
            cosines = torch.bmm(units, units.mT).abs()
            distinct = ~torch.eye(alive.shape[1], dtype=torch.bool, device=alive.device)
            pairs = alive.unsqueeze(2) & alive.unsqueeze(1) & distinct
            counts = pairs.sum((1, 2))
            with_pairs = counts > 0
            per_image = (cosines * pairs).sum((1, 2))[with_pairs] / counts[with_pairs]
            self.similarity_sum = self.similarity_sum + per_image.sum()
            self.images_with_pairs = self.images_with_pairs + with_pairs.sum()
            seen = alive.any(0)
            self.ever_alive = seen if self.ever_alive is None else self.ever_alive | seen

    def row(self) -> Dict:
        images = int(self.images_with_pairs)
        fm_sim = float(self.similarity_sum) / images if images else None
        dead = None if self.ever_alive is None else int((~self.ever_alive).sum())
        return {"layer": self.layer, "kind": self.kind, "fm_sim": fm_sim, "dead_channels": dead}


@torch.no_grad()
def feature_map_rows(model: nn.Module, images: torch.Tensor) -> List[Dict]:
    """Feature-map similarity of every ``Conv2d`` output (kind ``conv``, before BN) and every
    ``nn.ReLU`` output (kind ``activation``) on the probe batch ``images`` ``[N, 3, H, W]``.

    For each image, each channel's map is flattened; channels whose map is all zero on that image
    are left out, and ``|cos|`` is averaged over the ordered pairs of distinct remaining channels
    (the same as over pairs a<b). ``fm_sim`` is the mean of that over the images having at least
    one such pair (None if none has). ``dead_channels`` counts the channels whose map is zero on
    every probe image. The model runs once, in eval mode (its mode is restored after).

    Returns:
        One dict per probe point, in ``model.named_modules()`` order, with keys ``layer``, ``kind``,
        ``fm_sim``, ``dead_channels``.
    """
    meters = [_SimilarityMeter(name, "conv" if isinstance(module, nn.Conv2d) else "activation")
              for name, module in model.named_modules() if isinstance(module, (nn.Conv2d, nn.ReLU))]
    modules = dict(model.named_modules())
    handles = [modules[meter.layer].register_forward_hook(meter) for meter in meters]
    was_training = model.training
    try:
        model.eval()
        model(images)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return [meter.row() for meter in meters]


def summarize(layer_rows: List[Dict], fm_rows: List[Dict]) -> Dict[str, Optional[float]]:
    """The ``trials`` aggregates of ``layer_rows`` and ``feature_map_rows`` output.

    Means are plain means over layers (or probe points), skipping None:
    ``ortho_gram_residual_mean``, ``ortho_diag_deviation_mean``, ``ortho_cos_mean``, ``ortho_spectral_mean``, ``cs_mean``,
    ``cs_normalized_mean``; ``ortho_cos_max`` is the max over layers (the worst mutual coherence);
    ``fm_sim_mean`` averages the conv points, ``fm_sim_post_mean`` the activation points;
    ``dead_channels`` sums over all points. A statistic with no values is None.
    """
    conv_points = [row for row in fm_rows if row["kind"] == "conv"]
    activation_points = [row for row in fm_rows if row["kind"] == "activation"]
    return {
        "ortho_gram_residual_mean": _mean(layer_rows, "gram_residual_fro"),
        "ortho_diag_deviation_mean": _mean(layer_rows, "diag_deviation"),
        "ortho_cos_mean": _mean(layer_rows, "cos_mean"),
        "ortho_cos_max": max(_values(layer_rows, "cos_max"), default=None),
        "ortho_spectral_mean": _mean(layer_rows, "spectral_norm"),
        "cs_mean": _mean(layer_rows, "cs_mean"),
        "cs_normalized_mean": _mean(layer_rows, "cs_normalized_mean"),
        "fm_sim_mean": _mean(conv_points, "fm_sim"),
        "fm_sim_post_mean": _mean(activation_points, "fm_sim"),
        "dead_channels": sum(_values(fm_rows, "dead_channels")) if fm_rows else None,
    }


def _values(rows: List[Dict], key: str) -> List[float]:
    return [row[key] for row in rows if row.get(key) is not None]


def _mean(rows: List[Dict], key: str) -> Optional[float]:
    values = _values(rows, key)
    return sum(values) / len(values) if values else None
