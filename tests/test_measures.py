"""Measures against hand-computed cases."""
import math

import pytest
import torch
from torch import nn

from korth_bench import measures


def model_with(*layers):
    model = nn.Sequential(*layers)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def test_orthonormal_layer_measures_zero():
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(0)))
    conv = nn.Conv2d(2, 8, 2, bias=False)
    conv.weight.data = q.reshape(8, 2, 2, 2)
    (row,) = measures.layer_rows(model_with(conv))
    assert row["layer"] == "0" and row["kind"] == "conv" and row["shape"] == [8, 2, 2, 2]
    assert row["out_channels"] == 8 and row["fan_in"] == 8 and row["overdetermined"] is False
    for key in ("gram_residual_fro", "diag_deviation", "offdiag_fro", "cos_mean", "cos_max", "spectral_norm"):
        assert row[key] == pytest.approx(0, abs=1e-6), key
    assert row["fm_sim"] is None and row["dead_channels"] is None


def test_hand_computed_linear_layer():
    # Rows (1, 0) and (1, 1): G_o - I = [[0, 1], [1, 1]], eigenvalues (1 +- sqrt 5) / 2.
    linear = nn.Linear(2, 2, bias=False)
    linear.weight.data = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert measures.layer_rows(model_with(linear)) == []
    (row,) = measures.layer_rows(model_with(linear), include_linear=True)
    assert row["kind"] == "linear" and row["shape"] == [2, 2]
    assert row["gram_residual_fro"] == pytest.approx(math.sqrt(3))
    assert row["diag_deviation"] == pytest.approx(0.5)
    assert row["offdiag_fro"] == pytest.approx(math.sqrt(2))
    assert row["cos_mean"] == pytest.approx(1 / math.sqrt(2))
    assert row["cos_max"] == pytest.approx(1 / math.sqrt(2))
    assert row["spectral_norm"] == pytest.approx((1 + math.sqrt(5)) / 2)
    assert row["cs_mean"] is None and row["cs_normalized_mean"] is None


def test_hand_computed_convolutional_similarity():
    # Kernels [1, 2] and [3, 0] (1x2): lags -1, 0, 1 give 6, 3, 0 -> 45; norms sqrt 5 and 3.
    conv = nn.Conv2d(1, 2, (1, 2), bias=False)
    conv.weight.data = torch.tensor([[1.0, 2.0], [3.0, 0.0]]).reshape(2, 1, 1, 2)
    (row,) = measures.layer_rows(model_with(conv))
    assert row["cs_mean"] == pytest.approx(45)
    assert row["cs_normalized_mean"] == pytest.approx(45 / (5 * 9))


def test_overdetermined_flag_and_single_filter():
    model = model_with(nn.Conv2d(2, 20, 1), nn.Conv2d(20, 1, 1))
    wide, single = measures.layer_rows(model)
    assert wide["overdetermined"] is True and wide["fan_in"] == 2
    assert single["cos_mean"] is None and single["cs_mean"] is None


def probe_images():
    # Input channels A (left half) and B (right half): orthogonal maps of equal norm.
    images = torch.zeros(2, 2, 4, 4)
    images[:, 0, :, :2] = torch.arange(1.0, 9.0).reshape(4, 2)
    images[:, 1, :, 2:] = torch.arange(8.0, 0.0, -1).reshape(4, 2)
    images[1] *= 3
    return images


def test_feature_map_similarity_with_identical_and_dead_channels():
    # Output channels A, A, B, -(A + B): the last one dies after the ReLU.
    conv = nn.Conv2d(2, 4, 1, bias=False)
    conv.weight.data = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]).reshape(4, 2, 1, 1)
    model = model_with(conv, nn.ReLU())
    model.train()
    conv_row, relu_row = measures.feature_map_rows(model, probe_images())
    assert model.training  # mode restored
    assert not conv._forward_hooks  # hooks removed
    diagonal = 1 / math.sqrt(2)  # |cos(A, -(A + B))| = |cos(B, -(A + B))|
    assert conv_row == {"layer": "0", "kind": "conv", "fm_sim": pytest.approx((1 + 3 * diagonal) / 6),
                        "dead_channels": 0}
    assert relu_row == {"layer": "1", "kind": "activation", "fm_sim": pytest.approx(1 / 3),
                        "dead_channels": 1}


def test_summarize_aggregates():
    layer_rows = [
        {"gram_residual_fro": 1.0, "diag_deviation": 0.2, "cos_mean": 0.1, "cos_max": 0.5,
         "spectral_norm": 2.0, "cs_mean": 4.0, "cs_normalized_mean": 0.4},
        {"gram_residual_fro": 3.0, "diag_deviation": 0.4, "cos_mean": 0.3, "cos_max": 0.9,
         "spectral_norm": 4.0, "cs_mean": None, "cs_normalized_mean": None},
    ]
    fm_rows = [
        {"layer": "a", "kind": "conv", "fm_sim": 0.2, "dead_channels": 0},
        {"layer": "b", "kind": "activation", "fm_sim": 0.6, "dead_channels": 2},
        {"layer": "c", "kind": "activation", "fm_sim": None, "dead_channels": 3},
    ]
    assert measures.summarize(layer_rows, fm_rows) == pytest.approx({
        "ortho_gram_residual_mean": 2.0, "ortho_diag_deviation_mean": 0.3, "ortho_cos_mean": 0.2,
        "ortho_cos_max": 0.9, "ortho_spectral_mean": 3.0, "cs_mean": 4.0, "cs_normalized_mean": 0.4,
        "fm_sim_mean": 0.2, "fm_sim_post_mean": 0.6, "dead_channels": 5,
    })
    empty = measures.summarize([], [])
    assert set(empty) == set(measures.summarize(layer_rows, fm_rows))
    assert all(value is None for value in empty.values())


def test_convolutional_similarity_is_averaged_over_the_pairs_of_three_filters():
    # 1x1 kernels 1, 2, 3: one lag, pairs (1, 2), (1, 3), (2, 3) give 2, 3, 6 -> 4 + 9 + 36 = 49
    # over 3 pairs; divided by their norms every filter is 1, every pair 1.
    conv = nn.Conv2d(1, 3, 1, bias=False)
    conv.weight.data = torch.tensor([1.0, 2.0, 3.0]).reshape(3, 1, 1, 1)
    (row,) = measures.layer_rows(model_with(conv))
    assert row["cs_mean"] == pytest.approx(49 / 3)
    assert row["cs_normalized_mean"] == pytest.approx(1)


class _Probe(nn.Module):
    """A 1x1 convolution passing its three input channels through, and a ReLU it never calls."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        self.conv.weight.data = torch.eye(3).reshape(3, 3, 1, 1)
        self.unused = nn.ReLU()

    def forward(self, images):
        return self.conv(images)


def test_feature_map_similarity_is_a_mean_over_images_of_per_image_means(monkeypatch):
    """fm_sim: per image, the mean |cos| over its live pairs; then the mean over the images having
    a pair (not the pooled mean over all pairs, and images without a pair left out, in any chunk).
    dead_channels: channels zero on every image, wherever the image falls among the chunks. A
    point the forward pass never reaches gives None twice."""
    images = torch.zeros(3, 3, 1, 2)
    images[0, 0, 0] = torch.tensor([1.0, 0.0])   # one pair, |cos| 0
    images[0, 1, 0] = torch.tensor([0.0, 1.0])
    images[1, :, 0] = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])  # three pairs, |cos| 1
    images[2, 0, 0] = torch.tensor([1.0, 0.0])   # one live channel: no pair
    # (0 + 1) / 2 over the images; pooled over the 1 + 3 pairs it would be 3 / 4.
    expected = [{"layer": "conv", "kind": "conv", "fm_sim": pytest.approx(0.5), "dead_channels": 0},
                {"layer": "unused", "kind": "activation", "fm_sim": None, "dead_channels": None}]
    assert measures.feature_map_rows(_Probe(), images) == expected
    monkeypatch.setattr(measures, "IMAGES_PER_CHUNK", 1)
    assert measures.feature_map_rows(_Probe(), images) == expected
    # Channel 1 lives only in the first image, channel 0 only in the last, channel 2 in none.
    images[1:, 1] = 0
    images[:2, 0] = 0
    images[:, 2] = 0
    (conv_row, _) = measures.feature_map_rows(_Probe(), images)
    assert conv_row == {"layer": "conv", "kind": "conv", "fm_sim": None, "dead_channels": 1}
    images[:, 1] = 0
    (conv_row, _) = measures.feature_map_rows(_Probe(), images)
    assert conv_row["dead_channels"] == 2


def test_feature_map_cosines_are_computed_in_float64():
    # Maps (1, 1e-4) and (1, 0): |cos| = 1 / sqrt(1 + 1e-8), which float32 rounds to 1.
    images = torch.tensor([[1.0, 1e-4], [1.0, 0.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)
    small = float(images[0, 0, 0, 1])
    (conv_row, _) = measures.feature_map_rows(_Probe(), images)
    assert conv_row["fm_sim"] == pytest.approx(1 / math.sqrt(1 + small ** 2), rel=1e-12, abs=0)
    assert conv_row["fm_sim"] < 1
