"""The ``synthetic`` data set: class-structured images made on the fly, any size and count.

Each class has a smooth random colour pattern, its prototype, drawn from a fixed task seed: the
task is the same for every trial, as a real data set would be. Each image is its class's
prototype, shifted by up to ``MAX_SHIFT`` pixels, plus a smooth per-image distractor pattern of
similar strength, pixel noise and a per-channel colour jitter. The trial seed draws the training
images; the test images are drawn from the task seed, so, as in a real data set, every trial is
tested on the same pool.
A small CNN beats chance within an epoch or two but does not reach 100% quickly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from korth_bench.data._api import ImagePool, SourceOptions, register
from korth_bench.data.augment import crop
from korth_bench.data.splits import role_generator
from korth_bench.errors import ConfigError

DEFAULT_TRAIN_SIZE = 2000
DEFAULT_TEST_SIZE = 500
DEFAULT_NUM_CLASSES = 10
TASK_SEED = 1729  # fixes the class prototypes and the test images, i.e. the task; the trial seed draws the training images
MAX_SHIFT = 4  # pixels a prototype may move in each direction
GRID = 4  # a pattern is a GRID x GRID field of random colours, smoothly upsampled
DISTRACTOR_STRENGTH = 1.0  # relative to the prototype's unit standard deviation
NOISE_STRENGTH = 0.6
GAIN_JITTER = 0.25  # std of the per-image, per-channel contrast factor around 1
OFFSET_JITTER = 0.3  # std of the per-image, per-channel shift


def smooth_patterns(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``[count, 3, size, size]`` smooth random patterns, each with zero mean and unit std.

    A ``GRID x GRID`` field of random colours upsampled bicubically; bicubic upsampling is
    separable, so it is two small matrix products instead of a per-pixel interpolation.
    """
    coarse = torch.randn(count, 3, GRID, GRID, generator=generator)
    unit_rows = torch.eye(GRID).view(GRID, 1, 1, GRID)
    upsample = F.interpolate(unit_rows, size=(1, size), mode="bicubic", align_corners=False)
    upsample = upsample.view(GRID, size)  # row g: how grid point g spreads over the pixels
    patterns = torch.einsum("gs,ncgh,ht->ncst", upsample, coarse, upsample)
    patterns = patterns - patterns.mean(dim=(1, 2, 3), keepdim=True)
    return patterns / patterns.std(dim=(1, 2, 3), keepdim=True)


def render(labels: torch.Tensor, prototypes: torch.Tensor, image_size: int, generator: torch.Generator) -> torch.Tensor:
    """uint8 ``[N, 3, image_size, image_size]`` images of the given classes."""
    count = len(labels)
    top = torch.randint(0, 2 * MAX_SHIFT + 1, (count,), generator=generator)
    left = torch.randint(0, 2 * MAX_SHIFT + 1, (count,), generator=generator)
    signal = crop(prototypes[labels], top, left, image_size, image_size)
    distractor = smooth_patterns(count, image_size, generator)
    noise = torch.randn(count, 3, image_size, image_size, generator=generator)
    gain = 1 + GAIN_JITTER * torch.randn(count, 3, 1, 1, generator=generator)
    offset = OFFSET_JITTER * torch.randn(count, 3, 1, 1, generator=generator)
    values = (signal + DISTRACTOR_STRENGTH * distractor + NOISE_STRENGTH * noise) * gain + offset
    # About 2.5 standard deviations on each side of mid-grey fit into 0..255.
    return (128 + 40 * values).round().clamp(0, 255).to(torch.uint8)


def balanced_split(count: int, prototypes: torch.Tensor, image_size: int, seed: int, role: str) -> tuple:
    """``(images, labels)``: ``count`` images, the classes taking turns."""
    labels = torch.arange(count) % len(prototypes)
    return render(labels, prototypes, image_size, role_generator(seed, role)), labels


def check_options(options: SourceOptions) -> None:
    """Synthetic images need at least two classes and 8 pixels a side."""
    if options.num_classes is not None and options.num_classes < 2:
        raise ConfigError(f"num_classes={options.num_classes!r} must be >= 2")
    if options.image_size < 8:
        raise ConfigError(f"image_size={options.image_size!r} must be >= 8")


@register("synthetic", pool_sizes=(DEFAULT_TRAIN_SIZE, DEFAULT_TEST_SIZE), check=check_options)
def synthetic(options: SourceOptions) -> ImagePool:
    """``train_size + val_size`` training and ``test_size`` test images (defaults 2000 / 500)."""
    num_classes = options.num_classes or DEFAULT_NUM_CLASSES
    train_count = (options.train_size or DEFAULT_TRAIN_SIZE) + options.val_size
    test_count = options.test_size or DEFAULT_TEST_SIZE
    prototypes = smooth_patterns(num_classes, options.image_size + 2 * MAX_SHIFT,
                                 torch.Generator().manual_seed(TASK_SEED))
    train_x, train_y = balanced_split(train_count, prototypes, options.image_size, options.seed, "synthetic-train")
    test_x, test_y = balanced_split(test_count, prototypes, options.image_size, TASK_SEED, "synthetic-test")
    return ImagePool(train_x, train_y, test_x, test_y, num_classes)
