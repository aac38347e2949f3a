"""The trial's training loop against a minimal plain PyTorch loop, per precision, and the cost of
evaluation.

For each model and each variant (``fp32``, ``bf16`` autocast, ``bf16+compile``): images/s of
- ``plain``: the shortest loop one would write by hand in that variant: data already normalized in
  memory, channels_last, a random permutation per epoch, forward, cross-entropy, backward, SGD step
  (its second epoch; the first warms up and, compiled, compiles);
- ``trial``: ``korth_bench.trial.train_and_measure`` on the same images without augmentation
  (its own ``images_per_s`` of the second epoch, which excludes evaluation and compilation);
- ``trial+aug``: the same with the on-device crop-and-flip augmentation.
Each figure is the median of ``--rounds`` interleaved rounds (each runs every one once), so a
burst of load on a shared machine spreads over all of them. ``ratio`` is trial / plain (the
target: >= 0.95); ``speedup`` is the variant's trial over the fp32 trial. The ``auto`` trial
(``precision: auto``; the default stays ``fp32`` until the accuracy check passes, see
``benchmarks/precision_accuracy.py``) runs the ``bf16`` variant where the device computes bf16
natively: there the target for ResNet-20 and ResNet-56 is a speedup >= 1.4, in images/s after
epoch 0 and in the wall time of a 3-epoch ``auto`` trial (every other key at its default:
robustness included; ``--wall-*`` sizes), measured against the same trial at ``precision: fp32``.

Then, for a 30-epoch default trial of the first model at the default sizes (the whole training
split per epoch, the test split evaluated every epoch, final layer measures on the 64-image probe,
the 8 corruptions x 5 severities and FGSM + PGD-10 at 1, 2, 8/255 on the 1,000-image robustness
subset), the seconds and share of each component: training extrapolated from the default trial's
measured images/s, every evaluation component timed once, in the default precision, on a model
trained briefly with the plain loop (PGD stops early on examples that already failed, so its cost
grows with the model's robustness: the model's clean accuracy is printed). Evaluation is timed at
the device's automatic batch (``trial.EVAL_BATCH_AUTO``) and at 1,000, the fixed default before it.

Run: ``.venv/bin/python benchmarks/bench_trial.py [--models resnet20 resnet56 wrn16-4] [--threads 2]``
(``--short``: tiny sizes, one round, to check that it runs; its figures mean nothing).
Prints tables and the targets; ``main()`` returns the rows for ``benchmarks/run_all.py``. Never
asserts timings.
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
from korth_bench.trial.precision import resolve_precision

CIFAR = Path(data.cifar10_parquet())
MODELS = {"resnet20": ("resnet", 20, 1), "resnet56": ("resnet", 56, 1), "wrn16-4": ("wrn", 16, 4),
          "wrn28-10": ("wrn", 28, 10), "resnet8": ("resnet", 8, 1)}  # resnet8: dry runs
CPU_EPOCH_IMAGES = {"resnet20": 2560, "resnet56": 1280, "wrn16-4": 1280, "wrn28-10": 256,
                    "resnet8": 2560}
"""Images per timed epoch on a CPU (a few seconds each); on CUDA ``--train-size`` (10,240)."""
VARIANTS = {"fp32": {"precision": "fp32"}, "bf16": {"precision": "bf16"},
            "bf16+compile": {"precision": "bf16", "compile": True}}
SPEEDUP_TARGET, LOOP_TARGET = 1.4, 0.95
SPEEDUP_MODELS = ("resnet20", "resnet56")
"""Default trial / fp32 trial >= SPEEDUP_TARGET for these models; trial / plain >= LOOP_TARGET."""


def data_keys(train_size: int, test_size: int) -> Dict:
    if CIFAR.exists():
        return {"dataset": "packed", "data_path": str(CIFAR), "train_size": train_size,
                "test_size": test_size}
    return {"dataset": "synthetic", "train_size": train_size, "test_size": test_size}


def autocast_for(precision: str, device: torch.device):
    """The trial's autocast context for a resolved precision (fp32: none)."""
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def plain_loop(family, depth, width, splits, batch_size, device, epochs=2, precision="fp32",
               compile=False):
    """Images/s of the last of ``epochs`` epochs of a hand-written loop (the first warms up and
    compiles), and the trained model."""
    torch.manual_seed(0)
    memory_format = torch.channels_last
    model = models.build(family, depth, width, splits.num_classes).to(device, memory_format=memory_format)
    trained = model
    if compile:
        torch._dynamo.reset()
        trained = torch.compile(model)
    autocast = autocast_for(precision, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = data.normalize(splits.train_x, splits.mean, splits.std).contiguous(memory_format=memory_format)
    y = splits.train_y
    for _ in range(epochs):
        start = time.perf_counter()
        for index in torch.randperm(len(y), device=device).split(batch_size):
            with autocast():
                logits = trained(x[index])
            loss = F.cross_entropy(logits.float(), y[index])
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
    """One row per (model, variant): plain, trial and trial+aug images/s after epoch 0."""
    rows = []
    device = torch.device(args.device)
    for name in args.models:
        family, depth, width = MODELS[name]
        size = epoch_images(name, args)
        keys = {"model": family, "depth": depth, "width": width, "batch_size": args.batch_size,
                "epochs": 2, "lr": 0.05, "device": args.device, "robustness": False,
                "probe_size": 8, **data_keys(size, 256)}
        splits = data.load(keys["dataset"], data.SourceOptions(
            seed=0, train_size=size, test_size=256, data_path=keys.get("data_path")), device)
        runs = {}
        for variant in args.variants:
            options = VARIANTS[variant]
            runs[(variant, "plain")] = (lambda options=options: plain_loop(
                family, depth, width, splits, args.batch_size, device,
                precision=options["precision"], compile=options.get("compile", False))[0])
            for kind, augment in (("trial", False), ("trial+aug", True)):
                runs[(variant, kind)] = (lambda options=options, augment=augment: train_and_measure(
                    {**keys, **options, "augment": augment}).epochs[-1]["images_per_s"])
        measured = {run: [] for run in runs}
        for _ in range(args.rounds):
            for run, action in runs.items():
                measured[run].append(action())
        median = {run: statistics.median(values) for run, values in measured.items()}
        default = resolve_precision("auto", device)
        for variant in args.variants:
            plain, trial, augmented = (median[(variant, k)] for k in ("plain", "trial", "trial+aug"))
            fp32 = median.get(("fp32", "trial"))
            rows.append({"model": name, "variant": variant, "batch_size": args.batch_size,
                         "images_per_epoch": size, "rounds": args.rounds,
                         "plain_images_per_s": plain, "trial_images_per_s": trial,
                         "trial_aug_images_per_s": augmented, "ratio": trial / plain,
                         "ratio_aug": augmented / plain,
                         "speedup": trial / fp32 if fp32 else None,
                         "is_default": variant == default})
            print(f"  {name} {variant}: plain {plain:.0f}, trial {trial:.0f}, trial+aug "
                  f"{augmented:.0f} img/s (medians of {args.rounds}: "
                  f"{[measured[(variant, k)] for k in ('plain', 'trial', 'trial+aug')]})", flush=True)
    return rows


def wall_rows(args) -> List[Dict]:
    """Wall time of a 3-epoch trial with every default (robustness included) at ``precision:
    auto`` and at fp32, interleaved, for each of ``SPEEDUP_MODELS`` that is benchmarked."""
    rows = []
    for name in [m for m in args.models if m in SPEEDUP_MODELS]:
        family, depth, width = MODELS[name]
        keys = {"model": family, "depth": depth, "width": width, "epochs": args.wall_epochs,
                "device": args.device, **data_keys(args.wall_train_size, args.wall_test_size)}
        if args.wall_robustness_size:
            keys["robustness_test_size"] = args.wall_robustness_size
        seconds = {"auto": [], "fp32": []}
        resolved = None
        for _ in range(args.wall_rounds):
            for requested in seconds:
                summary = train_and_measure({**keys, "precision": requested}).summary
                seconds[requested].append(summary["wall_time_s"])
                if requested == "auto":
                    resolved = summary["precision_resolved"]
        auto, fp32 = (statistics.median(seconds[p]) for p in ("auto", "fp32"))
        rows.append({"model": name, "epochs": args.wall_epochs,
                     "train_images": args.wall_train_size, "rounds": args.wall_rounds,
                     "auto_resolved": resolved, "auto_wall_s": auto, "fp32_wall_s": fp32,
                     "speedup": fp32 / auto})
        print(f"  {name}: {args.wall_epochs}-epoch auto trial {auto:.1f} s (-> {resolved}), "
              f"fp32 {fp32:.1f} s", flush=True)
    return rows


def target_lines(loops: List[Dict], walls: List[Dict], device: torch.device) -> List[str]:
    """The targets, each with its measured value; printed, never asserted."""
    default = resolve_precision("auto", device)
    lines = []
    for r in loops:
        if r["model"] in SPEEDUP_MODELS and r["is_default"] and r["speedup"] is not None:
            lines.append(f"{r['model']}: auto trial (-> {default}) / fp32 trial images/s "
                         f"after epoch 0 = {r['speedup']:.2f} (target >= {SPEEDUP_TARGET})")
    for r in walls:
        lines.append(f"{r['model']}: {r['epochs']}-epoch trial wall time, fp32 / auto "
                     f"(-> {r['auto_resolved']}) = {r['speedup']:.2f} (target >= {SPEEDUP_TARGET})")
    for r in loops:
        lines.append(f"{r['model']} {r['variant']}: trial / plain loop = {r['ratio']:.3f} "
                     f"(target >= {LOOP_TARGET})")
    return lines


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def evaluation_rows(args, loops: List[Dict], epochs: int = 30) -> List[Dict]:
    """Seconds and share of each component of a 30-epoch default trial at the default sizes."""
    device = torch.device(args.device)
    precision = resolve_precision("auto", device)
    default = next((r for r in loops if r["variant"] == precision), loops[0])
    name = default["model"]
    family, depth, width = MODELS[name]
    cfg = TrialConfig.from_dict({})
    keys = data_keys(0, 0)
    full = data.load(keys["dataset"], data.SourceOptions(seed=0, data_path=keys.get("data_path")), device)
    short = data.load(keys["dataset"], data.SourceOptions(seed=0, train_size=args.eval_train_size, test_size=256, data_path=keys.get("data_path")), device)
    _, model = plain_loop(family, depth, width, short, args.batch_size, device, args.eval_train_epochs)
    model.eval()
    subset = fixed_subset(len(full.test_y), cfg.robustness_test_size, cfg.robustness_seed)
    test_x, test_y = full.test_x[subset], full.test_y[subset]
    probe = data.normalize(test_x[: cfg.probe_size], full.mean, full.std)
    execution = Execution(device, bf16=VARIANTS[default["variant"]]["precision"] == "bf16")
    classify = make_classifier(model, full.mean, full.std, execution)

    def robustness_pass(batch, corruptions, attacks):
        options = dataclasses.replace(cfg.robustness_options(), corruptions=tuple(corruptions),
                                      attacks=tuple(attacks))
        return lambda: robustness.evaluate_robustness(classify, test_x, test_y, options, batch)

    batches = {"auto": eval_batch_size(0, device), "1000": 1000}
    seconds = {"training": {b: epochs * len(full.train_y) / default["trial_images_per_s"]
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
    return [{"model": name, "variant": default["variant"], "component": component,
             "train_images": len(full.train_y),
             "clean_acc_of_timed_model": accuracy, "eval_batch_auto": batches["auto"],
             "seconds": parts["auto"], "share": parts["auto"] / totals["auto"],
             "seconds_batch_1000": parts["1000"], "share_batch_1000": parts["1000"] / totals["1000"]}
            for component, parts in seconds.items()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56", "wrn16-4"],
                        choices=list(MODELS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-size", type=int, default=0,
                        help="images per timed epoch; 0 = per model on a CPU, 10,240 on CUDA")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-eval", action="store_true", help="no evaluation cost table")
    parser.add_argument("--eval-train-size", type=int, default=5000,
                        help="images the evaluation's model is trained on")
    parser.add_argument("--eval-train-epochs", type=int, default=3)
    parser.add_argument("--skip-wall", action="store_true", help="no 3-epoch wall-time comparison")
    parser.add_argument("--wall-epochs", type=int, default=3)
    parser.add_argument("--wall-train-size", type=int, default=5000, help="0 = all")
    parser.add_argument("--wall-test-size", type=int, default=1000, help="0 = all")
    parser.add_argument("--wall-robustness-size", type=int, default=0,
                        help="robustness images of the wall-time trials; 0 = the default (1,000)")
    parser.add_argument("--wall-rounds", type=int, default=1)
    parser.add_argument("--short", action="store_true",
                        help="tiny sizes, one round, no evaluation table: checks that it runs")
    args = parser.parse_args(argv)
    if args.short:
        args.train_size, args.rounds, args.skip_eval = args.train_size or 256, 1, True
        args.wall_epochs, args.wall_train_size, args.wall_test_size = 1, 256, 128
        args.wall_robustness_size = 32
    return args


def main(argv=None) -> Dict[str, List[Dict]]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"trial loop vs plain loop on {args.device}, {args.threads} threads, batch "
          f"{args.batch_size} ({'CIFAR-10' if CIFAR.exists() else 'synthetic'}); precision auto "
          f"resolves to {resolve_precision('auto', device)} here"
          f"{'; SHORT MODE: the figures only show that it runs' if args.short else ''}")
    loops = loop_rows(args)
    print("\n| model | variant | images/epoch | plain img/s | trial img/s | trial/plain | "
          "trial+aug img/s | (trial+aug)/plain | trial / fp32 trial |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in loops:
        speedup = "-" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        print(f"| {r['model']} | {r['variant']} | {r['images_per_epoch']} | "
              f"{r['plain_images_per_s']:.0f} | {r['trial_images_per_s']:.0f} | {r['ratio']:.3f} | "
              f"{r['trial_aug_images_per_s']:.0f} | {r['ratio_aug']:.3f} | {speedup} |")
    result = {"trial_loop": loops}
    walls = [] if args.skip_wall else wall_rows(args)
    if walls:
        result["wall"] = walls
    if not args.skip_eval:
        evaluation = evaluation_rows(args, loops)
        first = evaluation[0]
        print(f"\nA 30-epoch {first['model']} trial ({first['variant']}) at the default sizes "
              f"({first['train_images']} training images/epoch); evaluation timed on a model of "
              f"clean accuracy {first['clean_acc_of_timed_model']:.3f}:")
        print(f"| component | seconds (eval batch {first['eval_batch_auto']}, auto) | share | "
              "seconds (eval batch 1000) | share |\n| --- | ---: | ---: | ---: | ---: |")
        for r in evaluation:
            print(f"| {r['component']} | {r['seconds']:.1f} | {100 * r['share']:.1f} % | "
                  f"{r['seconds_batch_1000']:.1f} | {100 * r['share_batch_1000']:.1f} % |")
        result["evaluation"] = evaluation
    print("\nTargets (printed, not asserted):")
    for line in target_lines(loops, walls, device):
        print(f"  {line}")
    return result


if __name__ == "__main__":
    main()
