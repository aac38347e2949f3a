"""Data sets as uint8 tensors on the device, and the batches made from them there.

``load(dataset, device=..., seed=..., ...) -> DataSplits``; data sets ``cifar10``, ``cifar100``
(torchvision roots), ``packed`` (a Parquet file of JPEGs, see ``pack``) and ``synthetic``.
``batches(...)`` shuffles, augments (crop with 4-pixel padding, horizontal flip) and normalizes
per batch on the device; ``normalize`` does the last step alone, for evaluation.
"""
from korth_bench.data._api import DataSplits, ImagePool, SourceOptions, check, load, names, pool_sizes, register
from korth_bench.data.augment import batches, normalize
from korth_bench.data import cifar, synthetic  # noqa: F401  (registers the data sets)
from korth_bench.data.packed import cifar10_parquet, pack

__all__ = ["DataSplits", "ImagePool", "SourceOptions", "batches", "check", "cifar10_parquet", "load", "names", "normalize",
           "pack", "pool_sizes", "register"]
