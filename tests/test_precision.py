"""precision auto: bf16 exactly where the device computes it natively (flags and capability
injected, so both branches run on any machine), recorded as precision_resolved."""
import pytest
import torch

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


def test_the_machine_itself_is_read_from_proc_cpuinfo():
    flags = precision.cpu_flags()
    assert isinstance(flags, frozenset)
    assert native_bf16(CPU) == bool(flags & precision.CPU_BF16_FLAGS)


CPUINFO = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 {extra}\nbogomips\t: 4000\n"


@pytest.mark.parametrize("extra, slow", [("avx512f", True), ("avx512f avx512_bf16", False),
                                         ("amx_bf16 amx_tile", False)])
def test_bf16_on_a_cpu_without_native_bf16_is_one_line_naming_auto(extra, slow):
    flags = precision.parse_cpu_flags(CPUINFO.format(extra=extra))
    note = precision.slow_bf16_note("bf16", flags=flags)
    if not slow:
        assert note is None
        return
    assert "\n" not in note and "several times slower than fp32" in note
    assert "precision=bf16" in note and "precision: auto" in note
    assert precision.slow_bf16_note("fp32", flags=flags) is None
    assert precision.slow_bf16_note("auto", flags=flags) is None  # auto is fp32 there
