"""``precision: auto``: bf16 autocast where the device computes bf16 natively, fp32 elsewhere.

Native bf16 means matrix units that multiply bf16 operands at a higher rate than float32 and
accumulate in float32: CUDA devices of compute capability >= 8.0 (Ampere and later, tensor cores),
and CPUs with the AVX512_BF16 (``vdpbf16ps``) or AMX (``amx_bf16`` tiles) instructions, which
oneDNN uses for bf16 convolutions. Elsewhere autocast to bf16 emulates it through conversions and
is slower than fp32, so ``auto`` means fp32 there.

The choice is made where the trial runs (a driver cannot see a worker's GPU), so the trial
identity hashes the requested value and the ``trials`` table records ``precision_resolved``.
"""
from __future__ import annotations

import functools
from typing import FrozenSet, Optional, Tuple

import torch

from korth_bench.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")

CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""``/proc/cpuinfo`` flags of native bf16 arithmetic on x86 CPUs (either one suffices)."""
CUDA_BF16_CAPABILITY = (8, 0)


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


def slow_bf16_note(requested: str, flags: Optional[FrozenSet[str]] = None) -> Optional[str]:
    """The one line warning that ``precision: bf16`` on a CPU without native bf16 (``flags``,
    default this machine's, lack AVX512_BF16 and AMX) runs several times slower than fp32; None
    where it does not apply. Autocast there converts every operand. Measured on such CPUs (1
    thread per trial): a 1-epoch ResNet-20 on synthetic data took 37-42 s in bf16 against
    8.3-8.5 s in fp32; one CIFAR-10 epoch of 8,000 images took 166 s against 19.6 s for
    ResNet-8x1, and over 20 min against 91 s for ResNet-14x2."""
    if requested != "bf16" or native_bf16(torch.device("cpu"), flags=flags):
        return None
    return ("precision=bf16 on this CPU (no AVX512_BF16 or AMX: bf16 is emulated) runs several "
            "times slower than fp32 (measured 4x to over 13x, more for larger models); "
            "precision: auto uses bf16 only where the hardware computes it natively")


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


def resolve_precision(requested: str, device: torch.device, **machine) -> str:
    """``fp32`` or ``bf16``: the requested value, or for ``auto`` bf16 exactly where
    ``native_bf16(device, **machine)``."""
    if requested not in PRECISIONS:
        raise ConfigError(f"precision={requested!r}; choose from: {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    return "bf16" if native_bf16(device, **machine) else "fp32"
