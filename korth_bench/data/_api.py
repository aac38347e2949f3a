"""The data-set registry and ``load``: pool -> seeded stratified splits -> uint8 tensors on the device.

A data set is a *source* function ``source(options: SourceOptions) -> ImagePool`` that returns
its full train and test pools on the CPU, registered with its pool sizes and its own checks of the
options; ``load`` draws the validation split and the subsets, moves them to the device once and
measures the per-channel statistics of the training split. ``check`` validates options without
reading any data (the trial configuration calls it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch

from korth_bench.data.splits import fixed_subset, split_train_val, subset_test
from korth_bench.registry import Registry
from korth_bench.errors import ConfigError


@dataclass(frozen=True)
class SourceOptions:
    """What ``load`` passes to every source; each source reads the fields it needs."""

    seed: int                          # draws the validation split, the subsets, synthetic images
    train_size: int = 0                # training images; 0 = all the validation split leaves
    val_size: int = 0                  # held out of the training pool, stratified; 0 = none
    test_size: int = 0                 # stratified test subset; 0 = all
    data_path: Optional[str] = None    # packed: the Parquet file, a local path or a URI
    data_root: Optional[str] = None    # cifar10/cifar100: the torchvision root
    download: bool = False             # cifar10/cifar100: let torchvision fetch missing files
    num_classes: Optional[int] = None  # synthetic: classes (default 10); others take the data's
    image_size: int = 32               # synthetic: side of the square images
    fixed_size: int = 0                # the fixed evaluation subset: images of the whole test pool
    fixed_seed: int = 0                #   drawn by this seed alone (splits.fixed_subset)


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
    ``indices``: where each split's images sit in their pool (``train``, ``val`` in the training
    pool; ``test``, ``fixed`` in the test pool), on the CPU; ``protocol.split_sha256`` hashes them.
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
    indices: Dict[str, torch.Tensor] = field(default_factory=dict)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{split}={len(getattr(self, split + '_y'))}" for split in ("train", "val", "test"))
        return (f"DataSplits({self.name!r}, {sizes}, image={tuple(self.train_x.shape[1:])}, "
                f"num_classes={self.num_classes}, device={self.train_x.device})")


Source = Callable[[SourceOptions], ImagePool]
OptionsCheck = Callable[[SourceOptions], None]


@dataclass(frozen=True)
class DataSet:
    source: Source
    pool_sizes: Tuple[int, int]       # (train, test) images of the full pools (packed: CIFAR-10's)
    check: Optional[OptionsCheck]     # the source's own checks of its options (ConfigError)


_DATASETS = Registry("dataset")


def register(name: str, *, pool_sizes: Tuple[int, int],
             check: Optional[OptionsCheck] = None) -> Callable[[Source], Source]:
    """Decorator adding a data set: ``source(options: SourceOptions) -> ImagePool``.

    Args:
        name: the ``dataset`` key.
        pool_sizes: ``(train, test)`` images its full pools hold (``--dry-run`` costs from it).
        check: raises ``ConfigError`` for options the source cannot serve, without reading data.
    """
    def decorator(source: Source) -> Source:
        _DATASETS.register(name)(DataSet(source, pool_sizes, check))
        return source
    return decorator


def names() -> List[str]:
    """Registered data-set names, sorted."""
    return _DATASETS.names()


def pool_sizes(dataset: str) -> Tuple[int, int]:
    """``(train, test)`` images of a data set's full pools."""
    return _DATASETS.get(dataset).pool_sizes


def check(dataset: str, options: SourceOptions) -> None:
    """Raise ``ConfigError`` naming the key, the value and what is allowed, reading no data."""
    entry: DataSet = _DATASETS.get(dataset)
    for name in ("train_size", "val_size", "test_size"):
        if getattr(options, name) < 0:
            raise ConfigError(f"{name}={getattr(options, name)!r} must be >= 0 (0 = all)")
    if entry.check is not None:
        entry.check(options)


def load(dataset: str, options: SourceOptions, device: Union[str, torch.device]) -> DataSplits:
    """Load a data set's splits as uint8 tensors on ``device``.

    Args:
        dataset: ``cifar10``, ``cifar100``, ``packed``, ``synthetic`` (see ``names()``).
        options: the seed (it draws the validation split, the subsets and the synthetic images),
            the sizes (0 = all; synthetic: 2000 training and 500 test images), the file or root
            and the synthetic data's shape; see ``SourceOptions``.
        device: where the tensors go.

    Returns:
        ``DataSplits``.

    Raises:
        ConfigError: unknown data set, missing or unreadable data, impossible sizes.
    """
    check(dataset, options)
    pool = _DATASETS.get(dataset).source(options)
    if options.num_classes is not None and options.num_classes != pool.num_classes:
        raise ConfigError(f"{dataset} has {pool.num_classes} classes; got num_classes={options.num_classes}")
    train, val = split_train_val(pool.train_y, options.train_size, options.val_size, options.seed)
    if len(train) == 0:
        raise ConfigError(f"{dataset} has no training images left (val_size={options.val_size})")
    test = subset_test(pool.test_y, options.test_size, options.seed)
    fixed = fixed_subset(len(pool.test_y), options.fixed_size, options.fixed_seed)
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
        indices={"train": train, "val": val, "test": test, "fixed": fixed},
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
