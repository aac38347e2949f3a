"""precision auto: bf16 exactly where the device computes it natively (flags and capability
injected, so both branches run on any machine), recorded as precision_resolved."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from korth_bench import results
from korth_bench.trial import precision
from korth_bench.trial.precision import native_bf16, resolve_precision
from korth_bench.trial.loop import train_and_measure

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
TINY = {"model": "plain", "depth": 3, "dataset": "synthetic", "train_size": 256, "test_size": 64,
        "epochs": 1, "device": "cpu", "robustness": False, "probe_size": 8, "threads": 2}


@pytest.mark.parametrize("flags, expected", [
    ({"fpu", "avx2", "avx512f", "avx512_bf16"}, "bf16"),  # AVX512_BF16 (Zen 4, Cooper Lake)
    ({"avx2", "amx_tile", "amx_bf16"}, "bf16"),            # AMX (Sapphire Rapids)
    ({"avx2", "avx512f", "avx512_vnni"}, "fp32"),          # AVX-512 without bf16 arithmetic
    (set(), "fp32"),                                        # flags unreadable (not Linux)
])
def test_auto_on_a_cpu_follows_its_bf16_flags(flags, expected):
    assert resolve_precision("auto", CPU, flags=frozenset(flags)) == expected


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp32"), ((8, 0), "bf16"),
                                                  ((8, 6), "bf16"), ((9, 0), "bf16")])
def test_auto_on_cuda_needs_compute_capability_8(capability, expected):
    assert resolve_precision("auto", CUDA, capability=capability) == expected


def test_an_explicit_precision_is_kept_on_any_device():
    for requested in ("fp32", "bf16"):
        assert resolve_precision(requested, CPU, flags=frozenset()) == requested
        assert resolve_precision(requested, CUDA, capability=(7, 0)) == requested
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", CPU)


@pytest.mark.parametrize("flags, resolved", [(frozenset({"avx512_bf16"}), "bf16"),
                                             (frozenset({"avx2"}), "fp32")])
def test_auto_trial_records_the_resolved_precision_and_trains_like_it(monkeypatch, flags, resolved):
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    auto = train_and_measure({**TINY, "precision": "auto"})
    explicit = train_and_measure({**TINY, "precision": resolved})
    assert auto.summary["precision"] == "auto" and auto.summary["precision_resolved"] == resolved
    assert explicit.summary["precision_resolved"] == resolved
    assert auto.summary["trial_id"] != explicit.summary["trial_id"]  # the requested value counts
    assert auto.epochs[0]["train_loss"] == explicit.epochs[0]["train_loss"]
    assert auto.epochs[0]["test_acc"] == explicit.epochs[0]["test_acc"]
    other = train_and_measure({**TINY, "precision": {"bf16": "fp32", "fp32": "bf16"}[resolved]})
    assert other.epochs[0]["train_loss"] != auto.epochs[0]["train_loss"]  # autocast really differs
    table = results.to_arrow("trials", [auto.summary], auto.summary)
    assert table.schema.field("precision_resolved").type == "string"
    assert table.column("precision_resolved").to_pylist() == [resolved]


def _flags_of_this_machine():
    """The first ``flags`` line of /proc/cpuinfo, parsed here (not by the module under test)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            text = cpuinfo.read()
    except OSError:
        pytest.skip("/proc/cpuinfo is not readable on this machine")
    line = next((line for line in text.splitlines() if line.startswith("flags")), None)
    if line is None:
        pytest.skip("/proc/cpuinfo has no flags line (not an x86 CPU)")
    return frozenset(line.partition(":")[2].split())


def test_the_machine_itself_is_read_from_proc_cpuinfo():
    """auto on this very CPU: bf16 exactly when /proc/cpuinfo lists avx512_bf16 or amx_bf16 (no
    flags injected), and the module reads the same flags as this test does."""
    flags = _flags_of_this_machine()
    precision.cpu_flags.cache_clear()
    assert precision.cpu_flags() == flags
    native = bool(flags & {"avx512_bf16", "amx_bf16"})
    expected = "bf16" if native else "fp32"
    assert native_bf16(CPU) is native
    assert resolve_precision("auto", CPU) == expected
    record = train_and_measure({**TINY, "precision": "auto"})
    assert record.summary["precision_resolved"] == expected


CPUINFO = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 {extra}\nbogomips\t: 4000\n"


@pytest.mark.parametrize("extra, slow", [("avx512f", True), ("avx512f avx512_bf16", False),
                                         ("amx_bf16 amx_tile", False)])
def test_bf16_on_a_cpu_without_native_bf16_is_one_line_naming_auto(extra, slow):
    flags = precision.parse_cpu_flags(CPUINFO.format(extra=extra))
    note = precision.bf16_kernels_note("bf16", flags=flags)
    if not slow:
        assert note is None
        return
    assert "\n" not in note and "float32 kernels: as fast as fp32, not faster" in note
    assert "precision=bf16" in note and "precision: auto" in note
    assert precision.bf16_kernels_note("fp32", flags=flags) is None
    assert precision.bf16_kernels_note("auto", flags=flags) is None  # auto is fp32 there


BF16_ULP = 2.0 ** -7  # the spacing of bf16 numbers in [1, 2): 8 significant bits


def _bf16_values(*shape, generator):
    """Random operands that are exactly bf16 numbers, as autocast hands them to a kernel."""
    return torch.randn(*shape, generator=generator).bfloat16()


def _conv_and_linear(x, w, a, b, bias):
    """A 3x3 convolution forward and backward (grad of sum(out * g)) and a linear layer."""
    x, w = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    out = torch.nn.functional.conv2d(x, w, padding=1)
    g = torch.ones_like(out)
    gx, gw = torch.autograd.grad(out, (x, w), g)
    return {"conv": out, "conv grad input": gx, "conv grad weight": gw,
            "linear": torch.nn.functional.linear(a, b, bias)}


def _bf16_of_float64(x, w, a, b, bias):
    """The native bf16 contract, in float64: exact products of the bf16 operands, summed, then
    rounded once to bf16."""
    x64, w64 = x.double().requires_grad_(True), w.double().requires_grad_(True)
    out = torch.nn.functional.conv2d(x64, w64, padding=1)
    gx, gw = torch.autograd.grad(out, (x64, w64), torch.ones_like(out))
    linear = torch.nn.functional.linear(a.double(), b.double(), bias.double())
    return {"conv": out, "conv grad input": gx, "conv grad weight": gw, "linear": linear}


def test_bf16_through_fp32_kernels_is_bf16_arithmetic_within_one_rounding_of_float64():
    generator = torch.Generator().manual_seed(0)
    operands = (_bf16_values(8, 16, 12, 12, generator=generator),
                _bf16_values(16, 16, 3, 3, generator=generator),
                _bf16_values(32, 64, generator=generator), _bf16_values(10, 64, generator=generator),
                _bf16_values(10, generator=generator))
    with precision.Bf16ThroughFp32Kernels():
        through_fp32 = _conv_and_linear(*operands)
    reference = _bf16_of_float64(*operands)
    for name, value in through_fp32.items():
        assert value.dtype == torch.bfloat16, name      # results stay bf16, as autocast's are
        exact = reference[name]
        error = (value.double() - exact).abs() / exact.abs().clamp_min(1e-3)
        # one rounding to bf16 is at most half a spacing (2^-8 relative); summation order adds
        # a little where a sum lands next to a rounding boundary
        assert error.max() <= BF16_ULP, name
        assert (value == exact.bfloat16()).double().mean() >= 0.97, name
        assert (value.float() != exact.float()).any(), name  # really rounded, not float32


@pytest.mark.parametrize("flags, active", [(frozenset({"avx2", "avx512f"}), True),
                                           (frozenset({"avx512_bf16"}), False),
                                           (frozenset({"amx_bf16"}), False)])
def test_bf16_runs_through_fp32_kernels_exactly_where_the_cpu_lacks_bf16(flags, active):
    context = precision.bf16_kernels("bf16", CPU, flags=flags)
    assert isinstance(context, precision.Bf16ThroughFp32Kernels) == active
    assert not isinstance(precision.bf16_kernels("fp32", CPU, flags=flags),
                          precision.Bf16ThroughFp32Kernels)
    # torch.compile does not trace under a dispatch mode: a compiled trial keeps oneDNN's kernels
    assert not isinstance(precision.bf16_kernels("bf16", CPU, compile=True, flags=flags),
                          precision.Bf16ThroughFp32Kernels)
    note = precision.bf16_kernels_note("bf16", compile=True, flags=flags)
    assert (note is not None and "about 10x slower than fp32" in note and "\n" not in note) == active


def test_a_bf16_trial_on_a_cpu_without_bf16_trains_through_fp32_kernels(monkeypatch):
    """The same trial, with the kernels' ops counted: bf16 convolutions run as float32."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    seen = []
    original = precision.Bf16ThroughFp32Kernels.__torch_dispatch__

    def counting(self, func, types, args=(), kwargs=None):
        seen.append(func)
        return original(self, func, types, args, kwargs)

    monkeypatch.setattr(precision.Bf16ThroughFp32Kernels, "__torch_dispatch__", counting)
    record = train_and_measure({**TINY, "model": "resnet", "depth": 8, "precision": "bf16"})
    assert record.summary["precision_resolved"] == "bf16" and record.status == "completed"
    assert torch.ops.aten.convolution.default in seen
    assert torch.ops.aten.convolution_backward.default in seen


class _KernelOperands(TorchDispatchMode):
    """Records the dtypes of the floating operands each kernel op is called with."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.convolution.default, torch.ops.aten.addmm.default):
            self.seen.append((func, {value.dtype for value in tree_leaves((args, kwargs or {}))
                                     if isinstance(value, torch.Tensor)}))
        return func(*args, **(kwargs or {}))


def test_bf16_through_fp32_kernels_hands_the_kernels_float32_and_returns_bf16():
    """The rule itself, seen from the kernel below the mode: a convolution or matrix product
    with bf16 operands is called with float32 ones (exact conversions), with its keyword
    arguments (addmm's beta and alpha), and its result is bf16; with float32 operands it runs as
    it is."""
    generator = torch.Generator().manual_seed(0)
    x = _bf16_values(2, 3, 5, 5, generator=generator)
    w = _bf16_values(4, 3, 3, 3, generator=generator)
    a, b = _bf16_values(6, 8, generator=generator), _bf16_values(5, 8, generator=generator)
    bias = _bf16_values(5, generator=generator)
    with _KernelOperands() as below, precision.Bf16ThroughFp32Kernels():
        out = torch.nn.functional.conv2d(x, w)
        linear = torch.nn.functional.linear(a, b, bias)
        plain = torch.nn.functional.conv2d(x.float(), w.float())
        scaled = torch.addmm(bias, a, b.T, beta=0.5, alpha=2.0)
    assert out.dtype == linear.dtype == scaled.dtype == torch.bfloat16
    assert plain.dtype == torch.float32
    assert [dtypes for _, dtypes in below.seen] == [{torch.float32}] * 4
    torch.testing.assert_close(out, torch.nn.functional.conv2d(x.float(), w.float()).bfloat16())
    expected = (0.5 * bias.float() + 2.0 * a.float() @ b.float().T).bfloat16()
    torch.testing.assert_close(scaled, expected)


def test_any_other_device_is_fp32_and_a_wrong_precision_names_the_choices():
    mps = torch.device("mps")
    assert native_bf16(mps, flags=frozenset({"avx512_bf16"})) is False
    assert resolve_precision("auto", mps) == "fp32"
    with pytest.raises(ValueError, match=r"^precision='fp16'; choose from: auto, fp32, bf16$"):
        resolve_precision("fp16", CPU)
