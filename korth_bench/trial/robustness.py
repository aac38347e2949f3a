"""Robustness on the fixed evaluation subset (``DataSplits.fixed_x``): CIFAR-10-C-style corruptions and white-box attacks.

Corruptions follow the recipe of Hendrycks & Dietterich's CIFAR-10-C (their severity parameters
for 32x32 images), generated on the CPU from a fixed seed per (corruption, severity) and quantized
to uint8 as the published set is, so every trial sees the very same corrupted images. On JPEG-stored
data the ``jpeg`` corruption compresses a second time.

Attacks are FGSM and PGD-Linf (random start, ``steps`` steps of ``step_ratio * eps``) in [0, 1]
pixel space. An example counts as robust only when it is classified correctly on the clean image
and at every attack iterate, the FGSM point included, so PGD <= FGSM <= clean holds by
construction.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from korth_bench.errors import ConfigError
from korth_bench.trial import progress

# Severity 1..5 parameters, CIFAR-10-C (make_cifar_c.py): noise std, photon count, flip
# probability, blur sigma, contrast factor, brightness shift in HSV value, JPEG quality, pixelate
# scale factor.
SEVERITY_PARAMS: Dict[str, Sequence[float]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "jpeg": (80, 65, 58, 50, 40),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
}


# ---------------------------------------------------------------------- corruptions
# Each takes float64 images in [0, 1], shape [N, 3, H, W] on the CPU, the severity parameter and a
# torch.Generator, and returns float64 images (clipped and quantized by ``corrupt``) or, for the
# ones defined on PIL images, uint8 images. The deterministic ones (blur, contrast, brightness,
# jpeg, pixelate) evaluate make_cifar_c.py's formulas in the same float64 operation order, so after
# the truncating quantization they are bit-identical to the published generator.
def _gaussian_noise(x, std, gen):
    return x + std * torch.randn(x.shape, generator=gen)


def _shot_noise(x, photons, gen):
    return torch.poisson(x * photons, generator=gen) / photons


def _impulse_noise(x, amount, gen):
    # Salt and pepper on every value independently: with probability ``amount`` it is replaced,
    # half of the time by 1 and half by 0 (skimage's random_noise 's&p').
    hit = torch.rand(x.shape, generator=gen) < amount
    salt = torch.rand(x.shape, generator=gen) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """1D Gaussian kernel truncated at 4 sigma (skimage's default), normalized to sum 1 (float64).

    w_t = exp(-0.5 / sigma^2 * t^2) / sum_t(...), t = -r..r, r = int(4 sigma + 0.5), evaluated in
    scipy.ndimage's order so the weights are the very same floats.
    """
    radius = int(4.0 * sigma + 0.5)
    t = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 / (sigma * sigma) * t ** 2)
    return kernel / kernel.sum()


def _blur_axis(x: torch.Tensor, kernel: np.ndarray, dim: int) -> torch.Tensor:
    """Correlate along ``dim`` with a symmetric kernel, edges replicated ('nearest').

    Summed as w_0 x_i + sum_{j=1..r} w_j (x_{i+j} + x_{i-j}), j ascending: scipy.ndimage's
    order for a symmetric kernel, hence its rounding.
    """
    radius = len(kernel) // 2
    size = x.shape[dim]
    index = torch.arange(size)
    out = x * float(kernel[radius])
    for j in range(1, radius + 1):
        ahead = x.index_select(dim, (index + j).clamp(max=size - 1))
        behind = x.index_select(dim, (index - j).clamp(min=0))
        out = out + (ahead + behind) * float(kernel[radius + j])
    return out


def _gaussian_blur(x, sigma, gen):
    # Rows (height) first, then columns, as gaussian_filter walks the axes of an HWC image.
    kernel = gaussian_kernel(sigma)
    return _blur_axis(_blur_axis(x, kernel, 2), kernel, 3)


def _contrast(x, factor, gen):
    # Per image and channel mean, summed as numpy sums an HWC image over (H, W).
    hwc = x.permute(0, 2, 3, 1).numpy()
    means = np.stack([image.mean(axis=(0, 1)) for image in hwc])
    means = torch.from_numpy(means)[:, :, None, None]
    return (x - means) * factor + means


def _brightness(x, shift, gen):
    # Add ``shift`` to the HSV value V = max(r, g, b), keeping hue H and saturation S: RGB -> HSV
    # (H in [0, 1), S = (max - min) / max) -> V' = min(V + shift, 1) -> RGB (hexcone sectors).
    r, g, b = x.unbind(1)
    value = x.amax(dim=1)
    delta = value - x.amin(dim=1)
    grey = delta == 0
    saturation = torch.where(grey, 0.0, delta / torch.where(value == 0, 1.0, value))
    safe = torch.where(grey, 1.0, delta)
    hue = torch.where(r == value, (g - b) / safe, 0.0)
    hue = torch.where(g == value, 2.0 + (b - r) / safe, hue)
    hue = torch.where(b == value, 4.0 + (r - g) / safe, hue)
    hue = torch.where(grey, 0.0, torch.remainder(hue / 6.0, 1.0))
    value = (value + shift).clamp(0, 1)
    sector = torch.floor(hue * 6)
    f = hue * 6 - sector
    p = value * (1 - saturation)
    q = value * (1 - f * saturation)
    t = value * (1 - (1 - f) * saturation)
    sector = sector.to(torch.int64) % 6
    table = torch.stack([torch.stack(c, 1) for c in ((value, t, p), (q, value, p), (p, value, t),
                                                     (p, q, value), (t, p, value), (value, p, q))])
    return table.gather(0, sector[None, :, None].expand(1, *x.shape))[0]


def _per_image_pil(x, transform: Callable[[Image.Image], Image.Image]):
    arrays = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = [np.asarray(transform(Image.fromarray(a))) for a in arrays]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def _jpeg(x, quality, gen):
    def recompress(image):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(quality))
        return Image.open(buffer).convert("RGB")

    return _per_image_pil(x, recompress)


def _pixelate(x, factor, gen):
    height, width = x.shape[2:]

    def pixelate(image):
        small = image.resize((int(width * factor), int(height * factor)), Image.BOX)
        return small.resize((width, height), Image.BOX)

    return _per_image_pil(x, pixelate)


_CORRUPTIONS = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
    "gaussian_blur": _gaussian_blur, "contrast": _contrast, "brightness": _brightness,
    "jpeg": _jpeg, "pixelate": _pixelate,
}
CORRUPTIONS = tuple(_CORRUPTIONS)
"""The corruption names, in table order: the one list the config validates against."""
SEVERITIES = (1, 2, 3, 4, 5)
ATTACKS = ("fgsm", "pgd")


@dataclass(frozen=True)
class RobustnessOptions:
    """What the robustness suite runs (the ``robustness_*`` trial keys without the prefix)."""
    corruptions: Tuple[str, ...] = CORRUPTIONS
    severities: Tuple[int, ...] = SEVERITIES
    attacks: Tuple[str, ...] = ATTACKS
    pgd_eps: Tuple[int, ...] = (1, 2, 8)   # attack radii in units of 1/255
    pgd_steps: int = 10
    pgd_step_ratio: float = 0.25           # PGD step size as a fraction of eps
    seed: int = 0                          # corruption noise and attack starts


def check(options: RobustnessOptions) -> None:
    """Raise ``ConfigError`` naming the ``robustness_*`` key, the value and what is allowed."""
    def choose(key: str, values: Sequence, allowed: Sequence) -> None:
        for value in values:
            if value not in allowed:
                raise ConfigError(f"robustness_{key}={value!r} is not allowed; choose from: "
                                  f"{', '.join(map(str, allowed))}")
    choose("corruptions", options.corruptions, CORRUPTIONS)
    choose("severities", options.severities, SEVERITIES)
    choose("attacks", options.attacks, ATTACKS)
    for eps in options.pgd_eps:
        if eps < 1:
            raise ConfigError(f"robustness_pgd_eps={eps!r} must be >= 1 (radii in units of 1/255)")
    if options.pgd_steps < 1:
        raise ConfigError(f"robustness_pgd_steps={options.pgd_steps!r} must be >= 1")
    if not 0.0 < options.pgd_step_ratio <= 1.0:
        raise ConfigError(f"robustness_pgd_step_ratio={options.pgd_step_ratio!r} must be in (0, 1]")
    if options.seed < 0:
        raise ConfigError(f"robustness_seed={options.seed!r} must be >= 0")


def corruption_seed(name: str, severity: int, base_seed: int = 0) -> int:
    """The fixed seed of one (corruption, severity): the same in every trial and on every device."""
    return base_seed * 1000 + list(SEVERITY_PARAMS).index(name) * 10 + severity


def corrupt(images: torch.Tensor, name: str, severity: int, base_seed: int = 0) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1-5) to uint8 images ``[N, 3, H, W]``.

    Returns uint8 images on the CPU, quantized as make_cifar_c.py stores CIFAR-10-C:
    ``uint8(clip(x, 0, 1) * 255)``, which truncates (a float result in [k, k+1) stores k).
    """
    if name not in _CORRUPTIONS:
        raise ConfigError(f"unknown corruption {name!r}; choose from: {', '.join(_CORRUPTIONS)}")
    if severity not in range(1, 6):
        raise ConfigError(f"corruption severity={severity!r} must be one of 1, 2, 3, 4, 5")
    generator = torch.Generator().manual_seed(corruption_seed(name, severity, base_seed))
    x = images.detach().cpu().double() / 255
    out = _CORRUPTIONS[name](x, SEVERITY_PARAMS[name][severity - 1], generator)
    if out.dtype == torch.uint8:
        return out
    return (out.clamp(0, 1) * 255).to(torch.uint8)  # float -> uint8 truncates toward zero


# ---------------------------------------------------------------------- evaluation
@torch.no_grad()
def correct_mask(classify: Callable[[torch.Tensor], torch.Tensor], images01: torch.Tensor,
                 labels: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Boolean [N]: whether each image (floats in [0, 1]) is classified as its label."""
    masks = [classify(x).argmax(1) == y
             for x, y in zip(images01.split(batch_size), labels.split(batch_size))]
    return torch.cat(masks)


def attack_masks(classify, images01: torch.Tensor, labels: torch.Tensor, eps: float, steps: int,
                 step_ratio: float, generator: torch.Generator) -> Dict[str, torch.Tensor]:
    """Robust-example masks for FGSM and PGD-Linf at radius ``eps`` on one batch.

    FGSM: x + eps * sign(grad). PGD: start uniformly in the eps-ball, then ``steps`` signed
    gradient steps of ``step_ratio * eps``, projected on the ball and on [0, 1]. The FGSM mask
    requires the clean and FGSM predictions correct; the PGD mask requires that and every PGD
    iterate (the random start included) correct.

    PGD runs only on the examples still robust: an example that fails once can never count again,
    and in eval mode each example's gradient is its own, so dropping the failed ones changes no
    other example's iterates. The random start is drawn for the whole batch first, so the random
    stream does not depend on which examples survive.
    """
    def loss_grad(x, y):
        x = x.detach().requires_grad_(True)
        logits = classify(x)
        grad, = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x)
        return grad, logits.detach().argmax(1) == y

    grad, robust = loss_grad(images01, labels)  # clean correctness comes with the first gradient
    fgsm_point = (images01 + eps * grad.sign()).clamp(0, 1)
    with torch.no_grad():
        robust = robust & (classify(fgsm_point).argmax(1) == labels)
    noise = torch.rand(images01.shape, generator=generator, device=generator.device)
    start = (images01 + eps * (2 * noise.to(images01.device) - 1)).clamp(0, 1)
    alive = robust.nonzero().squeeze(1)  # indices into the batch of the examples still robust
    clean, y, x = images01[alive], labels[alive], start[alive]
    for _ in range(steps):
        if alive.numel() == 0:
            break
        grad, correct = loss_grad(x, y)
        x = (clean + (x + step_ratio * eps * grad.sign() - clean).clamp(-eps, eps)).clamp(0, 1)
        alive, clean, y, x = alive[correct], clean[correct], y[correct], x[correct]
    if alive.numel():
        with torch.no_grad():
            alive = alive[classify(x).argmax(1) == y]
    pgd = torch.zeros_like(robust)
    pgd[alive] = True
    return {"fgsm": robust, "pgd": pgd}


def evaluate_robustness(classify, test_x: torch.Tensor, test_y: torch.Tensor,
                        options: RobustnessOptions, batch_size: int) -> List[dict]:
    """Rows of the ``robustness`` table for one model on the fixed robustness subset.

    Args:
        classify: maps float images in [0, 1] ``[B, 3, H, W]`` on the model's device to logits
            (normalization inside), in eval mode.
        test_x, test_y: the subset, uint8 images and int64 labels on the model's device.
        options: the corruptions, severities, attacks and radii to run.
        batch_size: images per forward pass.
    Returns:
        dicts with kind (clean, corruption, attack), name, severity (0 for clean, 1-5 for
        corruptions, k for eps k/255), eps, accuracy, num_examples.
    """
    device = test_x.device
    n = len(test_y)

    def row(kind, name, severity, accuracy, eps=None):
        return {"kind": kind, "name": name, "severity": severity, "eps": eps,
                "accuracy": accuracy, "num_examples": n}

    images01 = test_x.float() / 255
    batches = math.ceil(n / batch_size)
    bar = progress.Bar("robustness", len(options.corruptions) * len(options.severities)
                       + len(options.pgd_eps) * batches)
    rows = [row("clean", "clean", 0, correct_mask(classify, images01, test_y, batch_size))]
    for name in options.corruptions:
        for severity in options.severities:
            corrupted = corrupt(test_x, name, severity, options.seed).to(device).float() / 255
            rows.append(row("corruption", name, severity,
                            correct_mask(classify, corrupted, test_y, batch_size)))
            bar.advance()
    generator = torch.Generator(device=device)
    for k in options.pgd_eps:
        eps = k / 255
        generator.manual_seed(options.seed * 1000 + k)
        masks = {name: [] for name in ("fgsm", "pgd")}
        for x, y in zip(images01.split(batch_size), test_y.split(batch_size)):
            steps = options.pgd_steps if "pgd" in options.attacks else 0
            for name, mask in attack_masks(classify, x, y, eps, steps, options.pgd_step_ratio,
                                           generator).items():
                masks[name].append(mask)
            bar.advance()
        for name in options.attacks:
            rows.append(row("attack", name, k, torch.cat(masks[name]), eps))
    bar.close()
    # One host synchronization for all the accuracies.
    accuracies = torch.stack([r["accuracy"].float().mean() for r in rows]).tolist()
    for r, accuracy in zip(rows, accuracies):
        r["accuracy"] = accuracy
    return rows


def summarize(rows: List[dict]) -> Dict[str, Optional[float]]:
    """The ``trials`` columns: clean_acc, corruption_acc_mean, fgsm/pgd_acc_<k>_255."""
    summary: Dict[str, Optional[float]] = {}
    corruption = [r["accuracy"] for r in rows if r["kind"] == "corruption"]
    for r in rows:
        if r["kind"] == "clean":
            summary["clean_acc"] = r["accuracy"]
        elif r["kind"] == "attack":
            summary[f"{r['name']}_acc_{r['severity']}_255"] = r["accuracy"]
    summary["corruption_acc_mean"] = float(np.mean(corruption)) if corruption else None
    return summary
