"""The trial's training loop against a minimal plain PyTorch loop, and the cost of evaluation.

For each model: images/s of
- ``plain``: the shortest loop one would write by hand: data already normalized in memory, a
  random permutation per epoch, forward, cross-entropy, backward, SGD step;
- ``trial``: ``korth_bench.trial.train_and_measure`` on the same images without augmentation
  (its own ``images_per_s`` of the second epoch, which excludes evaluation);
- ``trial+aug``: the same with the on-device crop-and-flip augmentation.
``ratio`` is trial / plain (the target: >= 0.95). Then, for a 30-epoch trial at the default
evaluation sizes, the seconds and share of each evaluation component (per-epoch val+test passes,
the final layer measures, corruptions, attacks), extrapolated from one measured epoch and one
measured final evaluation.

Run: ``.venv/bin/python benchmarks/bench_trial.py [--models resnet20 resnet56] [--threads 2]``.
Prints tables; ``main()`` returns the rows for ``benchmarks/run_all.py``. Never asserts timings.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Dict, List

import torch
import torch.nn.functional as F

from korth_bench import data, models
from korth_bench.trial import train_and_measure

CIFAR = Path(os.environ.get("KORTH_CIFAR10_PARQUET", Path(__file__).resolve().parents[2]
                            / "shared/data/cifar10-jpeg.parquet"))
MODELS = {"resnet20": ("resnet", 20, 1), "resnet56": ("resnet", 56, 1), "wrn16-4": ("wrn", 16, 4),
          "wrn28-10": ("wrn", 28, 10)}


def data_keys(train_size: int, test_size: int) -> Dict:
    if CIFAR.exists():
        return {"dataset": "packed", "data_path": str(CIFAR), "train_size": train_size,
                "test_size": test_size}
    return {"dataset": "synthetic", "train_size": train_size, "test_size": test_size}


def plain_loop_images_per_s(family, depth, width, splits, batch_size, device, epochs=2) -> float:
    """Images/s of the last of ``epochs`` epochs of a hand-written loop (the first warms up)."""
    torch.manual_seed(0)
    memory_format = torch.channels_last
    model = models.build(family, depth, width, splits.num_classes).to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = data.normalize(splits.train_x, splits.mean, splits.std).contiguous(memory_format=memory_format)
    y = splits.train_y
    for _ in range(epochs):
        start = time.perf_counter()
        for index in torch.randperm(len(y), device=device).split(batch_size):
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return len(y) / seconds


def loop_rows(args) -> List[Dict]:
    rows = []
    device = torch.device(args.device)
    for name in args.models:
        family, depth, width = MODELS[name]
        keys = {"model": family, "depth": depth, "width": width, "batch_size": args.batch_size,
                "epochs": 2, "lr": 0.05, "device": args.device, "robustness": False,
                "probe_size": 8, **data_keys(args.train_size, 256)}
        splits = data.load(keys["dataset"], device=device, seed=0, train_size=args.train_size,
                           test_size=256, data_path=keys.get("data_path"))
        plain = plain_loop_images_per_s(family, depth, width, splits, args.batch_size, device)
        trial = train_and_measure({**keys, "augment": False}).epochs[-1]["images_per_s"]
        augmented = train_and_measure({**keys, "augment": True}).epochs[-1]["images_per_s"]
        rows.append({"model": name, "batch_size": args.batch_size, "plain_images_per_s": plain,
                     "trial_images_per_s": trial, "trial_aug_images_per_s": augmented,
                     "ratio": trial / plain, "ratio_aug": augmented / plain})
        print(f"  {name}: plain {plain:.0f}, trial {trial:.0f}, trial+aug {augmented:.0f} img/s",
              flush=True)
    return rows


def evaluation_rows(args, epochs: int = 30) -> List[Dict]:
    """Share of a 30-epoch trial spent in each evaluation component, at the default sizes."""
    family, depth, width = MODELS[args.models[0]]
    keys = {"model": family, "depth": depth, "width": width, "batch_size": args.batch_size,
            "device": args.device, "epochs": 1, "lr": 0.05, **data_keys(args.train_size, 10000)}
    phases = {}
    start = time.perf_counter()
    record = train_and_measure({**keys, "robustness": False})
    phases["train epoch"] = record.summary["train_time_s"]
    phases["val+test eval per epoch"] = record.summary["wall_time_s"] - record.summary["train_time_s"]
    for component, extra in (("corruptions", {"robustness_attacks": []}),
                             ("attacks (FGSM, PGD x3 eps)", {"robustness_corruptions": []})):
        start = time.perf_counter()
        train_and_measure({**keys, "epochs": 1, "train_size": args.batch_size, **extra})
        phases[component] = time.perf_counter() - start
    # Subtract the tiny trial's own training and measures from the robustness components.
    start = time.perf_counter()
    train_and_measure({**keys, "epochs": 1, "train_size": args.batch_size, "robustness": False})
    base = time.perf_counter() - start
    for component in ("corruptions", "attacks (FGSM, PGD x3 eps)"):
        phases[component] = max(0.0, phases[component] - base)
    totals = {"training": epochs * phases["train epoch"],
              "val+test evaluation": epochs * phases["val+test eval per epoch"],
              "corruptions": phases["corruptions"], "attacks": phases["attacks (FGSM, PGD x3 eps)"]}
    whole = sum(totals.values())
    return [{"model": args.models[0], "component": k, "seconds": v, "share": v / whole}
            for k, v in totals.items()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56"], choices=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-size", type=int, default=2560)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-eval", action="store_true", help="only the loop comparison")
    return parser.parse_args(argv)


def main(argv=None) -> Dict[str, List[Dict]]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"trial loop vs plain loop on {args.device}, {args.threads} threads, batch "
          f"{args.batch_size}, {args.train_size} images/epoch ({'CIFAR-10' if CIFAR.exists() else 'synthetic'})")
    loops = loop_rows(args)
    print("\n| model | plain img/s | trial img/s | trial/plain | trial+aug img/s | (trial+aug)/plain |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in loops:
        print(f"| {r['model']} | {r['plain_images_per_s']:.0f} | {r['trial_images_per_s']:.0f} | "
              f"{r['ratio']:.3f} | {r['trial_aug_images_per_s']:.0f} | {r['ratio_aug']:.3f} |")
    result = {"trial_loop": loops}
    if not args.skip_eval:
        evaluation = evaluation_rows(args)
        print(f"\nA 30-epoch {args.models[0]} trial at the default evaluation sizes "
              f"({args.train_size} training images/epoch):")
        print("| component | seconds | share |\n| --- | ---: | ---: |")
        for r in evaluation:
            print(f"| {r['component']} | {r['seconds']:.1f} | {100 * r['share']:.1f} % |")
        result["evaluation"] = evaluation
    return result


if __name__ == "__main__":
    main()
