"""CIFAR-10 and CIFAR-100 from a torchvision root (``<data_root>/cifar-10-batches-py`` and so on)."""
from __future__ import annotations

import os
from typing import List, Tuple, Type

import torch
from torchvision.datasets import CIFAR10, CIFAR100

from korth_bench.data._api import ImagePool, SourceOptions, register
from korth_bench.data.cache import cache_root
from korth_bench.errors import ConfigError


CIFAR_POOL_SIZES = (50000, 10000)
"""Training and test images of CIFAR-10 and CIFAR-100."""


def check_options(options: SourceOptions) -> None:
    """A file's data set has its own classes and image size: only synthetic data takes them."""
    if options.num_classes is not None:
        raise ConfigError(f"num_classes={options.num_classes!r} applies only to dataset=synthetic "
                          "(the others take it from the data)")


def default_root() -> str:
    return str(cache_root() / "torchvision")


def read_cifar(dataset_class: Type[CIFAR10], data_root: str, download: bool) -> Tuple[ImagePool, List[str]]:
    """Both splits of a torchvision CIFAR data set as uint8 ``[N, 3, 32, 32]`` tensors.

    Args:
        dataset_class: ``CIFAR10`` or ``CIFAR100``.
        data_root: the torchvision root (the folder that holds ``cifar-10-batches-py``).
        download: let torchvision fetch the archive into ``data_root`` when it is missing.

    Returns:
        ``(pool, class_names)``.

    Raises:
        ValueError: the files are missing (or corrupt) and ``download`` is False.
    """
    root = os.path.expanduser(data_root)
    try:
        splits = [dataset_class(root, train=train, download=download) for train in (True, False)]
    except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
        raise ConfigError(
            f"{dataset_class.__name__} not found under data_root={root!r} (looked for "
            f"{os.path.join(root, dataset_class.base_folder)}); pass download=True (--set "
            f"download=true) to fetch it there, or set data_root to the folder that holds "
            f"{dataset_class.base_folder}"
        ) from error
    images = [torch.from_numpy(split.data).permute(0, 3, 1, 2).contiguous() for split in splits]
    labels = [torch.tensor(split.targets, dtype=torch.long) for split in splits]
    pool = ImagePool(images[0], labels[0], images[1], labels[1], num_classes=len(splits[0].classes))
    return pool, list(splits[0].classes)


@register("cifar10", pool_sizes=CIFAR_POOL_SIZES, check=check_options)
def cifar10(options: SourceOptions) -> ImagePool:
    """CIFAR-10 (50,000 train, 10,000 test, 10 classes)."""
    return read_cifar(CIFAR10, options.data_root or default_root(), options.download)[0]


@register("cifar100", pool_sizes=CIFAR_POOL_SIZES, check=check_options)
def cifar100(options: SourceOptions) -> ImagePool:
    """CIFAR-100 (50,000 train, 10,000 test, 100 fine classes)."""
    return read_cifar(CIFAR100, options.data_root or default_root(), options.download)[0]
