"""bf16 on a CPU without bf16 instructions: oneDNN's bf16 kernels against ``Bf16ThroughFp32Kernels``.

One training step (forward, cross-entropy backward; batch 128 of random 32x32 images, channels_last,
one thread by default) of CIFAR ResNets, timed as the median of ``--rounds`` interleaved rounds
after one warm-up, in three ways: float32; bf16 autocast on oneDNN's kernels (``--skip-onednn``
leaves it out: over a second per step on such CPUs); bf16 autocast through float32 kernels.
Where the CPU has AVX512_BF16 or AMX the second is the native path a trial takes.

Then the agreement table: the relative difference (largest over the parameters, of the gradient's
norm) of one ResNet-8x1 step between two ways of computing it, next to the share of logits that
agree bit for bit. Two bf16 kernels that differ only in summation order (oneDNN's channels-last
and channels-first ones) set the scale: through-fp32 should sit within it, and bf16 as a whole
should be farther from float32. Prints two markdown tables; ``main()`` returns the rows.

Run: ``.venv/bin/python benchmarks/bench_bf16_kernels.py [--cells 8x1 14x2 20x2] [--threads 1] [--short]``
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from typing import Dict, List

import torch
import torch.nn.functional as F

from korth_bench import models
from korth_bench.trial.precision import Bf16ThroughFp32Kernels, cpu_flags, native_bf16

WAYS = {"fp32": (False, False), "bf16, oneDNN kernels": (True, False),
        "bf16 through fp32 kernels": (True, True)}


def step(model, images, labels, bf16: bool, through_fp32: bool):
    """Forward and backward of one batch; returns the logits and the parameters' gradients."""
    model.zero_grad(set_to_none=True)
    with Bf16ThroughFp32Kernels() if through_fp32 else contextlib.nullcontext():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        F.cross_entropy(logits.float(), labels).backward()
    return logits.detach().float(), {n: p.grad.clone() for n, p in model.named_parameters()}


def batch(memory_format, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(128, 3, 32, 32, generator=generator)
    return images.contiguous(memory_format=memory_format), torch.randint(0, 10, (128,), generator=generator)


def build(depth: int, width: int, memory_format):
    torch.manual_seed(0)
    return models.build("resnet", depth, width, 10).to(memory_format=memory_format)


def timings(cells: List[str], rounds: int, skip_onednn: bool) -> List[Dict]:
    rows = []
    ways = {k: v for k, v in WAYS.items() if not (skip_onednn and k == "bf16, oneDNN kernels")}
    for cell in cells:
        depth, width = map(int, cell.split("x"))
        model = build(depth, width, torch.channels_last)
        images, labels = batch(torch.channels_last)
        seconds = {name: [] for name in ways}
        for round_ in range(rounds + 1):
            for name, (bf16, through_fp32) in ways.items():
                start = time.perf_counter()
                step(model, images, labels, bf16, through_fp32)
                if round_:  # the first round warms up
                    seconds[name].append(time.perf_counter() - start)
        row = {"cell": f"ResNet-{cell}"}
        row.update({f"{name} (s)": round(statistics.median(s), 3) for name, s in seconds.items()})
        rows.append(row)
    return rows


def agreement() -> List[Dict]:
    runs = {}
    for name, memory_format, bf16, through_fp32 in (
            ("oneDNN bf16, channels-last", torch.channels_last, True, False),
            ("oneDNN bf16, channels-first", torch.contiguous_format, True, False),
            ("through fp32, channels-last", torch.channels_last, True, True),
            ("through fp32, channels-first", torch.contiguous_format, True, True),
            ("fp32, channels-last", torch.channels_last, False, False)):
        images, labels = batch(memory_format)
        runs[name] = step(build(8, 1, memory_format), images, labels, bf16, through_fp32)
    rows = []
    for a, b in (("through fp32, channels-last", "oneDNN bf16, channels-last"),
                 ("through fp32, channels-first", "oneDNN bf16, channels-first"),
                 ("oneDNN bf16, channels-last", "oneDNN bf16, channels-first"),
                 ("oneDNN bf16, channels-last", "fp32, channels-last"),
                 ("through fp32, channels-last", "fp32, channels-last")):
        (logits_a, grads_a), (logits_b, grads_b) = runs[a], runs[b]
        worst = max(((grads_a[n] - grads_b[n]).norm() / grads_b[n].norm()).item()
                    for n in grads_a if grads_b[n].norm() > 0)
        rows.append({"compared": f"{a} vs {b}",
                     "logits equal bit for bit": f"{(logits_a == logits_b).double().mean().item():.1%}",
                     "largest gradient difference": f"{worst:.1%}"})
    return rows


def print_table(rows: List[Dict]) -> None:
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in header) + " |")


def main(argv=None) -> Dict[str, List[Dict]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["8x1", "14x2", "20x2"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-onednn", action="store_true")
    parser.add_argument("--short", action="store_true", help="ResNet-8x1, one round: checks it runs")
    args = parser.parse_args(argv)
    if args.short:
        args.cells, args.rounds = ["8x1"], 1
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, native bf16: "
          f"{native_bf16(torch.device('cpu'))} ({' '.join(sorted(cpu_flags() & {'avx512f', 'avx512_bf16', 'amx_bf16'})) or 'no AVX-512'}), "
          f"{args.threads} thread(s)")
    tables = {"steps": timings(args.cells, args.rounds, args.skip_onednn), "agreement": agreement()}
    for rows in tables.values():
        print_table(rows)
    return tables


if __name__ == "__main__":
    main()
