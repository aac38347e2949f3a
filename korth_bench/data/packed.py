"""The ``packed`` data set: one Parquet file of JPEG-encoded images, local or behind a URI.

Format (that of ``cifar10-jpeg.parquet``): one row per image with columns ``split`` (``train``
or ``test``), ``label`` (integer class index), ``index`` (the image's number within its split
and class) and ``jpeg`` (the encoded bytes); the file metadata key ``classes`` holds the class
names, comma-separated, in label order.

The first load decodes every JPEG (torchvision's decoder on a few threads: about 1.6 s for the
60,000 CIFAR-10 images on 2 idle cores, against about 11 s with PIL) and caches the uint8 array
under ``<cache>/packed/<key>/``, keyed by the file's location, size and modification time;
later loads memory-map it, so a small subset reads only its own rows.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, encode_jpeg
from torchvision.datasets import CIFAR10, CIFAR100

from korth_bench.data._api import ImagePool, SourceOptions, register
from korth_bench.data.cache import cache_root
from korth_bench.data.cifar import CIFAR_POOL_SIZES, read_cifar
from korth_bench.data.cifar import check_options as check_file_options
from korth_bench.errors import ConfigError

COLUMNS = ("split", "label", "index", "jpeg")
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
JPEG_MAGIC = b"\xff\xd8\xff"
DECODE_CHUNK = 2048  # images per decoder call: large enough to amortize, small enough to spread over threads


CIFAR10_ENV = "KORTH_CIFAR10_PARQUET"
CIFAR10_DEFAULT = os.path.join("data", "cifar10-jpeg.parquet")


def cifar10_parquet() -> str:
    """Where the packed CIFAR-10 file is: ``$KORTH_CIFAR10_PARQUET``, else ``data/cifar10-jpeg.parquet``
    under the current directory (a checkout's git-ignored ``data/``). The shipped search spaces
    say the same in YAML: ``${KORTH_CIFAR10_PARQUET:-data/cifar10-jpeg.parquet}``."""
    return os.environ.get(CIFAR10_ENV) or CIFAR10_DEFAULT


def open_location(location: str) -> Tuple[pafs.FileSystem, str]:
    """A pyarrow file system and the path in it, for a local path or a URI (``s3://b/k``)."""
    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(location))


def check_options(options: SourceOptions) -> None:
    """A packed data set needs its file, and takes its classes from it."""
    if not options.data_path:
        raise ConfigError("dataset=packed needs data_path (a packed Parquet file, local path or URI)")
    check_file_options(options)


@register("packed", pool_sizes=CIFAR_POOL_SIZES, check=check_options)
def packed(options: SourceOptions) -> ImagePool:
    """Images from the Parquet file at ``options.data_path`` (see the module docstring)."""
    images, labels, num_train, classes = read_packed(options.data_path)
    return ImagePool(images[:num_train], labels[:num_train], images[num_train:], labels[num_train:],
                     num_classes=len(classes))


def read_packed(data_path: str) -> Tuple[torch.Tensor, torch.Tensor, int, List[str]]:
    """Decoded contents of a packed file, from the cache when it is current.

    Args:
        data_path: local path or URI of the Parquet file.

    Returns:
        ``(images, labels, num_train, classes)``: uint8 ``[N, 3, H, W]`` (memory-mapped) and int64
        ``[N]``, training rows first, each split in file order; ``classes`` the class names.

    Raises:
        ValueError: no such file, not a Parquet file, missing columns, or undecodable contents.
    """
    filesystem, path = open_location(data_path)
    info = filesystem.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise ConfigError(f"data_path={data_path!r}: no such file ({path})")
    identity = f"{filesystem.type_name}:{path}|{info.size}|{info.mtime_ns}"
    cache = cache_root() / "packed" / hashlib.sha256(identity.encode()).hexdigest()[:20]
    if not (cache / "images.npy").exists():
        write_cache(cache, *decode_file(filesystem, path, data_path))
    meta = torch.load(cache / "meta.pt", weights_only=True)
    # Copy-on-write mapping: writable for torch, yet nothing is read until a row is indexed.
    images = torch.from_numpy(np.load(cache / "images.npy", mmap_mode="c"))
    return images, meta["labels"], meta["num_train"], meta["classes"]


def require_columns(names: Sequence[str], data_path: str) -> None:
    """Raise ``ConfigError`` unless a file with these column names holds the packed columns."""
    missing = [name for name in COLUMNS if name not in names]
    if missing:
        raise ConfigError(f"data_path={data_path!r}: missing column(s) {', '.join(missing)}; a packed "
                          f"Parquet file needs columns {', '.join(COLUMNS)} (found {', '.join(names) or 'none'}; "
                          "korth-bench data pack makes one)")


def check_file(data_path: str) -> None:
    """Raise ``ConfigError`` unless ``data_path`` is a Parquet file with the packed columns; only
    its footer is read (decoding stays with the trials)."""
    allowed = "a packed Parquet file (korth-bench data pack makes one)"
    try:
        filesystem, path = open_location(data_path)
        if filesystem.get_file_info(path).type != pafs.FileType.File:
            raise ConfigError(f"data_path={data_path!r}: no such file; expected {allowed}; "
                              f"for CIFAR-10 set {CIFAR10_ENV} (or data_path) to the packed file")
        with filesystem.open_input_file(path) as handle:
            names = pq.ParquetFile(handle).schema_arrow.names
    except (pa.ArrowException, OSError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"data_path={data_path!r}: not a readable Parquet file ({message}); "
                          f"expected {allowed}") from None
    require_columns(names, data_path)


def decode_file(filesystem: pafs.FileSystem, path: str, data_path: str) -> Tuple[torch.Tensor, torch.Tensor, int, List[str]]:
    """Read and decode a packed file (uncached); arguments and results as ``read_packed``."""
    try:
        with filesystem.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            require_columns(parquet.schema_arrow.names, data_path)
            table = parquet.read(columns=list(COLUMNS))
    except (pa.ArrowException, OSError) as error:
        raise ConfigError(f"{data_path}: not a readable Parquet file ({error})") from error
    split = table.column("split").cast(pa.string())
    unknown = set(pc.unique(split).to_pylist()) - set(SPLITS)
    if unknown:
        raise ConfigError(f"{data_path}: column 'split' holds {sorted(map(str, unknown))}; allowed: {', '.join(SPLITS)}")
    is_train = pc.equal(split, "train").to_numpy(zero_copy_only=False)
    order = np.argsort(~is_train, kind="stable")  # training rows first, file order kept
    labels = torch.from_numpy(table.column("label").to_numpy().astype(np.int64)[order])
    classes = class_names(table.schema.metadata or {}, labels, data_path)
    images = decode_jpegs(table.column("jpeg").take(pa.array(order)), data_path)
    return images, labels, int(is_train.sum()), classes


def class_names(metadata: Dict[bytes, bytes], labels: torch.Tensor, data_path: str) -> List[str]:
    """The ``classes`` metadata, or ``"0", "1", ...`` when the file has none."""
    num_labels = int(labels.max()) + 1 if len(labels) else 0
    if len(labels) and int(labels.min()) < 0:
        raise ConfigError(f"{data_path}: negative labels in column 'label'")
    if b"classes" not in metadata:
        return [str(label) for label in range(num_labels)]
    classes = metadata[b"classes"].decode().split(",")
    if num_labels > len(classes):
        raise ConfigError(f"{data_path}: label {num_labels - 1} but only {len(classes)} classes in the metadata")
    return classes


def decode_jpegs(column: pa.ChunkedArray, data_path: str) -> torch.Tensor:
    """Decode a binary column of JPEGs into uint8 ``[N, 3, H, W]`` on a few threads."""
    blobs = byte_tensors(column)
    if not blobs:
        return torch.empty(0, 3, 32, 32, dtype=torch.uint8)
    chunks = [blobs[start:start + DECODE_CHUNK] for start in range(0, len(blobs), DECODE_CHUNK)]
    try:  # the decoder releases the GIL, so threads scale with cores
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            parts = list(pool.map(decode_same_size, chunks))
    except RuntimeError as error:
        raise ConfigError(f"{data_path}: a JPEG in column 'jpeg' does not decode ({error})") from error
    if any(part is None for part in parts) or len({part.shape[1:] for part in parts}) > 1:
        raise ConfigError(f"{data_path}: images differ in size; pack images of one size")
    return torch.cat(parts)


def decode_same_size(blobs: List[torch.Tensor]) -> Optional[torch.Tensor]:
    """``[n, 3, H, W]`` for JPEGs of one size; None when their sizes differ."""
    images = decode_jpeg(blobs, mode=ImageReadMode.RGB)
    if len({image.shape for image in images}) > 1:
        return None
    return torch.stack(images)


def byte_tensors(column: pa.ChunkedArray) -> List[torch.Tensor]:
    """One uint8 tensor per row, viewing a single copy of the column's bytes."""
    blobs: List[torch.Tensor] = []
    for chunk in column.cast(pa.large_binary()).chunks:
        _, offsets, data = chunk.buffers()
        offsets = np.frombuffer(offsets, dtype=np.int64)[chunk.offset:chunk.offset + len(chunk) + 1]
        data = torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy()) if data else torch.empty(0, dtype=torch.uint8)
        blobs.extend(data[start:stop] for start, stop in zip(offsets[:-1].tolist(), offsets[1:].tolist()))
    return blobs


def write_cache(cache: Path, images: torch.Tensor, labels: torch.Tensor, num_train: int, classes: List[str]) -> None:
    """Write the decoded file atomically: a complete directory appears, or none."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=cache.name + ".", dir=cache.parent))
    np.save(staging / "images.npy", images.numpy())
    torch.save({"labels": labels, "num_train": num_train, "classes": classes}, staging / "meta.pt")
    try:
        os.rename(staging, cache)
    except OSError:  # another process cached the same file first; its copy is identical
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------- packing
def pack(source: str, out_path: str, *, quality: int = 95) -> Dict[str, object]:
    """Write a packed Parquet file from a torchvision CIFAR root or an image folder.

    Args:
        source: a torchvision root holding ``cifar-10-batches-py`` or ``cifar-100-python`` (or
            that folder itself); or an image folder with one subfolder per class, optionally
            under ``train/`` and ``test/`` (without them every image is a training image).
            Class order is the sorted subfolder names, as torchvision's ``ImageFolder``.
        out_path: the Parquet file to write, a local path or a URI; replaced atomically.
        quality: JPEG quality for images not already stored as JPEG (JPEG files are copied
            byte for byte, so no second compression).

    Returns:
        ``{"path", "train_images", "test_images", "classes"}``.

    Raises:
        ValueError: ``source`` is neither layout, or its images differ in size.
    """
    root = Path(os.path.expanduser(source))
    if not root.is_dir():
        raise ConfigError(f"data pack: source {source!r} is not a directory; expected a torchvision "
                         "CIFAR root (holding cifar-10-batches-py or cifar-100-python) or an image "
                         "folder with one subfolder per class")
    cifar = cifar_class(root)
    if cifar is not None:
        pool, classes = read_cifar(cifar, str(root if root.name != cifar.base_folder else root.parent), False)
        splits = [("train", pool.train_x, pool.train_y), ("test", pool.test_x, pool.test_y)]
        rows = [(name, labels, encode_jpeg(list(images), quality=quality)) for name, images, labels in splits]
    else:
        classes, rows = image_folder_rows(root, quality)
    if any("," in name for name in classes):
        raise ConfigError(f"{source}: class names may not contain ',' (the metadata separates them with it)")
    table = packed_table(rows, classes)
    filesystem, path = open_location(out_path)
    filesystem.create_dir(os.path.dirname(path), recursive=True)
    staging = f"{path}.tmp-{os.getpid()}"
    pq.write_table(table, staging, filesystem=filesystem, row_group_size=10_000)
    filesystem.move(staging, path)
    counts = {name: sum(len(labels) for split, labels, _ in rows if split == name) for name in SPLITS}
    return {"path": out_path, "train_images": counts["train"], "test_images": counts["test"], "classes": classes}


def cifar_class(root: Path):
    """``CIFAR10``/``CIFAR100`` when ``root`` is (or holds) its torchvision folder, else None."""
    for dataset_class in (CIFAR10, CIFAR100):
        if root.name == dataset_class.base_folder or (root / dataset_class.base_folder).is_dir():
            return dataset_class
    return None


def image_folder_rows(root: Path, quality: int) -> Tuple[List[str], List[Tuple[str, torch.Tensor, List[torch.Tensor]]]]:
    """Classes and ``(split, labels, jpeg byte tensors)`` per split of an image folder."""
    split_dirs = [(name, root / name) for name in SPLITS if (root / name).is_dir()] or [("train", root)]
    classes = sorted(entry.name for entry in split_dirs[0][1].iterdir() if entry.is_dir())
    if not classes:
        raise ConfigError(f"{root}: expected a torchvision CIFAR root or one subfolder per class")
    rows, sizes = [], {}
    for split, directory in split_dirs:
        labels, blobs = [], []
        for entry in sorted(path for path in directory.iterdir() if path.is_dir()):
            if entry.name not in classes:
                raise ConfigError(f"{entry}: class {entry.name!r} is not among the training classes")
            files = sorted(p for p in entry.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            for path in files:
                blob, size = jpeg_bytes(path, quality)
                sizes.setdefault(size, path)
                labels.append(classes.index(entry.name))
                blobs.append(blob)
        rows.append((split, torch.tensor(labels, dtype=torch.long), blobs))
    if len(sizes) > 1:
        raise ConfigError(f"{root}: images differ in size: " + ", ".join(f"{path} is {size}" for size, path in sizes.items()))
    return classes, rows


def jpeg_bytes(path: Path, quality: int) -> Tuple[torch.Tensor, Tuple[int, ...]]:
    """A file's JPEG bytes (as stored when already JPEG) and its decoded ``(3, H, W)`` shape."""
    data = torch.from_numpy(np.frombuffer(path.read_bytes(), dtype=np.uint8).copy())
    image = decode_image(data, mode=ImageReadMode.RGB)
    if bytes(data[:3].tolist()) == JPEG_MAGIC:
        return data, tuple(image.shape)
    return encode_jpeg(image, quality=quality), tuple(image.shape)


def packed_table(rows: Sequence[Tuple[str, torch.Tensor, Sequence[torch.Tensor]]], classes: List[str]) -> pa.Table:
    """The Parquet table: split, label, index (number within split and class), jpeg."""
    split, label, index, jpeg = [], [], [], []
    for name, labels, blobs in rows:
        seen = np.zeros(len(classes), dtype=np.int64)
        for value, blob in zip(labels.tolist(), blobs):
            split.append(name)
            label.append(value)
            index.append(seen[value])
            seen[value] += 1
            jpeg.append(blob.numpy().tobytes())
    label_type = pa.int8() if len(classes) <= 127 else pa.int16()
    table = pa.table({
        "split": pa.array(split, pa.string()).dictionary_encode(),
        "label": pa.array(label, label_type),
        "index": pa.array(index, pa.int32()),
        "jpeg": pa.array(jpeg, pa.binary()),
    })
    return table.replace_schema_metadata({"classes": ",".join(classes)})
