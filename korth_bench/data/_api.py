"""The data-set registry and ``load``: pool -> seeded stratified splits -> uint8 tensors on the device.

A data set is a *source* function ``source(options: SourceOptions) -> ImagePool`` that returns
its full train and test pools on the CPU; ``load`` draws the validation split and the subsets,
moves them to the device once and measures the per-channel statistics of the training split.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, Union

import torch

from korth_bench.data.splits import fixed_subset, split_train_val, subset_test
from korth_bench.registry import Registry


@dataclass(frozen=True)
class SourceOptions:
    """What ``load`` passes to every source; each source reads the fields it needs."""

    seed: int
    train_size: int
    val_size: int
    test_size: int
    data_path: Optional[str]
    data_root: Optional[str]
    download: bool
    num_classes: Optional[int]
    image_size: int


@dataclass
class ImagePool:
    """A data set's full train and test images on the CPU, uint8 ``[N, 3, H, W]``, int64 labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int


@dataclass(repr=False)
class DataSplits:
    """The images of one trial, uint8 ``[N, 3, H, W]`` and int64 ``[N]`` on the trial's device.

    ``val_x``/``val_y`` are empty when no validation split was asked for. ``mean``/``std`` are
    per-channel statistics of ``train_x`` on the 0..1 scale, for ``normalize`` and ``batches``.
    ``fixed_x``/``fixed_y`` are the fixed evaluation subset of the whole test pool (robustness
    and the feature-map probe): the same images for every trial seed and ``test_size``.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    name: str
    fixed_x: torch.Tensor
    fixed_y: torch.Tensor

    def __repr__(self) -> str:
        sizes = ", ".join(f"{split}={len(getattr(self, split + '_y'))}" for split in ("train", "val", "test"))
        return (f"DataSplits({self.name!r}, {sizes}, image={tuple(self.train_x.shape[1:])}, "
                f"num_classes={self.num_classes}, device={self.train_x.device})")


_DATASETS = Registry("dataset")
Source = Callable[[SourceOptions], ImagePool]


def register(name: str) -> Callable[[Source], Source]:
    """Decorator adding a data set: ``source(options: SourceOptions) -> ImagePool``."""
    return _DATASETS.register(name)


def names() -> List[str]:
    """Registered data-set names, sorted."""
    return _DATASETS.names()


def load(dataset: str, *, device: Union[str, torch.device], seed: int, train_size: int = 0,
         val_size: int = 0, test_size: int = 0, data_path: Optional[str] = None,
         data_root: Optional[str] = None, download: bool = False, num_classes: Optional[int] = None,
         image_size: int = 32, fixed_size: int = 0, fixed_seed: int = 0) -> DataSplits:
    """Load a data set's splits as uint8 tensors on ``device``.

    Args:
        dataset: ``cifar10``, ``cifar100``, ``packed``, ``synthetic`` (see ``names()``).
        device: where the tensors go.
        seed: draws the validation split and the subsets (and the synthetic images).
        train_size: training images (0 = all the validation split leaves; synthetic: 2000).
        val_size: validation images held out of the training pool (0 = none), stratified.
        test_size: test images (0 = all; synthetic: 500), stratified.
        data_path: ``packed`` only: the Parquet file, a local path or a URI (``s3://...``).
        data_root: ``cifar10``/``cifar100`` only: the torchvision root directory.
        download: ``cifar10``/``cifar100`` only: let torchvision fetch missing files.
        num_classes: ``synthetic``: number of classes (default 10); other data sets take it
            from the data and refuse a different value.
        image_size: ``synthetic`` only: side of the square images (files keep their stored size).
        fixed_size, fixed_seed: the fixed evaluation subset, ``fixed_size`` images of the whole
            test pool drawn by ``fixed_seed`` alone (``splits.fixed_subset``).

    Returns:
        ``DataSplits``.

    Raises:
        ValueError: unknown data set, missing or unreadable data, impossible sizes.
    """
    source = _DATASETS.get(dataset)
    for name, size in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
        if size < 0:
            raise ValueError(f"{name} must be >= 0 (0 = all), got {size}")
    pool = source(SourceOptions(seed, train_size, val_size, test_size, data_path, data_root,
                                download, num_classes, image_size))
    if num_classes is not None and num_classes != pool.num_classes:
        raise ValueError(f"{dataset} has {pool.num_classes} classes; got num_classes={num_classes}")
    train, val = split_train_val(pool.train_y, train_size, val_size, seed)
    if len(train) == 0:
        raise ValueError(f"{dataset} has no training images left (val_size={val_size})")
    test = subset_test(pool.test_y, test_size, seed)
    fixed = fixed_subset(len(pool.test_y), fixed_size, fixed_seed)
    # Gather on the CPU (a memory-mapped pool reads only these rows), then one copy each.
    move = lambda tensor, index: tensor[index].to(device)  # noqa: E731
    train_x = move(pool.train_x, train)
    mean, std = channel_stats(train_x)
    return DataSplits(
        train_x=train_x, train_y=move(pool.train_y, train),
        val_x=move(pool.train_x, val), val_y=move(pool.train_y, val),
        test_x=move(pool.test_x, test), test_y=move(pool.test_y, test),
        num_classes=pool.num_classes, mean=mean, std=std, name=dataset,
        fixed_x=move(pool.test_x, fixed), fixed_y=move(pool.test_y, fixed),
    )


def channel_stats(images: torch.Tensor) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images on the 0..1 scale.

    Exact, from each channel's 256-bin histogram: no float copy of the images is made.
    """
    levels = torch.arange(256, dtype=torch.float64, device=images.device) / 255.0
    means, stds = [], []
    for channel in range(images.shape[1]):
        histogram = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        weights = histogram / histogram.sum()
        mean = (weights * levels).sum()
        means.append(float(mean))
        stds.append(float((weights * (levels - mean).square()).sum().sqrt()))
    return tuple(means), tuple(stds)
