"""Batches made on the data's device: shuffling, crop-and-flip augmentation, normalization.

As in airbench's ``CifarLoader``, the uint8 images stay on the device and every random choice of
a batch is a handful of vectorized tensor ops drawn from one ``torch.Generator`` living on that
device, so the same code runs on CPU and CUDA and never touches the global RNG.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

CROP_PADDING = 4  # pixels of zero padding around each image before the random crop (CIFAR standard)

Stats = Union[Sequence[float], torch.Tensor]


def normalize(images: torch.Tensor, mean: Stats, std: Stats) -> torch.Tensor:
    """Float images ``(x / 255 - mean) / std`` from uint8 images ``[B, C, H, W]``.

    Args:
        images: uint8 images on any device.
        mean, std: per-channel statistics on the 0..1 scale (``DataSplits.mean`` / ``.std``).

    Returns:
        float32 tensor of the same shape on the same device.
    """
    scale, shift = affine(mean, std, images.device)
    return images.float() * scale + shift


def affine(mean: Stats, std: Stats, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """``scale, shift`` (shape ``[1, C, 1, 1]``) with ``x * scale + shift == (x/255 - mean)/std``."""
    mean = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return 1.0 / (255.0 * std), -mean / std


def crop(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop a different ``height x width`` window out of every image in one gather.

    Args:
        images: ``[B, C, H, W]``.
        top, left: int64 ``[B]`` window corners, on the images' device.
        height, width: window size.

    Returns:
        ``[B, C, height, width]``.
    """
    size, channels, _, stride = images.shape
    rows = top[:, None] + torch.arange(height, device=images.device)
    cols = left[:, None] + torch.arange(width, device=images.device)
    flat = (rows[:, :, None] * stride + cols[:, None, :]).view(size, 1, height * width)
    windows = images.reshape(size, channels, -1).gather(2, flat.expand(size, channels, -1))
    return windows.view(size, channels, height, width)


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = CROP_PADDING) -> torch.Tensor:
    """Random crop after ``padding`` pixels of zeros (black, as torchvision's ``RandomCrop`` pads
    before normalization), then a horizontal flip with probability 1/2; per image, one batch op.

    Args:
        images: ``[B, C, H, W]`` (uint8 or float).
        generator: the source of all randomness, on the images' device.
        padding: zero padding on every side; offsets are uniform in ``0..2*padding``.

    Returns:
        Augmented images, same shape and dtype.
    """
    size, height, width = len(images), images.shape[2], images.shape[3]
    padded = F.pad(images, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (size,), generator=generator, device=images.device)
    left = torch.randint(0, 2 * padding + 1, (size,), generator=generator, device=images.device)
    cropped = crop(padded, top, left, height, width)
    flip = torch.rand(size, generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(3), cropped)


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: Optional[torch.Generator],
            augment: bool, shuffle: bool, mean: Stats, std: Stats,
            drop_last: bool = False) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Iterate over ``(images, labels)`` batches built on the data's device.

    Args:
        x: uint8 images ``[N, C, H, W]``.
        y: int64 labels ``[N]`` on the same device.
        batch_size: images per batch (the last one may be smaller unless ``drop_last``).
        generator: ``torch.Generator`` on ``x.device``; draws the order and the augmentation.
            Only needed when ``shuffle`` or ``augment``.
        augment: random crop with 4-pixel zero padding and horizontal flip.
        shuffle: a random permutation per call (an epoch); otherwise the stored order.
        mean, std: per-channel statistics on the 0..1 scale.
        drop_last: skip the final incomplete batch.

    Yields:
        float32 normalized images ``[b, C, H, W]`` and int64 labels ``[b]``.

    Raises:
        ValueError: a needed generator is missing or lives on another device type.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if shuffle or augment:
        if generator is None:
            raise ValueError("batches needs a torch.Generator when shuffle or augment is set")
        if generator.device.type != x.device.type:
            raise ValueError(
                f"the generator is on {generator.device} but the images on {x.device}; "
                f"create it with torch.Generator(device=images.device)"
            )
    count = len(x)
    order = (torch.randperm(count, generator=generator, device=x.device) if shuffle
             else torch.arange(count, device=x.device))
    stop = count - count % batch_size if drop_last else count
    scale, shift = affine(mean, std, x.device)
    for start in range(0, stop, batch_size):
        index = order[start:start + batch_size]
        images = x[index]
        if augment:
            images = random_crop_flip(images, generator)
        yield images.float() * scale + shift, y[index]
