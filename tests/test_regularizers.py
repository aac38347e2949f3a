"""Every regularizer against an independent float64 loop over the docs/regularizers.md formula, plus the API."""
import math
import re
from fractions import Fraction

import pytest
import torch
from torch import nn

from korth_bench import regularizers
from korth_bench.errors import IgnoredSetting
from korth_bench.regularizers import base, disentangled

CONV_SHAPES = [(4, 3, 1, 1), (6, 3, 3, 3), (3, 2, 5, 5), (5, 2, 3, 2), (20, 2, 1, 1), (64, 16, 1, 1)]
LINEAR_SHAPES = [(10, 7), (4, 9)]
SRIP_SEED = 3


# -- independent reference implementations: python loops over filters, pairs, channels, lags ----

def rows_of(weight):
    return weight.reshape(weight.shape[0], -1).tolist()


def dot(u, v):
    return sum(a * b for a, b in zip(u, v))


def gram_lists(rows, side):
    if side == "columns":
        rows = [list(column) for column in zip(*rows)]
    return [[dot(u, v) for v in rows] for u in rows]


def residual_lists(weight, side="smaller"):
    rows = rows_of(weight)
    if side == "smaller":
        side = "rows" if len(rows) <= len(rows[0]) else "columns"
    grams = gram_lists(rows, side)
    return [[g - (a == b) for b, g in enumerate(line)] for a, line in enumerate(grams)]


def squared_fro(matrix):
    return sum(x * x for line in matrix for x in line)


def naive_so(weight):
    return squared_fro(residual_lists(weight))


def naive_dso(weight):
    return squared_fro(residual_lists(weight, "rows")) + squared_fro(residual_lists(weight, "columns"))


def naive_mc(weight):
    return max(abs(x) for line in residual_lists(weight) for x in line)


def naive_srip(weight, power_iterations=2, squared=True, seed=SRIP_SEED):
    residual = torch.tensor(residual_lists(weight), dtype=torch.float64)
    vector = torch.randn(residual.shape[0], 1, generator=torch.Generator().manual_seed(seed),
                         dtype=torch.float64)
    powers = [vector]
    for _ in range(power_iterations):
        powers.append(residual @ powers[-1])
    estimate = float(powers[-1].norm() / powers[-2].norm())
    return estimate ** 2 if squared else estimate


def naive_ocnn(weight, stride=(1, 1)):
    if weight.dim() == 2:
        weight = weight[..., None, None]
    out_channels, _, kh, kw = weight.shape
    pad_h, pad_w = ((kh - 1) // stride[0]) * stride[0], ((kw - 1) // stride[1]) * stride[1]
    padded = torch.nn.functional.pad(weight, (pad_w, pad_w, pad_h, pad_h))
    size_h, size_w = 2 * pad_h // stride[0] + 1, 2 * pad_w // stride[1] + 1
    total = 0.0
    for a in range(out_channels):
        for b in range(out_channels):
            for y in range(size_h):
                for x in range(size_w):
                    window = padded[a, :, y * stride[0]:y * stride[0] + kh, x * stride[1]:x * stride[1] + kw]
                    value = float((window * weight[b]).sum())
                    centre = (y, x) == (pad_h // stride[0], pad_w // stride[1])
                    total += (value - (a == b and centre)) ** 2
    return total


def naive_cosines(weight):
    rows = rows_of(weight)
    norms = [math.sqrt(dot(u, u)) for u in rows]
    pairs = []
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            zero = norms[i] == 0 or norms[j] == 0
            pairs.append(0.0 if zero else dot(rows[i], rows[j]) / (norms[i] * norms[j]))
    return norms, pairs


def turan_k0(out_channels, fan_in):
    group_sizes = [out_channels // fan_in + (g < out_channels % fan_in) for g in range(fan_in)]
    return sum(size * (size - 1) // 2 for size in group_sizes) if out_channels > fan_in else 0


def naive_dn(weight, relaxation=None, diag_weight=1.0, corr_weight=1.0):
    norms, cosines = naive_cosines(weight)
    squares = sorted((c * c for c in cosines), reverse=True)
    if relaxation is not None:
        out_channels, fan_in = len(norms), len(rows_of(weight)[0])
        k0 = turan_k0(out_channels, fan_in)
        dropped = k0 + math.floor(Fraction(str(relaxation)) * (len(squares) - k0))
        squares = squares[dropped:]
    return diag_weight * sum((n * n - 1) ** 2 for n in norms) + corr_weight * sum(squares)


def naive_cs(weight, pairs="all"):
    w = weight.tolist()
    out_channels, in_channels, kh, kw = weight.shape
    if pairs == "all":
        pair_list = [(a, b) for a in range(out_channels) for b in range(a + 1, out_channels)]
    else:
        pair_list = [(a, a + 1) for a in range(out_channels - 1)]
    total = 0.0
    for a, b in pair_list:
        for c in range(in_channels):
            for dy in range(-kh + 1, kh):
                for dx in range(-kw + 1, kw):
                    lag = sum(w[a][c][y][x] * w[b][c][y + dy][x + dx]
                              for y in range(kh) for x in range(kw)
                              if 0 <= y + dy < kh and 0 <= x + dx < kw)
                    total += lag * lag
    return total


CASES = {  # name -> (params, reference(weight, stride), accepts linear)
    "none": ({}, lambda w, s: 0.0, True),
    "so": ({}, lambda w, s: naive_so(w), True),
    "dso": ({}, lambda w, s: naive_dso(w), True),
    "mc": ({}, lambda w, s: naive_mc(w), True),
    "srip": ({"seed": SRIP_SEED}, lambda w, s: naive_srip(w), True),
    "ocnn": ({}, naive_ocnn, True),
    "dn": ({"diag_weight": 0.7, "corr_weight": 1.3},
           lambda w, s: naive_dn(w, diag_weight=0.7, corr_weight=1.3), True),
    "dn_relaxed": ({"relaxation": 0.29}, lambda w, s: naive_dn(w, relaxation=0.29), True),
    "cs": ({}, lambda w, s: naive_cs(w), False),
}
EXTRA_CASES = [  # more parameter settings of the same families
    ("srip", {"seed": SRIP_SEED, "power_iterations": 3, "squared": False},
     lambda w, s: naive_srip(w, power_iterations=3, squared=False), True),
    ("dn_relaxed", {"relaxation": 0.57}, lambda w, s: naive_dn(w, relaxation=0.57), True),
    ("dn_relaxed", {"relaxation": 0.0}, lambda w, s: naive_dn(w, relaxation=0.0), True),
    ("cs", {"pairs": "adjacent"}, lambda w, s: naive_cs(w, "adjacent"), False),
]
ALL_CASES = [
    pytest.param(name, params, reference, linear_ok, id=f"{name}{params or ''}")
    for name, params, reference, linear_ok
    in [(name, *CASES[name]) for name in regularizers.names() if name in CASES] + EXTRA_CASES
]


def test_every_registered_regularizer_has_a_reference():
    assert set(regularizers.names()) == set(CASES)


def random_weight(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.4


@pytest.mark.parametrize("name,params,reference,linear_ok", ALL_CASES)
def test_matches_naive_loop(name, params, reference, linear_ok):
    shapes = CONV_SHAPES + (LINEAR_SHAPES if linear_ok else [])
    for index, shape in enumerate(shapes):
        weight = random_weight(shape, seed=index)
        strides = [(1, 1), (2, 2), (1, 2)] if name == "ocnn" and len(shape) == 4 else [(1, 1)]
        for stride in strides:
            value = regularizers.get(name, **params)(weight, stride)
            assert value.shape == () and value.dtype == torch.float64
            expected = reference(weight, stride)
            assert float(value) == pytest.approx(expected, rel=1e-9, abs=1e-9), (shape, stride)


@pytest.mark.parametrize("name,params,reference,linear_ok", ALL_CASES)
def test_batched_equals_per_weight(name, params, reference, linear_ok):
    weights = random_weight((3, 6, 2, 3, 3))
    batched = regularizers.get(name, **params).batched(weights, 2)
    single = regularizers.get(name, **params)
    looped = torch.stack([single(weight, 2) for weight in weights])
    torch.testing.assert_close(batched, looped)


def test_cs_rejects_linear_weights():
    with pytest.raises(ValueError, match="conv weights only"):
        regularizers.get("cs")(torch.randn(4, 3))


def test_relaxed_count_is_exact():
    # In floating point floor(r * (m - k0)) falls one short whenever r * (m - k0) is an integer.
    assert math.floor(0.29 * 100) == 28 and math.floor(0.57 * 300) == 170
    assert disentangled.relaxed_pair_count(20, 2, 0.29) == 90 + 29  # m = 190, k0 = 90
    assert disentangled.relaxed_pair_count(25, 27, 0.57) == 171  # m = 300, k0 = 0
    assert disentangled.relaxed_pair_count(20, 2, 0.0) == 90
    assert disentangled.relaxed_pair_count(20, 27, 0.0) == 0


@pytest.mark.parametrize("out_channels,fan_in,k0", [
    (16, 16, 0), (8, 27, 0), (20, 16, 4), (32, 16, 16), (64, 16, 96), (20, 2, 90), (7, 3, 5), (5, 1, 10),
])
def test_impossible_pair_count_is_turan(out_channels, fan_in, k0):
    assert disentangled.impossible_pair_count(out_channels, fan_in) == k0
    assert turan_k0(out_channels, fan_in) == k0


@pytest.mark.parametrize("relaxation", [0.29, 0.57])
def test_relaxed_drops_exact_count_of_largest_pairs(relaxation):
    weight = random_weight((20, 2, 1, 1))  # over-determined: k0 = 90 of m = 190 pairs
    _, cosines = naive_cosines(weight)
    count = disentangled.relaxed_pair_count(20, 2, relaxation)
    assert count == 90 + math.floor(Fraction(str(relaxation)) * 100)
    kept = sorted(c * c for c in cosines)[:len(cosines) - count]
    norms = weight.reshape(20, -1).norm(dim=1)
    expected = float(((norms ** 2 - 1) ** 2).sum()) + sum(kept)
    value = regularizers.get("dn_relaxed", relaxation=relaxation)(weight)
    assert float(value) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("name", regularizers.names())
def test_gradcheck(name):
    params, _, linear_ok = CASES[name]
    shapes = [(3, 2, 2, 2), (4, 1, 3, 2)] + ([(3, 4)] if linear_ok else [])
    for index, shape in enumerate(shapes):
        weight = random_weight(shape, seed=10 + index).requires_grad_()
        # A fresh regularizer per call: srip then draws the same b every time.
        assert torch.autograd.gradcheck(lambda w: regularizers.get(name, **params)(w, 1), (weight,))


def orthonormal_rows(out_channels, fan_in, seed=0):
    q, _ = torch.linalg.qr(random_weight((fan_in, fan_in), seed))
    return q[:out_channels]


@pytest.mark.parametrize("name,params,weight", [
    ("so", {}, orthonormal_rows(4, 4).reshape(4, 1, 2, 2)),
    ("so", {}, orthonormal_rows(3, 8)),
    ("so", {}, orthonormal_rows(2, 2).T.repeat(3, 1) / 3 ** 0.5),  # orthonormal columns, o > n
    ("dso", {}, orthonormal_rows(4, 4).reshape(4, 1, 2, 2)),
    ("mc", {}, orthonormal_rows(3, 18).reshape(3, 2, 3, 3)),
    ("srip", {}, orthonormal_rows(3, 18).reshape(3, 2, 3, 3)),
    ("dn", {}, orthonormal_rows(3, 18).reshape(3, 2, 3, 3)),
    ("dn_relaxed", {"relaxation": 0.5}, orthonormal_rows(5, 12).reshape(5, 3, 2, 2)),
    ("ocnn", {}, orthonormal_rows(6, 6).reshape(6, 6, 1, 1)),
    ("cs", {}, torch.eye(3, dtype=torch.float64)[:, :, None, None].repeat(1, 1, 3, 3)),  # disjoint channels
    ("none", {}, random_weight((4, 3, 3, 3))),
])
def test_zero_on_orthogonal_weights(name, params, weight):
    value = regularizers.get(name, **params)(weight)
    assert abs(float(value)) < 1e-12


def test_dn_zero_filter_keeps_its_diagonal_term():
    weight = random_weight((4, 5))
    weight[2] = 0
    value = regularizers.get("dn")(weight.requires_grad_())
    value.backward()
    assert float(value.detach()) == pytest.approx(naive_dn(weight.detach()))
    assert torch.isfinite(weight.grad).all()


def test_srip_large_power_iterations_converge_to_squared_spectral_norm():
    weight = random_weight((6, 3, 3, 3))
    residual = torch.tensor(residual_lists(weight), dtype=torch.float64)
    sigma = torch.linalg.eigvalsh(residual).abs().max()
    value = regularizers.get("srip", power_iterations=200)(weight)
    assert float(value) == pytest.approx(float(sigma) ** 2, rel=1e-6)


def test_srip_leaves_global_rng_alone_and_is_seeded():
    state = torch.random.get_rng_state()
    weight = random_weight((6, 3, 3, 3))
    first = regularizers.get("srip", seed=5)
    values = [first(weight), first(weight)]
    assert torch.equal(torch.random.get_rng_state(), state)
    assert float(values[0]) != float(values[1])  # a fresh b each call
    assert float(regularizers.get("srip", seed=5)(weight)) == float(values[0])


def test_cs_fft_equals_direct_sum_over_pairs():
    weight = random_weight((7, 3, 3, 3))
    all_pairs = regularizers.get("cs")(weight)
    adjacent = regularizers.get("cs", pairs="adjacent")(weight)
    direct = sum(regularizers.get("cs", pairs="adjacent")(weight[[a, b]])
                 for a in range(7) for b in range(a + 1, 7))
    torch.testing.assert_close(all_pairs, direct)
    assert float(adjacent) < float(all_pairs)


def test_ocnn_one_by_one_is_gram_residual():
    weight = random_weight((5, 7, 1, 1))
    expected = squared_fro(residual_lists(weight, "rows"))
    assert float(regularizers.get("ocnn")(weight, 2)) == pytest.approx(expected)


def small_model():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.Conv2d(8, 8, 3, padding=1, bias=False),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, stride=2, padding=1)),
        nn.Conv2d(8, 16, 1, stride=2, bias=False),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


@pytest.mark.parametrize("name", regularizers.names())
@pytest.mark.parametrize("include_linear", [False, True])
def test_batched_penalty_equals_layer_loop(name, include_linear):
    if name == "cs" and include_linear:
        with pytest.raises(ValueError, match="conv weights only"):
            regularizers.get(name).penalty(small_model(), include_linear=True)
        return
    torch.manual_seed(0)
    model = small_model()
    params = CASES[name][0]
    batched = regularizers.get(name, **params).penalty(model, include_linear=include_linear)
    looped = regularizers.get(name, **params).penalty(model, include_linear=include_linear, batched=False)
    torch.testing.assert_close(batched, looped)
    layers = regularizers.regularized_layers(model, include_linear)
    assert len(layers) == 7 + include_linear
    if name != "srip":  # srip draws its b in group order, the per-layer sum below in model order
        reg = regularizers.get(name, **params)
        by_hand = sum(reg(m.weight, base.layer_stride(m)).item() for _, m in layers)
        assert batched.item() == pytest.approx(by_hand, rel=1e-5)
        mean = regularizers.get(name, **params).penalty(model, "mean", include_linear)
        assert mean.item() == pytest.approx(by_hand / len(layers), rel=1e-5)


def test_penalty_is_differentiable_and_float32_under_autocast():
    torch.manual_seed(0)
    model = small_model()
    reference = regularizers.get("dn").penalty(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = regularizers.get("dn").penalty(model)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, reference)
    value.backward()
    assert all(m.weight.grad is not None for _, m in regularizers.regularized_layers(model))


def test_none_penalty_is_zero():
    value = regularizers.get("none").penalty(small_model(), include_linear=True)
    assert float(value) == 0.0 and value.shape == ()


def test_penalty_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="sum, mean"):
        regularizers.get("so").penalty(small_model(), reduction="avg")


def test_ocnn_rejects_grouped_conv():
    model = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2))
    with pytest.raises(ValueError, match="grouped"):
        regularizers.get("ocnn").penalty(model)


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="unknown regularizer 'sro'; choose from: cs, dn, dn_relaxed"):
        regularizers.get("sro")


@pytest.mark.parametrize("name,params,message", [
    ("so", {"relaxation": 0.1}, "allowed: none"),
    ("srip", {"iterations": 2}, "allowed: power_iterations, squared, seed"),
    ("dn_relaxed", {"relaxation": 1.0}, r"relaxation=1.0 must be a number in \[0, 1\)"),
    ("dn_relaxed", {"relaxation": -0.1}, "relaxation"),
    ("dn", {"diag_weight": -1}, "diag_weight"),
    ("srip", {"power_iterations": 0}, "power_iterations=0 must be an integer"),
    ("srip", {"squared": 1}, "squared=1 must be True or False"),
    ("cs", {"pairs": "some"}, "pairs='some' must be one of all, adjacent"),
])
def test_bad_parameters_raise(name, params, message):
    with pytest.raises(ValueError, match=message):
        regularizers.get(name, **params)


def test_describe_lists_every_parameter_default():
    described = regularizers.describe()
    assert list(described) == regularizers.names()
    assert described["srip"] == {"power_iterations": 2, "squared": True, "seed": 0}
    assert described["dn_relaxed"]["relaxation"] is None  # required: r = 0 would be dn
    assert described["cs"] == {"pairs": "all"}


def test_required_is_the_coefficient_of_every_penalty_and_each_parameter_without_a_default():
    table = {name: regularizers.required(name) for name in regularizers.names()}
    assert table.pop("none") == ()
    assert table.pop("dn_relaxed") == ("coefficient", "relaxation")
    assert set(table.values()) == {("coefficient",)}
    with pytest.raises(ValueError, match=r"regularizer='dn_relaxed' needs relaxation.*r = 0 is dn"):
        regularizers.get("dn_relaxed")
    with pytest.raises(ValueError, match=r"regularizer='so' needs a coefficient > 0, got "
                                         r"coefficient=0.0.*or use regularizer=none"):
        regularizers.check("so", {})
    with pytest.warns(IgnoredSetting, match=r"coefficient=0.5 is ignored: regularizer='none'"):
        assert regularizers.check("none", {}, coefficient=0.5) == {"coefficient": 0.0}


def test_register_a_custom_regularizer(monkeypatch):
    monkeypatch.setattr(base._REGISTRY, "_entries", dict(base._REGISTRY._entries))

    @regularizers.register("l2_test")
    class SquaredNorm(regularizers.Regularizer):
        def __init__(self, scale: float = 1.0):
            self.scale = scale

        def formula(self, weight, stride):
            return self.scale * weight.square().sum()

    assert "l2_test" in regularizers.names()
    reg = regularizers.get("l2_test", scale=2.0)
    weights = random_weight((3, 4, 2, 3, 3))
    torch.testing.assert_close(reg.batched(weights), 2 * weights.square().sum((1, 2, 3, 4)))
    model = small_model()
    expected = sum(2 * m.weight.square().sum() for _, m in regularizers.regularized_layers(model))
    torch.testing.assert_close(reg.penalty(model), expected)
    with pytest.raises(ValueError, match="already registered"):
        regularizers.register("l2_test")(SquaredNorm)
    with pytest.raises(ValueError, match="already registered"):
        regularizers.register("so")(SquaredNorm)


def test_a_regularizer_must_implement_a_formula():
    with pytest.raises(TypeError, match="formula"):
        class Empty(regularizers.Regularizer):
            pass


@pytest.mark.parametrize("side", ["rows", "columns"])
def test_symmetric_gram_gradients_match_autograd_of_the_plain_product(side):
    from korth_bench.regularizers.gram import gram

    matrices = torch.randn(3, 5, 7, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda m: gram(m, side), (matrices,))
    torch.autograd.gradgradcheck(lambda m: gram(m, side), (matrices,))
    factor = matrices if side == "rows" else matrices.mT
    weights = torch.randn(3, *gram(matrices, side).shape[1:], dtype=torch.float64)
    ours, = torch.autograd.grad((gram(matrices, side) * weights).sum(), matrices)
    plain, = torch.autograd.grad((torch.bmm(factor, factor.mT) * weights).sum(), matrices)
    torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-12)


def test_check_fills_defaults_and_names_the_regularizers_a_stray_parameter_applies_to():
    """check: a parameter the regularizer takes gets its default where not given (None) and keeps
    a given value; one it does not take stays None if not given, and a value for it is refused
    naming the regularizers that take it ('none' where no registered one does)."""
    resolved = regularizers.check("srip", {"power_iterations": 3, "seed": None, "pairs": None},
                                  coefficient=1e-3)
    assert resolved == {"power_iterations": 3, "seed": 0, "pairs": None, "coefficient": 1e-3}
    with pytest.raises(ValueError, match=r"^relaxation=0\.5 does not apply to regularizer 'so' "
                                         r"\(it applies to: dn_relaxed\)$"):
        regularizers.check("so", {"relaxation": 0.5}, coefficient=1e-3)
    with pytest.raises(ValueError, match=r"^diag_weight=2\.0 does not apply to regularizer 'so' "
                                         r"\(it applies to: dn, dn_relaxed\)$"):
        regularizers.check("so", {"diag_weight": 2.0}, coefficient=1e-3)
    with pytest.raises(ValueError, match=r"^width=2 does not apply to regularizer 'so' "
                                         r"\(it applies to: none\)$"):
        regularizers.check("so", {"width": 2}, coefficient=1e-3)


def test_check_ignores_any_nonzero_coefficient_of_none_with_a_warning():
    with pytest.warns(IgnoredSetting) as caught:
        assert regularizers.check("none", {}, coefficient=1.0) == {"coefficient": 0.0}
    assert str(caught[0].message) == ("coefficient=1.0 is ignored: regularizer='none' has no "
                                      "penalty (its coefficient is 0)")


def test_check_refuses_a_classifier_weight_only_for_a_conv_only_regularizer():
    assert regularizers.check("cs", {}, coefficient=1e-3)["coefficient"] == 1e-3  # default: convs
    assert regularizers.check("so", {}, coefficient=1e-3, include_linear=True)["coefficient"] == 1e-3
    with pytest.raises(ValueError, match=r"^regularize_linear=true does not apply to regularizer "
                                         r"'cs': it is defined on conv weights only$"):
        regularizers.check("cs", {}, coefficient=1e-3, include_linear=True)


def test_register_takes_only_regularizer_subclasses_and_names_them(monkeypatch):
    monkeypatch.setattr(base._REGISTRY, "_entries", dict(base._REGISTRY._entries))
    with pytest.raises(TypeError, match=r"^register\('x_test'\) expects a Regularizer subclass, "
                                        r"got 42$"):
        regularizers.register("x_test")(42)
    with pytest.raises(TypeError, match="expects a Regularizer subclass"):
        regularizers.register("y_test")(nn.Linear)

    @regularizers.register("z_test")
    class Stride(regularizers.Regularizer):
        def formula(self, weight, stride):
            return weight.sum() * 0 + stride[0]

    assert Stride.name == "z_test" and regularizers.get("z_test").name == "z_test"
    # the loop batched_formula gives a formula its layers' stride
    penalties = regularizers.get("z_test").batched(random_weight((3, 2, 2, 3, 3)), stride=(2, 2))
    assert penalties.tolist() == [2.0, 2.0, 2.0]


def test_a_penalty_of_a_model_without_parameters_is_zero():
    model = nn.Sequential(nn.ReLU())
    for name in ("none", "so", "cs"):
        penalty = regularizers.get(name).penalty(model)
        assert penalty.shape == () and float(penalty) == 0.0, name


def test_srip_settings_range_and_its_random_stream_survives_a_checkpoint():
    """power_iterations >= 1 and seed an integer in [0, 2^63 - 1] (a torch seed), refused by
    name otherwise; state_dict / load_state_dict carry the generator, so a regularizer restored
    from a checkpoint draws the same next vectors as the one that kept running."""
    assert regularizers.get("srip", power_iterations=1).power_iterations == 1
    assert regularizers.get("srip", seed=2**63 - 1).seed == 2**63 - 1
    for seed in (2**63, -1, 1.5, True):
        with pytest.raises(ValueError, match=rf"^seed={seed!r} must be an integer in "
                                             rf"\[0, {2**63 - 1}\]$"):
            regularizers.get("srip", seed=seed)
    weights = random_weight((2, 4, 3, 3, 3))
    running = regularizers.get("srip", seed=5)
    first = running.batched(weights)
    restored = regularizers.get("srip", seed=5)
    restored.load_state_dict(running.state_dict())
    assert list(running.state_dict()) == ["cpu"]
    torch.testing.assert_close(restored.batched(weights), running.batched(weights), rtol=0, atol=0)
    assert not torch.equal(regularizers.get("srip", seed=5).batched(weights),
                           restored.batched(weights))  # a fresh one starts the stream over
    torch.testing.assert_close(regularizers.get("srip", seed=5).batched(weights), first)
    torch.testing.assert_close(regularizers.get("srip").batched(weights),
                               regularizers.get("srip", seed=0).batched(weights), rtol=0, atol=0)
    assert repr(regularizers.get("srip", seed=5)) == (
        "SpectralRestrictedIsometry(power_iterations=2, squared=True, seed=5)")


def test_dn_weights_are_numbers_from_zero_named_in_the_refusal_and_dn_relaxed_keeps_them():
    dn = regularizers.get("dn", diag_weight=0.0, corr_weight=0.5)
    assert (dn.diag_weight, dn.corr_weight) == (0.0, 0.5)
    for key in ("diag_weight", "corr_weight"):
        with pytest.raises(ValueError, match=rf"^{key}=-1 must be a number in \[0, inf\]$"):
            regularizers.get("dn", **{key: -1})
    relaxed = regularizers.get("dn_relaxed", relaxation=0.3, diag_weight=2.0, corr_weight=3.0)
    assert (relaxed.relaxation, relaxed.diag_weight, relaxed.corr_weight) == (0.3, 2.0, 3.0)


def test_check_number_bounds_and_kinds():
    """check_number: [low, high] inclusive by default, [low, high) with high_inclusive=False;
    integer=True refuses a float; a bool is never a number; the refusal states the range."""
    base.check_number("x", 1.0, 0, 1)
    base.check_number("x", 0.99, 0, 1, high_inclusive=False)
    with pytest.raises(ValueError, match=r"^x=1\.0 must be a number in \[0, 1\)$"):
        base.check_number("x", 1.0, 0, 1, high_inclusive=False)
    with pytest.raises(ValueError, match=r"^x=1\.5 must be an integer in \[1, inf\]$"):
        base.check_number("x", 1.5, 1, integer=True)
    with pytest.raises(ValueError, match=r"^x=True must be a number in \[0, inf\]$"):
        base.check_number("x", True, 0)
    with pytest.raises(ValueError, match=r"^x=-0\.5 must be a number in \[0, 1\]$"):
        base.check_number("x", -0.5, 0, 1)


def test_a_stride_is_a_pair_of_positive_ints_and_defaults_to_one():
    assert base.pair_stride(2) == (2, 2) and base.pair_stride((1, 2)) == (1, 2)
    for stride in ((0, 1), (1.0, 1), (1, 2, 3), -1):
        with pytest.raises(ValueError, match=r"^stride must be a positive int or a pair of them, "
                                             rf"got {re.escape(repr(stride))}$"):
            base.pair_stride(stride)
    ocnn = regularizers.get("ocnn")
    weight = random_weight((4, 2, 3, 3))
    assert ocnn(weight) == ocnn(weight, stride=1) != ocnn(weight, stride=2)
    assert torch.equal(ocnn.batched(weight[None]), ocnn.batched(weight[None], stride=1))


def test_a_half_precision_weight_is_penalized_in_float32():
    weight = random_weight((4, 2, 3, 3)).bfloat16()
    for name in ("so", "cs"):
        reg = regularizers.get(name)
        penalty = reg(weight)
        assert penalty.dtype == torch.float32, name
        assert penalty == reg(weight.float()), name


def test_a_penalty_sees_each_conv_layers_stride():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 4, 3, stride=2, bias=False)
    ocnn = regularizers.get("ocnn")
    with torch.no_grad():
        strided, plain = ocnn(conv.weight, stride=2).item(), ocnn(conv.weight, stride=1).item()
        assert strided != plain
        for batched in (True, False):
            assert ocnn.penalty(nn.Sequential(conv), batched=batched).item() == pytest.approx(
                strided, rel=1e-12)


def test_srip_with_one_product_normalizes_each_layers_start_vector_alone():
    """power_iterations=1: s = ||A b|| / ||b|| per layer, so a stack gives what its layers give
    one by one from the same stream (each b normalized by its own norm, not the stack's)."""
    weights = random_weight((3, 4, 2, 3, 3))
    stacked = regularizers.get("srip", power_iterations=1, seed=3).batched(weights)
    one_by_one = regularizers.get("srip", power_iterations=1, seed=3)
    expected = torch.stack([one_by_one.batched(weight[None])[0] for weight in weights])
    torch.testing.assert_close(stacked, expected, rtol=1e-12, atol=0)
