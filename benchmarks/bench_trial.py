"""The trial's training loop against a minimal plain PyTorch loop, and the cost of evaluation.

For each model: images/s of
- ``plain``: the shortest loop one would write by hand: data already normalized in memory,
  channels_last, a random permutation per epoch, forward, cross-entropy, backward, SGD step;
- ``trial``: ``korth_bench.trial.train_and_measure`` on the same images without augmentation
  (its own ``images_per_s`` of the second epoch, which excludes evaluation);
- ``trial+aug``: the same with the on-device crop-and-flip augmentation.
Each figure is the median of ``--rounds`` interleaved rounds (each runs the three once), so a
burst of load on a shared machine spreads over all three. ``ratio`` is trial / plain (the target:
>= 0.95).

Then, for a 30-epoch trial of the first model at the default sizes (the whole training split per
epoch, the test split evaluated every epoch, final layer measures on the 64-image probe, the 8
corruptions x 5 severities and FGSM + PGD-10 at 1, 2, 8/255 on the 1,000-image robustness subset),
the seconds and share of each component: training extrapolated from the trial's measured images/s,
every evaluation component timed once on a model trained briefly with the plain loop (PGD stops
early on examples that already failed, so its cost grows with the model's robustness: the model's
clean accuracy is printed). Evaluation is timed at the device's automatic batch
(``trial.EVAL_BATCH_AUTO``) and at 1,000, the fixed default before it.

Run: ``.venv/bin/python benchmarks/bench_trial.py [--models resnet20 resnet56 wrn16-4] [--threads 2]``.
Prints tables; ``main()`` returns the rows for ``benchmarks/run_all.py``. Never asserts timings.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path
from typing import Dict, List

import torch
import torch.nn.functional as F

from korth_bench import data, models
from korth_bench.trial import robustness
from korth_bench.config import TrialConfig
from korth_bench.data.splits import fixed_subset
from korth_bench.trial.loop import (Execution, eval_batch_size, evaluate, make_classifier,
                                    measure_model, train_and_measure)

CIFAR = Path(data.cifar10_parquet())
MODELS = {"resnet20": ("resnet", 20, 1), "resnet56": ("resnet", 56, 1), "wrn16-4": ("wrn", 16, 4),
          "wrn28-10": ("wrn", 28, 10)}
CPU_EPOCH_IMAGES = {"resnet20": 2560, "resnet56": 1280, "wrn16-4": 1280, "wrn28-10": 256}
"""Images per timed epoch on a CPU (a few seconds each); on CUDA ``--train-size`` (10,240)."""


def data_keys(train_size: int, test_size: int) -> Dict:
    if CIFAR.exists():
        return {"dataset": "packed", "data_path": str(CIFAR), "train_size": train_size,
                "test_size": test_size}
    return {"dataset": "synthetic", "train_size": train_size, "test_size": test_size}


def plain_loop(family, depth, width, splits, batch_size, device, epochs=2):
    """Images/s of the last of ``epochs`` epochs of a hand-written loop (the first warms up), and
    the trained model."""
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
    return len(y) / seconds, model


def epoch_images(name: str, args) -> int:
    return args.train_size or (CPU_EPOCH_IMAGES[name] if args.device == "cpu" else 10240)


def loop_rows(args) -> List[Dict]:
    rows = []
    device = torch.device(args.device)
    for name in args.models:
        family, depth, width = MODELS[name]
        size = epoch_images(name, args)
        keys = {"model": family, "depth": depth, "width": width, "batch_size": args.batch_size,
                "epochs": 2, "lr": 0.05, "device": args.device, "robustness": False,
                "probe_size": 8, **data_keys(size, 256)}
        splits = data.load(keys["dataset"], data.SourceOptions(seed=0, train_size=size, test_size=256, data_path=keys.get("data_path")), device)
        runs = {"plain": lambda: plain_loop(family, depth, width, splits, args.batch_size, device)[0]}
        for variant, augment in (("trial", False), ("trial+aug", True)):
            runs[variant] = (lambda augment=augment: train_and_measure(
                {**keys, "augment": augment}).epochs[-1]["images_per_s"])
        measured = {variant: [] for variant in runs}
        for _ in range(args.rounds):
            for variant, run in runs.items():
                measured[variant].append(run())
        plain, trial, augmented = (statistics.median(measured[v]) for v in runs)
        rows.append({"model": name, "batch_size": args.batch_size, "images_per_epoch": size,
                     "rounds": args.rounds, "plain_images_per_s": plain,
                     "trial_images_per_s": trial, "trial_aug_images_per_s": augmented,
                     "ratio": trial / plain, "ratio_aug": augmented / plain})
        print(f"  {name}: plain {plain:.0f}, trial {trial:.0f}, trial+aug {augmented:.0f} img/s "
              f"(medians of {args.rounds}: {measured})", flush=True)
    return rows


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def evaluation_rows(args, loops: List[Dict], epochs: int = 30) -> List[Dict]:
    """Seconds and share of each component of a 30-epoch trial at the default sizes."""
    name = loops[0]["model"]
    family, depth, width = MODELS[name]
    device = torch.device(args.device)
    cfg = TrialConfig.from_dict({})
    keys = data_keys(0, 0)
    full = data.load(keys["dataset"], data.SourceOptions(seed=0, data_path=keys.get("data_path")), device)
    short = data.load(keys["dataset"], data.SourceOptions(seed=0, train_size=args.eval_train_size, test_size=256, data_path=keys.get("data_path")), device)
    _, model = plain_loop(family, depth, width, short, args.batch_size, device, args.eval_train_epochs)
    model.eval()
    subset = fixed_subset(len(full.test_y), cfg.robustness_test_size, cfg.robustness_seed)
    test_x, test_y = full.test_x[subset], full.test_y[subset]
    probe = data.normalize(test_x[: cfg.probe_size], full.mean, full.std)
    execution = Execution(device)  # fp32, channels_last: as the trial evaluates by default
    classify = make_classifier(model, full.mean, full.std, execution)

    def robustness_pass(batch, corruptions, attacks):
        options = dataclasses.replace(cfg.robustness_options(), corruptions=tuple(corruptions),
                                      attacks=tuple(attacks))
        return lambda: robustness.evaluate_robustness(classify, test_x, test_y, options, batch)

    batches = {"auto": eval_batch_size(0, device), "1000": 1000}
    seconds = {"training": {b: epochs * len(full.train_y) / loops[0]["trial_images_per_s"]
                            for b in batches}}
    for label, batch in batches.items():
        seconds.setdefault("test evaluation, every epoch", {})[label] = epochs * timed(
            lambda: evaluate(model, full.test_x, full.test_y, full.mean, full.std, batch, execution))
        seconds.setdefault("final layer measures", {})[label] = timed(
            lambda: measure_model(model, probe, "bench", 0))
        clean = timed(robustness_pass(batch, [], []))
        seconds.setdefault("corruptions (8 x 5 severities)", {})[label] = max(
            0.0, timed(robustness_pass(batch, list(cfg.robustness_corruptions), [])) - clean)
        seconds.setdefault("attacks (FGSM, PGD-10; 1, 2, 8/255)", {})[label] = max(
            0.0, timed(robustness_pass(batch, [], list(cfg.robustness_attacks))) - clean)
    accuracy = robustness.correct_mask(classify, test_x.float() / 255, test_y,
                                       batches["auto"]).float().mean().item()
    totals = {label: sum(parts[label] for parts in seconds.values()) for label in batches}
    return [{"model": name, "component": component, "train_images": len(full.train_y),
             "clean_acc_of_timed_model": accuracy, "eval_batch_auto": batches["auto"],
             "seconds": parts["auto"], "share": parts["auto"] / totals["auto"],
             "seconds_batch_1000": parts["1000"], "share_batch_1000": parts["1000"] / totals["1000"]}
            for component, parts in seconds.items()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56", "wrn16-4"],
                        choices=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-size", type=int, default=0,
                        help="images per timed epoch; 0 = per model on a CPU, 10,240 on CUDA")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-eval", action="store_true", help="only the loop comparison")
    parser.add_argument("--eval-train-size", type=int, default=5000,
                        help="images the evaluation's model is trained on")
    parser.add_argument("--eval-train-epochs", type=int, default=3)
    return parser.parse_args(argv)


def main(argv=None) -> Dict[str, List[Dict]]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"trial loop vs plain loop on {args.device}, {args.threads} threads, batch "
          f"{args.batch_size} ({'CIFAR-10' if CIFAR.exists() else 'synthetic'})")
    loops = loop_rows(args)
    print("\n| model | images/epoch | plain img/s | trial img/s | trial/plain | trial+aug img/s | (trial+aug)/plain |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in loops:
        print(f"| {r['model']} | {r['images_per_epoch']} | {r['plain_images_per_s']:.0f} | "
              f"{r['trial_images_per_s']:.0f} | {r['ratio']:.3f} | {r['trial_aug_images_per_s']:.0f} | "
              f"{r['ratio_aug']:.3f} |")
    result = {"trial_loop": loops}
    if not args.skip_eval:
        evaluation = evaluation_rows(args, loops)
        first = evaluation[0]
        print(f"\nA 30-epoch {first['model']} trial at the default sizes ({first['train_images']} "
              f"training images/epoch); evaluation timed on a model of clean accuracy "
              f"{first['clean_acc_of_timed_model']:.3f}:")
        print(f"| component | seconds (eval batch {first['eval_batch_auto']}, auto) | share | "
              "seconds (eval batch 1000) | share |\n| --- | ---: | ---: | ---: | ---: |")
        for r in evaluation:
            print(f"| {r['component']} | {r['seconds']:.1f} | {100 * r['share']:.1f} % | "
                  f"{r['seconds_batch_1000']:.1f} | {100 * r['share_batch_1000']:.1f} % |")
        result["evaluation"] = evaluation
    return result


if __name__ == "__main__":
    main()
