"""Seeded, stratified subsets: the train/validation split and the train and test subsets.

Every class gets a share of a subset proportional to its share of the pool (largest-remainder
rounding, so the subset has exactly the requested size); the members of each class are drawn
with a generator seeded from the trial seed and the subset's role, so the validation split of a
seed is the same whatever ``train_size`` is, and the test subset never depends on the others.
The fixed evaluation subset is drawn from the whole test pool by a seed of its own.
"""
from __future__ import annotations

import hashlib
from typing import Tuple

import torch
from korth_bench.errors import ConfigError


def role_generator(seed: int, role: str) -> torch.Generator:
    """A CPU generator for one role (``"val"``, ``"train"``, ``"test"``) of one seed."""
    digest = hashlib.sha256(f"{seed}/{role}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def class_quotas(labels: torch.Tensor, size: int) -> torch.Tensor:
    """How many of each class a stratified subset of ``size`` takes (sums to ``size``)."""
    counts = torch.bincount(labels)
    exact = counts.double() * size / len(labels)
    quotas = exact.floor().long()
    shortfall = size - int(quotas.sum())
    # Largest remainders first; ties go to the lower class index (stable sort) for determinism.
    order = torch.sort(exact - quotas, descending=True, stable=True).indices
    quotas[order[:shortfall]] += 1
    return quotas


def stratified_subset(labels: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Indices (sorted) of a stratified random subset of ``size`` items.

    Args:
        labels: int64 class labels ``[N]`` of the pool, on the CPU.
        size: subset size, 0 <= size <= N.
        generator: CPU generator that draws the members of each class.

    Returns:
        int64 indices into ``labels``, ascending.
    """
    if size == len(labels):
        return torch.arange(len(labels))
    chosen = []
    for label, quota in enumerate(class_quotas(labels, size).tolist()):
        members = torch.nonzero(labels == label).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:quota]])
    return torch.cat(chosen).sort().values if chosen else torch.empty(0, dtype=torch.long)


def split_train_val(labels: torch.Tensor, train_size: int, val_size: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Hold ``val_size`` images out of the training pool, then take ``train_size`` of the rest.

    Args:
        labels: int64 labels ``[N]`` of the training pool, on the CPU.
        train_size: training images to keep; 0 keeps all that the validation split leaves.
        val_size: validation images; 0 gives an empty validation split.
        seed: the trial seed.

    Returns:
        ``(train_indices, val_indices)`` into the pool, disjoint and each ascending.

    Raises:
        ValueError: the sizes are negative or together exceed the pool.
    """
    check_size("val_size", val_size, len(labels))
    val = stratified_subset(labels, val_size, role_generator(seed, "val"))
    rest = torch.ones(len(labels), dtype=torch.bool)
    rest[val] = False
    rest = torch.nonzero(rest).flatten()
    check_size("train_size", train_size, len(rest), f" after val_size={val_size}")
    train = stratified_subset(labels[rest], train_size or len(rest), role_generator(seed, "train"))
    return rest[train], val


def subset_test(labels: torch.Tensor, test_size: int, seed: int) -> torch.Tensor:
    """A stratified test subset of ``test_size`` images (0 = all), ascending."""
    check_size("test_size", test_size, len(labels))
    return stratified_subset(labels, test_size or len(labels), role_generator(seed, "test"))


def fixed_subset(num_test: int, size: int, seed: int) -> torch.Tensor:
    """Indices into the full test pool of the fixed evaluation subset (robustness, probe batch).

    A permutation seeded by ``seed`` alone (not the trial seed, not ``test_size``): its first
    ``size`` images, so every trial of a data set evaluates the very same images.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(num_test, generator=generator)[: min(size, num_test)]


def check_size(name: str, size: int, available: int, context: str = "") -> None:
    if size < 0 or size > available:
        raise ConfigError(f"{name}={size} must be between 0 and the {available} images available{context}")
