"""Corruptions apply their defining parameters with fixed seeds; attacks obey PGD <= FGSM <= clean."""
import io

import numpy as np
import pytest
import skimage.color
import skimage.filters
import torch
import torch.nn as nn
from PIL import Image

from korth_bench.trial import robustness
from korth_bench.trial.robustness import SEVERITY_PARAMS, corrupt

SEVERITIES = range(1, 6)


def images(n=16, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(30, 226, (n, 3, size, size), generator=generator, dtype=torch.uint8)


@pytest.mark.parametrize("name", list(SEVERITY_PARAMS))
def test_fixed_seed_per_corruption_and_severity(name):
    x = images()
    outputs = [corrupt(x, name, s) for s in SEVERITIES]
    for severity, out in zip(SEVERITIES, outputs):
        assert out.dtype == torch.uint8 and out.shape == x.shape
        assert torch.equal(out, corrupt(x, name, severity))  # same seed, same images
    assert not torch.equal(outputs[0], outputs[-1])


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_noise_standard_deviation(severity):
    flat = torch.full((64, 3, 32, 32), 128, dtype=torch.uint8)
    residual = corrupt(flat, "gaussian_noise", severity).float() / 255 - 128 / 255
    expected = SEVERITY_PARAMS["gaussian_noise"][severity - 1]
    assert residual.std().item() == pytest.approx(expected, rel=0.03)


def make_cifar_c(name, image_hwc, c):
    """Hendrycks' make_cifar_c.py for one deterministic corruption: its formula, then np.uint8."""
    x = np.array(image_hwc) / 255.
    if name == "gaussian_blur":
        x = skimage.filters.gaussian(x, sigma=c, channel_axis=-1)
    elif name == "contrast":
        means = np.mean(x, axis=(0, 1), keepdims=True)
        x = (x - means) * c + means
    elif name == "brightness":
        x = skimage.color.rgb2hsv(x)
        x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
        x = skimage.color.hsv2rgb(x)
    return np.uint8(np.clip(x, 0, 1) * 255)


@pytest.mark.parametrize("name", ["gaussian_blur", "contrast", "brightness"])
def test_deterministic_corruptions_are_bit_identical_to_make_cifar_c(name):
    x = torch.randint(0, 256, (48, 3, 32, 32), generator=torch.Generator().manual_seed(3),
                      dtype=torch.uint8)
    x[0] = 77  # a flat image: the float result sits on an integer, where rounding and truncation part
    x[1, :, :16] = 0  # black pixels (V = 0) and
    x[2, 0] = 255  # saturated ones
    for severity in SEVERITIES:
        c = SEVERITY_PARAMS[name][severity - 1]
        got = corrupt(x, name, severity).permute(0, 2, 3, 1).numpy()
        want = np.stack([make_cifar_c(name, image, c) for image in x.permute(0, 2, 3, 1).numpy()])
        assert np.array_equal(got, want), (name, severity, int((got != want).sum()))


def test_quantization_truncates():
    # contrast 0.5 around a mean of 100.5/255: 101 -> 100.75 stores 100 (rounding would give 101)
    x = torch.tensor([100, 101], dtype=torch.uint8).repeat_interleave(512).view(1, 1, 32, 32).expand(1, 3, 32, 32)
    out = corrupt(x.contiguous(), "contrast", 2)
    assert set(out.unique().tolist()) == {100}


@pytest.mark.parametrize("severity", SEVERITIES)
def test_jpeg_quality_and_pixelate_factor(severity):
    x = images(n=3)
    quality = SEVERITY_PARAMS["jpeg"][severity - 1]
    factor = SEVERITY_PARAMS["pixelate"][severity - 1]
    for i, array in enumerate(x.permute(0, 2, 3, 1).numpy()):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "JPEG", quality=quality)
        jpeg = np.asarray(Image.open(buffer).convert("RGB"))
        assert np.array_equal(corrupt(x, "jpeg", severity)[i].permute(1, 2, 0).numpy(), jpeg)
        side = int(32 * factor)
        pixelated = Image.fromarray(array).resize((side, side), Image.BOX).resize((32, 32), Image.BOX)
        assert np.array_equal(corrupt(x, "pixelate", severity)[i].permute(1, 2, 0).numpy(),
                              np.asarray(pixelated))


@pytest.mark.parametrize("severity", SEVERITIES)
def test_noise_parameters(severity):
    flat = torch.full((64, 3, 32, 32), 128, dtype=torch.uint8)
    amount = SEVERITY_PARAMS["impulse_noise"][severity - 1]
    changed = (corrupt(flat, "impulse_noise", severity) != 128).float().mean().item()
    assert changed == pytest.approx(amount, rel=0.1)
    photons = SEVERITY_PARAMS["shot_noise"][severity - 1]
    shot = corrupt(flat, "shot_noise", severity).float() / 255
    p = 128 / 255
    assert shot.std().item() == pytest.approx((p / photons) ** 0.5, rel=0.1)  # Poisson: var = p/c


def test_attack_accuracies_are_nested_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 3)).eval()
    x = images(n=64)
    with torch.no_grad():  # labels the model mostly gets right, so clean accuracy is high
        y = model(x.float() / 255).argmax(1)
        y[::4] = (y[::4] + 1) % 3
    options = robustness.RobustnessOptions(corruptions=("contrast",), severities=(1, 5),
                                           attacks=("fgsm", "pgd"), pgd_eps=(1, 2, 8))
    rows = robustness.evaluate_robustness(lambda z: model(z), x, y, options, batch_size=32)
    clean = next(r["accuracy"] for r in rows if r["kind"] == "clean")
    assert clean == pytest.approx(0.75)
    for k in (1, 2, 8):
        fgsm = next(r["accuracy"] for r in rows if r["name"] == "fgsm" and r["severity"] == k)
        pgd = next(r["accuracy"] for r in rows if r["name"] == "pgd" and r["severity"] == k)
        assert pgd <= fgsm <= clean
    summary = robustness.summarize(rows)
    assert set(summary) >= {"clean_acc", "corruption_acc_mean", "fgsm_acc_8_255", "pgd_acc_1_255"}


def reference_attack_masks(classify, x0, y, eps, steps, step_ratio, generator):
    """The attacks on the whole batch at every step, the definition the pruned version keeps."""
    def grad_and_correct(x):
        x = x.detach().requires_grad_(True)
        logits = classify(x)
        grad, = torch.autograd.grad(nn.functional.cross_entropy(logits, y, reduction="sum"), x)
        return grad, logits.argmax(1) == y

    grad, robust = grad_and_correct(x0)
    robust &= classify((x0 + eps * grad.sign()).clamp(0, 1)).argmax(1) == y
    fgsm = robust.clone()
    x = (x0 + eps * (2 * torch.rand(x0.shape, generator=generator).to(x0) - 1)).clamp(0, 1)
    for _ in range(steps):
        grad, correct = grad_and_correct(x)
        robust &= correct
        x = (x0 + (x + step_ratio * eps * grad.sign() - x0).clamp(-eps, eps)).clamp(0, 1)
    return {"fgsm": fgsm, "pgd": robust & (classify(x).argmax(1) == y)}


def test_pgd_on_the_surviving_examples_only_gives_the_full_batch_masks():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                          nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(), nn.Linear(256, 3)).double().eval()
    x = images(n=96, size=16).double() / 255
    with torch.no_grad():
        y = model(x).argmax(1)
        y[::5] = (y[::5] + 1) % 3
    for eps, pgd_below_fgsm in ((2 / 255, False), (8 / 255, True), (16 / 255, True)):
        got = robustness.attack_masks(model, x, y, eps, 10, 0.25,
                                      torch.Generator().manual_seed(7))
        want = reference_attack_masks(model, x, y, eps, 10, 0.25, torch.Generator().manual_seed(7))
        assert torch.equal(got["fgsm"], want["fgsm"]) and torch.equal(got["pgd"], want["pgd"])
        # 8/255 prunes examples part-way through PGD (47 FGSM-robust, 33 PGD-robust)
        assert (want["pgd"].sum() < want["fgsm"].sum()) == pgd_below_fgsm
