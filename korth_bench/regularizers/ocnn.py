"""OCNN: orthogonality of the convolution operator itself ([OCNN], Wang et al., CVPR 2020)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from korth_bench.regularizers.base import Regularizer, register


@register("ocnn")
class OrthogonalConvolution(Regularizer):
    """OCNN: ``R(W) = ||conv2d(W, W, stride=S, padding=P) - I_r0||_F^2``.

    ``W [o, i, kh, kw]`` is both the input batch (o images of i channels) and the kernel, so the
    response ``[o, o, 2P_h/S_h + 1, 2P_w/S_w + 1]`` holds the inner products of every pair of
    filters at every shift that is a multiple of the stride. ``I_r0`` is zero except at the centre
    position ``(P_h/S_h, P_w/S_w)``, which holds ``I_o``; per axis ``P = floor((k-1)/S)*S``, S the
    layer's stride. For 1x1 kernels this is ``||G_o - I||_F^2``; a linear weight is treated as a
    1x1 conv. Grouped convs are rejected by ``penalty`` (their weight alone does not describe the
    operator).
    """

    accepts_grouped = False

    def batched_formula(self, weights, stride):
        if weights.dim() == 3:
            weights = weights[..., None, None]
        layers, out_channels, in_channels, kh, kw = weights.shape
        padding = tuple((k - 1) // s * s for k, s in zip((kh, kw), stride))
        # One grouped conv for all B layers: layer b's filters are the images' channel block b and
        # the kernels of group b, so group b sees only its own layer.
        images = weights.transpose(0, 1).reshape(out_channels, layers * in_channels, kh, kw)
        kernels = weights.reshape(layers * out_channels, in_channels, kh, kw)
        responses = F.conv2d(images, kernels, stride=stride, padding=padding, groups=layers)
        responses = responses.unflatten(1, (layers, out_channels)).transpose(0, 1)
        target = torch.zeros_like(responses[0])
        centre_h, centre_w = padding[0] // stride[0], padding[1] // stride[1]
        target[:, :, centre_h, centre_w] = torch.eye(out_channels, dtype=weights.dtype,
                                                     device=weights.device)
        return (responses - target).square().sum((1, 2, 3, 4))
