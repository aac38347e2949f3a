"""``precision: auto``: bf16 autocast where the device computes bf16 natively, fp32 elsewhere.

Native bf16 means matrix units that multiply bf16 operands at a higher rate than float32 and
accumulate in float32: CUDA devices of compute capability >= 8.0 (Ampere and later, tensor cores),
and CPUs with the AVX512_BF16 (``vdpbf16ps``) or AMX (``amx_bf16`` tiles) instructions, which
oneDNN uses for bf16 convolutions. Elsewhere bf16 gains nothing (``Bf16ThroughFp32Kernels`` computes
it at fp32 speed), so ``auto`` means fp32 there.

The choice is made where the trial runs (a driver cannot see a worker's GPU), so the trial
identity hashes the requested value and the ``trials`` table records ``precision_resolved`` and
``kernel_path`` (``kernel_path``: native bf16, bf16 through float32 kernels, or fp32).
"""
from __future__ import annotations

import contextlib
import functools
from typing import FrozenSet, Optional, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map

from korth_bench.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")

CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""``/proc/cpuinfo`` flags of native bf16 arithmetic on x86 CPUs (either one suffices)."""
CUDA_BF16_CAPABILITY = (8, 0)
aten = torch.ops.aten


@functools.lru_cache(maxsize=1)
def cpu_flags() -> FrozenSet[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where it is not readable)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return parse_cpu_flags(cpuinfo.read())
    except OSError:
        return frozenset()


def parse_cpu_flags(cpuinfo: str) -> FrozenSet[str]:
    """The feature flags of the first ``flags`` line of a ``/proc/cpuinfo`` text."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def bf16_kernels_note(requested: str, compile: bool = False,
                      flags: Optional[FrozenSet[str]] = None) -> Optional[str]:
    """The one line saying how ``precision: bf16`` runs on a CPU without native bf16 (``flags``,
    default this machine's, lack AVX512_BF16 and AMX): eager, through ``Bf16ThroughFp32Kernels``
    at fp32 speed; compiled, on oneDNN's bf16 kernels, about 10x slower than fp32 (see
    ``bf16_kernels``). None where it does not apply."""
    if requested != "bf16" or native_bf16(torch.device("cpu"), flags=flags):
        return None
    if compile:
        return ("precision=bf16 with compile on this CPU (no AVX512_BF16 or AMX) runs oneDNN's bf16 "
                "kernels, about 10x slower than fp32; drop compile to compute bf16 through float32 "
                "kernels, or use precision: auto (bf16 only where the hardware computes it natively)")
    return ("precision=bf16 on this CPU (no AVX512_BF16 or AMX) computes bf16 arithmetic through "
            "float32 kernels: as fast as fp32, not faster; precision: auto uses bf16 only where "
            "the hardware computes it natively")


_KERNEL_OPS = frozenset({aten.convolution.default, aten.convolution_backward.default,
                         aten.mm.default, aten.addmm.default, aten.bmm.default,
                         aten.baddbmm.default})
"""The ops bf16 autocast gives bf16 operands that oneDNN runs on bf16 instructions: the
convolutions (forward and backward) and the matrix products of linear layers."""


def _bf16_to_fp32(value):
    return value.float() if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16 else value


def _fp32_to_bf16(value):
    return value.bfloat16() if isinstance(value, torch.Tensor) and value.dtype == torch.float32 else value


class Bf16ThroughFp32Kernels(TorchDispatchMode):
    """bf16 arithmetic on a CPU without bf16 instructions, computed by float32 kernels.

    Under bf16 autocast a convolution or matrix product gets bf16 operands. A CPU with
    AVX512_BF16 or AMX multiplies them exactly (the product of two 8-bit significands fits
    float32's 24), accumulates in float32 and rounds the result to bf16. Without those
    instructions oneDNN's bf16 kernels are about 10x slower than float32 (one training step of
    ResNet-8x1: 1.95 s against 0.21 s; ResNet-14x2: 14.7 s against 1.26 s; 1 thread, AVX2). This
    mode computes the same arithmetic with the float32 kernels, at their speed: each op of
    ``_KERNEL_OPS`` whose floating operands are all bf16 gets them converted to float32
    (exactly), runs in float32 and has its results rounded to bf16 (to nearest, ties to even).
    What differs from the native kernels is only the order of the float32 summation, which
    differs between any two kernels anyway: on a ResNet-8x1 step (one batch of 128, forward and
    backward) the gradients differ from oneDNN's bf16 kernels' by at most 3-4 % relative, those
    of oneDNN's own channels-last and channels-first bf16 kernels differ by 10 %, and bf16 from
    float32 by 15 % (``benchmarks/bench_bf16_kernels.py``; ``tests/test_precision.py`` checks the
    ops against float64). Any other op runs as it is.
    """

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _KERNEL_OPS:
            floating = [value for value in tree_leaves((args, kwargs))
                        if isinstance(value, torch.Tensor) and value.is_floating_point()]
            if floating and all(value.dtype == torch.bfloat16 for value in floating):
                result = func(*tree_map(_bf16_to_fp32, args), **tree_map(_bf16_to_fp32, kwargs))
                return tree_map(_fp32_to_bf16, result)
        return func(*args, **kwargs)


def bf16_kernels(precision: str, device: torch.device, compile: bool = False,
                 flags: Optional[FrozenSet[str]] = None):
    """The context a trial of resolved ``precision`` runs in on ``device``: ``Bf16ThroughFp32Kernels``
    for eager bf16 on a CPU without native bf16 (``flags`` default this machine's), else nothing.
    ``torch.compile`` does not trace under a dispatch mode (it would silently run eagerly), so a
    compiled trial keeps oneDNN's kernels."""
    if (precision == "bf16" and not compile and device.type == "cpu"
            and not native_bf16(device, flags=flags)):
        return Bf16ThroughFp32Kernels()
    return contextlib.nullcontext()


def native_bf16(device: torch.device, flags: Optional[FrozenSet[str]] = None,
                capability: Optional[Tuple[int, int]] = None) -> bool:
    """Whether ``device`` computes bf16 natively. ``flags`` (CPU) and ``capability`` (CUDA)
    default to the machine's own; tests pass them to cover both branches."""
    if device.type == "cuda":
        if capability is None:
            capability = torch.cuda.get_device_capability(device)
        return tuple(capability) >= CUDA_BF16_CAPABILITY
    if device.type == "cpu":
        return bool(CPU_BF16_FLAGS & (cpu_flags() if flags is None else flags))
    return False


NATIVE_BF16 = "native bf16"
BF16_THROUGH_FP32 = "bf16 through float32 kernels"
BF16_EMULATED = "bf16 on kernels without native bf16"
FP32 = "fp32"
KERNEL_PATHS = (NATIVE_BF16, BF16_THROUGH_FP32, BF16_EMULATED, FP32)
"""The values of the ``trials`` table's ``kernel_path`` column (``kernel_path``)."""


def kernel_path(precision: str, device: torch.device, compile: bool = False,
                **machine) -> str:
    """Which kernels a trial of resolved ``precision`` runs its convolutions and matrix products
    on, as the ``trials`` table's ``kernel_path`` records it (what its time per FLOP depends on):
    ``native bf16`` (bf16 on a device that computes it natively: a CPU with AVX512_BF16 or AMX,
    a CUDA device of compute capability >= 8.0), ``bf16 through float32 kernels`` (eager bf16 on
    a CPU without them: ``Bf16ThroughFp32Kernels``, the context ``bf16_kernels`` gives),
    ``bf16 on kernels without native bf16`` (a compiled bf16 trial on such a CPU, or bf16 on an
    older GPU: about 10x slower than fp32) and ``fp32``. ``machine``: as for ``native_bf16``."""
    if precision != "bf16":
        return FP32
    if native_bf16(device, **machine):
        return NATIVE_BF16
    return BF16_THROUGH_FP32 if device.type == "cpu" and not compile else BF16_EMULATED


def resolve_precision(requested: str, device: torch.device, **machine) -> str:
    """``fp32`` or ``bf16``: the requested value, or for ``auto`` bf16 exactly where
    ``native_bf16(device, **machine)``."""
    if requested not in PRECISIONS:
        raise ConfigError(f"precision={requested!r}; choose from: {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    return "bf16" if native_bf16(device, **machine) else "fp32"
