"""Data sets, seeded stratified splits, on-device batches and the packed Parquet format."""
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar
from torchvision.io import decode_png, encode_jpeg, encode_png

from korth_bench import data
from korth_bench.data._api import channel_stats
from korth_bench.data.augment import random_crop_flip
from korth_bench.data.splits import class_quotas, split_train_val, subset_test
from conftest import CIFAR, needs_cifar

# torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they still work.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private decode cache, so packed-file tests neither read nor leave a shared one."""
    monkeypatch.setenv("KORTH_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---------------------------------------------------------------------------- synthetic
def test_synthetic_is_deterministic_per_seed():
    first = data.load("synthetic", data.SourceOptions(seed=3, train_size=200, val_size=50, test_size=100), "cpu")
    again = data.load("synthetic", data.SourceOptions(seed=3, train_size=200, val_size=50, test_size=100), "cpu")
    other = data.load("synthetic", data.SourceOptions(seed=4, train_size=200, val_size=50, test_size=100), "cpu")
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(first, f"{split}_x"), getattr(again, f"{split}_x"))
        assert torch.equal(getattr(first, f"{split}_y"), getattr(again, f"{split}_y"))
    assert not torch.equal(first.train_x, other.train_x)
    assert (first.mean, first.std) == (again.mean, again.std)


def test_synthetic_shapes_defaults_and_options():
    splits = data.load("synthetic", data.SourceOptions(seed=0), "cpu")
    assert splits.train_x.shape == (2000, 3, 32, 32) and splits.train_x.dtype == torch.uint8
    assert splits.train_y.dtype == torch.int64 and splits.test_x.shape[0] == 500
    assert splits.val_x.shape == (0, 3, 32, 32) and splits.num_classes == 10
    small = data.load("synthetic", data.SourceOptions(seed=0, train_size=60, test_size=30, num_classes=3, image_size=16), "cpu")
    assert small.train_x.shape == (60, 3, 16, 16) and set(small.test_y.tolist()) == {0, 1, 2}
    # Mid-grey images with real contrast: neither saturated nor flat.
    assert all(0.35 < m < 0.65 for m in splits.mean) and all(0.1 < s < 0.3 for s in splits.std)


# ---------------------------------------------------------------------------- splits
def test_class_quotas_use_largest_remainders():
    labels = torch.tensor([0] * 5 + [1] * 3 + [2] * 2)
    assert class_quotas(labels, 5).tolist() == [3, 1, 1]  # 2.5, 1.5, 1.0: the tie goes to class 0
    assert class_quotas(labels, 10).tolist() == [5, 3, 2]


def test_stratified_split_counts_and_disjointness():
    labels = torch.arange(1000) % 10
    train, val = split_train_val(labels, train_size=300, val_size=100, seed=0)
    assert torch.bincount(labels[train]).tolist() == [30] * 10
    assert torch.bincount(labels[val]).tolist() == [10] * 10
    assert not set(train.tolist()) & set(val.tolist())
    rest, same_val = split_train_val(labels, train_size=0, val_size=100, seed=0)
    assert torch.equal(val, same_val), "the validation split must not depend on train_size"
    assert len(rest) == 900 and not set(rest.tolist()) & set(val.tolist())
    _, other_val = split_train_val(labels, train_size=0, val_size=100, seed=1)
    assert not torch.equal(val, other_val)
    assert torch.bincount(labels[subset_test(labels, 50, seed=0)]).tolist() == [5] * 10


def test_load_holds_validation_out_of_training_images():
    splits = data.load("synthetic", data.SourceOptions(seed=1, train_size=300, val_size=100, test_size=50), "cpu")
    assert torch.bincount(splits.train_y).tolist() == [30] * 10
    assert torch.bincount(splits.val_y).tolist() == [10] * 10
    train_images = {bytes(image.flatten().tolist()) for image in splits.train_x}
    assert not any(bytes(image.flatten().tolist()) in train_images for image in splits.val_x)


def test_impossible_sizes_are_refused():
    labels = torch.arange(100) % 10
    with pytest.raises(ValueError, match="train_size=91 must be between 0 and the 90 images available after val_size=10"):
        split_train_val(labels, train_size=91, val_size=10, seed=0)
    with pytest.raises(ValueError, match="test_size=101 must be between 0 and the 100"):
        subset_test(labels, test_size=101, seed=0)
    with pytest.raises(ValueError, match="val_size=-1 must be >= 0"):
        data.load("synthetic", data.SourceOptions(seed=0, val_size=-1), "cpu")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; choose from: cifar10, cifar100, packed, synthetic"):
        data.load("mnist", data.SourceOptions(seed=0), "cpu")


def test_channel_stats_are_exact():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    mean, std = channel_stats(images)
    values = images.double() / 255
    assert np.allclose(mean, values.mean(dim=(0, 2, 3)))
    assert np.allclose(std, values.std(dim=(0, 2, 3), unbiased=False))


# ---------------------------------------------------------------------------- batches
@pytest.mark.parametrize("device", DEVICES)
def test_augmentation_is_a_padded_shift_and_optional_flip(device):
    images = torch.randint(1, 256, (16, 3, 8, 8), dtype=torch.uint8, device=device)
    out = random_crop_flip(images, torch.Generator(device=device).manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for image, augmented in zip(padded, out):
        candidates = [window.flip(2) if flip else window
                      for top in range(9) for left in range(9) for flip in (False, True)
                      for window in [image[:, top:top + 8, left:left + 8]]]
        assert any(torch.equal(augmented, candidate) for candidate in candidates)


@pytest.mark.parametrize("device", DEVICES)
def test_batches_are_deterministic_and_leave_global_rng_alone(device):
    splits = data.load("synthetic", data.SourceOptions(seed=0, train_size=100, test_size=10), device)

    def epoch(seed):
        generator = torch.Generator(device=device).manual_seed(seed)
        return list(data.batches(splits.train_x, splits.train_y, 32, generator, augment=True,
                                 shuffle=True, mean=splits.mean, std=splits.std))

    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state() if device == "cuda" else None
    first, again, other = epoch(0), epoch(0), epoch(1)
    assert torch.equal(torch.get_rng_state(), cpu_state)
    if cuda_state is not None:
        assert torch.equal(torch.cuda.get_rng_state(), cuda_state)
    assert [len(y) for _, y in first] == [32, 32, 32, 4]
    assert all(x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32) and x.device.type == device
               for x, _ in first)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not torch.equal(first[0][0], other[0][0])
    labels = torch.cat([y for _, y in first])
    assert torch.equal(labels.sort().values, splits.train_y.sort().values)


def test_plain_batches_are_normalized_in_order():
    splits = data.load("synthetic", data.SourceOptions(seed=0, train_size=50, test_size=10), "cpu")
    batches = list(data.batches(splits.test_x, splits.test_y, 4, None, augment=False, shuffle=False,
                                mean=splits.mean, std=splits.std, drop_last=True))
    assert len(batches) == 2
    expected = data.normalize(splits.test_x[:4], splits.mean, splits.std)
    assert torch.allclose(batches[0][0], expected) and torch.equal(batches[0][1], splits.test_y[:4])
    manual = (splits.test_x[:4].float() / 255 - torch.tensor(splits.mean).view(1, 3, 1, 1)) / torch.tensor(splits.std).view(1, 3, 1, 1)
    assert torch.allclose(expected, manual, atol=1e-5)
    with pytest.raises(ValueError, match="needs a torch.Generator"):
        next(data.batches(splits.test_x, splits.test_y, 4, None, augment=False, shuffle=True,
                          mean=splits.mean, std=splits.std))


# ---------------------------------------------------------------------------- packed files
@needs_cifar
def test_packed_cifar10_subset():
    # Uses the default cache: the first run decodes the file once (a few seconds), later runs map it.
    splits = data.load("packed", data.SourceOptions(seed=0, data_path=str(CIFAR), train_size=1000, val_size=100, test_size=200), "cpu")
    assert splits.train_x.shape == (1000, 3, 32, 32) and splits.train_x.dtype == torch.uint8
    assert splits.val_x.shape == (100, 3, 32, 32) and splits.test_x.shape == (200, 3, 32, 32)
    assert splits.num_classes == 10 and splits.train_y.dtype == torch.int64
    assert torch.bincount(splits.train_y).tolist() == [100] * 10
    assert 0 <= int(splits.test_y.min()) and int(splits.test_y.max()) <= 9
    assert np.allclose(splits.mean, (0.4914, 0.4822, 0.4465), atol=0.03)


def test_fixed_subset_ignores_the_trial_seed_and_test_size():
    # The robustness subset and the probe batch come from the whole test pool by their own seed,
    # so seeded test subsets (and synthetic data) give every trial the same images.
    loads = [data.load("synthetic", data.SourceOptions(seed=seed, train_size=100, test_size=200,
                                                       fixed_size=64, fixed_seed=0), "cpu")
             for seed in (3, 4)]
    assert not torch.equal(loads[0].train_x, loads[1].train_x)
    assert torch.equal(loads[0].fixed_x, loads[1].fixed_x) and torch.equal(loads[0].fixed_y, loads[1].fixed_y)
    assert loads[0].fixed_x.shape == (64, 3, 32, 32)
    other = data.load("synthetic", data.SourceOptions(seed=3, train_size=100, test_size=200,
                                                      fixed_size=64, fixed_seed=1), "cpu")
    assert not torch.equal(other.fixed_x, loads[0].fixed_x)
    if CIFAR.exists():
        cifar = [data.load("packed", data.SourceOptions(seed=seed, data_path=str(CIFAR), train_size=100,
                                                        test_size=test_size, fixed_size=50), "cpu")
                 for seed, test_size in ((0, 200), (1, 300))]
        assert not torch.equal(cifar[0].test_y, cifar[1].test_y[:200])
        assert torch.equal(cifar[0].fixed_x, cifar[1].fixed_x)


def write_image_folder(root: Path, layout: dict) -> None:
    """``layout``: ``{"train/cat": [png, jpg, ...]}``; smooth images so JPEG keeps them close."""
    ramp = torch.linspace(0, 200, 16).round().to(torch.uint8)
    for folder, kinds in layout.items():
        (root / folder).mkdir(parents=True)
        for number, kind in enumerate(kinds):
            image = torch.stack([ramp.view(1, 16).expand(16, 16), ramp.view(16, 1).expand(16, 16),
                                 torch.full((16, 16), 20 * number + 10 * len(folder), dtype=torch.uint8)])
            encoded = encode_png(image) if kind == "png" else encode_jpeg(image, quality=90)
            (root / folder / f"{number}.{kind}").write_bytes(encoded.numpy().tobytes())


def test_pack_round_trip(tmp_path, cache):
    source = tmp_path / "images"
    write_image_folder(source, {"train/cat": ["png", "jpg", "png"], "train/dog": ["jpg", "png", "png"],
                                "test/cat": ["png"], "test/dog": ["jpg"]})
    summary = data.pack(str(source), str(tmp_path / "out" / "pets.parquet"))
    assert summary["train_images"] == 6 and summary["test_images"] == 2 and summary["classes"] == ["cat", "dog"]
    table = pq.read_table(tmp_path / "out" / "pets.parquet")
    assert table.column_names == ["split", "label", "index", "jpeg"]
    assert table.schema.metadata[b"classes"] == b"cat,dog"
    assert table.column("index").to_pylist()[:6] == [0, 1, 2, 0, 1, 2]
    assert table.column("jpeg")[1].as_py() == (source / "train/cat/1.jpg").read_bytes(), "JPEGs are copied as stored"

    splits = data.load("packed", data.SourceOptions(seed=0, data_path=str(tmp_path / "out" / "pets.parquet")), "cpu")
    assert splits.train_x.shape == (6, 3, 16, 16) and splits.test_x.shape == (2, 3, 16, 16)
    assert splits.train_y.tolist() == [0, 0, 0, 1, 1, 1] and splits.test_y.tolist() == [0, 1]
    original = torch.from_numpy(np.frombuffer((source / "train/cat/0.png").read_bytes(), np.uint8).copy())
    difference = (splits.train_x[0].int() - decode_png(original).int()).abs().float().mean()
    assert difference < 3, f"JPEG round trip moved pixels by {difference:.1f} levels on average"
    assert list(cache.glob("packed/*/images.npy")), "the decoded file is cached"
    again = data.load("packed", data.SourceOptions(seed=0, data_path=str(tmp_path / "out" / "pets.parquet")), "cpu")
    assert torch.equal(again.train_x, splits.train_x)


def test_pack_flat_class_folders_are_all_training_images(tmp_path, cache):
    write_image_folder(tmp_path / "flat", {"a": ["png"] * 2, "b": ["png"] * 2})
    data.pack(str(tmp_path / "flat"), str(tmp_path / "flat.parquet"))
    splits = data.load("packed", data.SourceOptions(seed=0, data_path=str(tmp_path / "flat.parquet")), "cpu")
    assert len(splits.train_y) == 4 and len(splits.test_y) == 0


def test_packed_errors_name_the_file(tmp_path, cache):
    missing = tmp_path / "nowhere.parquet"
    with pytest.raises(ValueError, match=f"data_path='{missing}': no such file"):
        data.load("packed", data.SourceOptions(seed=0, data_path=str(missing)), "cpu")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"this is not parquet" * 10)
    with pytest.raises(ValueError, match=f"{corrupt}: not a readable Parquet file"):
        data.load("packed", data.SourceOptions(seed=0, data_path=str(corrupt)), "cpu")
    partial = tmp_path / "partial.parquet"
    pq.write_table(pa.table({"split": ["train"], "label": [0]}), partial)
    with pytest.raises(ValueError, match="missing column.*index, jpeg; a packed Parquet file needs columns split, label, index, jpeg"):
        data.load("packed", data.SourceOptions(seed=0, data_path=str(partial)), "cpu")
    with pytest.raises(ValueError, match="needs data_path"):
        data.load("packed", data.SourceOptions(seed=0), "cpu")


@pytest.fixture
def fake_cifar10(tmp_path, monkeypatch):
    """A torchvision CIFAR-10 root with 20 images per batch file (checksums switched off)."""
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: True)
    folder = tmp_path / "root" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        pixels = torch.randint(0, 256, (20, 3 * 32 * 32), dtype=torch.uint8, generator=generator)
        batch = {"data": pixels.numpy(), "labels": [i % 10 for i in range(20)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    return tmp_path / "root"


def test_cifar_root_loads_and_packs(fake_cifar10, tmp_path, cache):
    splits = data.load("cifar10", data.SourceOptions(seed=0, data_root=str(fake_cifar10), val_size=10), "cpu")
    assert splits.train_x.shape == (90, 3, 32, 32) and splits.test_x.shape == (20, 3, 32, 32)
    assert splits.num_classes == 10 and torch.bincount(splits.val_y).tolist() == [1] * 10
    with pytest.raises(ValueError, match="num_classes=5 applies only to dataset=synthetic"):
        data.load("cifar10", data.SourceOptions(seed=0, data_root=str(fake_cifar10), num_classes=5), "cpu")
    summary = data.pack(str(fake_cifar10), str(tmp_path / "c10.parquet"))
    assert (summary["train_images"], summary["test_images"]) == (100, 20)
    assert summary["classes"] == [f"c{i}" for i in range(10)]
    packed = data.load("packed", data.SourceOptions(seed=0, data_path=str(tmp_path / "c10.parquet"), val_size=10), "cpu")
    assert torch.equal(packed.train_y, splits.train_y) and torch.equal(packed.test_y, splits.test_y)
    assert packed.train_x.shape == splits.train_x.shape


def test_missing_cifar_root_says_where_it_looked(tmp_path):
    with pytest.raises(ValueError, match=f"CIFAR10 not found under data_root='{tmp_path}'.*download=True"):
        data.load("cifar10", data.SourceOptions(seed=0, data_root=str(tmp_path)), "cpu")


def test_packed_images_of_different_sizes_are_refused(tmp_path, cache):
    blobs = [encode_jpeg(torch.zeros(3, size, size, dtype=torch.uint8)).numpy().tobytes() for size in (8, 16)]
    mixed = tmp_path / "mixed.parquet"
    pq.write_table(pa.table({"split": ["train", "test"], "label": [0, 1], "index": [0, 0], "jpeg": blobs}), mixed)
    with pytest.raises(ValueError, match=f"{mixed}: images differ in size"):
        data.load("packed", data.SourceOptions(seed=0, data_path=str(mixed)), "cpu")


def test_the_cache_command_shows_the_decode_cache_and_clears_it(tmp_path, monkeypatch, capsys):
    """`korth-bench cache` prints where decoded data is kept, its size and each entry (a packed
    file decoded by a real load); `--clear` removes it all and says how much it freed."""
    from korth_bench import cli

    monkeypatch.setenv("KORTH_BENCH_CACHE", str(tmp_path / "cache"))
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    packed = tmp_path / "four.parquet"
    pq.write_table(pa.table({"split": ["train", "train", "test", "test"], "label": [0, 1, 0, 1],
                             "index": [0, 1, 0, 1],
                             "jpeg": [encode_jpeg(image).numpy().tobytes() for image in images]}), packed)
    data.load("packed", data.SourceOptions(seed=0, data_path=str(packed)), "cpu")
    assert cli.main(["cache"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"decode cache: {tmp_path / 'cache'} (") and "--clear" in lines[0]
    assert len(lines) == 2 and lines[1].split()[-1].startswith("packed/"), lines
    assert cli.main(["cache", "--clear"]) == 0
    assert capsys.readouterr().out.startswith(f"cleared {tmp_path / 'cache'}: ")
    assert not (tmp_path / "cache").exists()
