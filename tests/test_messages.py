"""Every refusal of the command line is one clear line: exit code 2, exactly one stderr line
naming the flag or field, the value and what is allowed, no Python repr, nothing written.
Run in-process through ``korth_bench.cli.main``, in an empty working directory."""
import os
from pathlib import Path

import pytest

from korth_bench.cli import main
from korth_bench.config import TrialConfig

TRAIN = ["--set", "dataset=synthetic", "--set", "epochs=1", "--set", "device=cpu"]
SCHEMES = "s3://, gs://, gcs://, hdfs://, viewfs://, file://"


def tree(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


@pytest.fixture
def refuse(tmp_path, monkeypatch, capsys):
    """``refuse(*argv)`` -> the one stderr line of a refused command, after checking its exit
    code (2), that it printed nothing else and that the working directory is unchanged."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    def run(*argv):
        before = tree(work)
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exit:  # argparse
            code = exit.code
        out, err = capsys.readouterr()
        lines = err.splitlines()
        assert code == 2, (code, out, err)
        assert len(lines) == 1, err
        assert out == ""
        assert "['" not in lines[0] and "'" not in lines[0], lines[0]  # no repr of a list or str
        assert tree(work) == before, "something was written"
        return lines[0]

    run.work = work
    return run


def test_set_without_an_equals_sign_says_it_takes_key_value(refuse):
    assert refuse("train", "--set", "epochs", "3") == (
        "korth-bench train: error: argument --set: takes KEY=VALUE (e.g. --set epochs=3), got "
        "epochs (--help lists the flags)")
    assert refuse("selfcheck", "--set", "train_size").startswith(
        "korth-bench selfcheck: error: argument --set: takes KEY=VALUE")


def test_argparse_errors_are_one_line_naming_the_flag(refuse):
    assert refuse("plan", "somewhere", "--power", "1.5") == (
        "korth-bench plan: error: argument --power: must be a number in (0, 1) (probability), "
        "got 1.5 (--help lists the flags)")
    assert refuse("report", "--selection", "x", "somewhere") == (
        "korth-bench report: error: argument --selection: invalid choice: x (choose from val, "
        "test) (--help lists the flags)")
    assert refuse("run", "smoke", "--wave-size", "10") == (
        "korth-bench: error: unrecognized arguments: --wave-size 10 (--help lists the flags)")
    assert refuse("run", "smoke", "--max-concurrent", "two") == (
        "korth-bench run: error: argument --max-concurrent: invalid int value: two (--help lists "
        "the flags)")
    assert refuse("frobnicate").startswith(
        "korth-bench: error: argument COMMAND: invalid choice: frobnicate (choose from list, train,")
    assert refuse("data", "pack", "only-one") == (
        "korth-bench data pack: error: the following arguments are required: out (--help lists "
        "the flags)")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc file system")
def test_an_out_under_proc_gives_the_true_reason(refuse):
    assert refuse("train", *TRAIN, "--out", "/proc/x") == (
        "korth-bench: error: --out /proc/x: results directory is not writable (/proc is a proc "
        "file system of the kernel: it holds no files); allowed: a writable local directory or a "
        "URI such as s3://bucket/prefix")
    assert not os.path.exists("/proc/x")


def test_storage_uris_list_the_schemes_allowed(refuse):
    assert refuse("run", "smoke", "--storage", "ftp://host/korth") == (
        f"korth-bench: error: --storage ftp://host/korth: the scheme ftp:// is not supported; "
        f"allowed: a local path or a URI with one of the schemes {SCHEMES}")
    assert refuse("status", "smoke", "--storage", "ftp://host/korth").startswith(
        "korth-bench: error: --storage ftp://host/korth: the scheme ftp:// is not supported")
    assert refuse("status", "ftp://host/korth/smoke") == (
        f"korth-bench: error: ftp://host/korth/smoke: the scheme ftp:// is not supported; "
        f"allowed: a local path or a URI with one of the schemes {SCHEMES}")


def test_report_on_a_directory_without_trials_names_it_plainly(refuse):
    empty = refuse.work / "empty"
    empty.mkdir()
    assert refuse("report", "empty") == "korth-bench: error: no trials rows in empty: nothing to report"


def test_train_into_an_existing_output_is_refused_without_overwrite(refuse):
    name = TrialConfig.from_dict({"dataset": "synthetic", "epochs": "1", "device": "cpu"}).name
    earlier = refuse.work / "out" / name / "trials" / "earlier.parquet"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"the earlier trial's table")
    assert refuse("train", *TRAIN, "--out", "out") == (
        f"korth-bench: error: --out out: trial {name} already has output in "
        f"{refuse.work / 'out' / name}; allowed: --resume to continue it, --overwrite to replace "
        f"it, or another --out")
    assert earlier.read_bytes() == b"the earlier trial's table"


def test_a_missing_plugin_and_an_address_that_does_not_answer(refuse):
    assert refuse("list", "--plugin", "no_such_plugin") == (
        "korth-bench: error: --plugin no_such_plugin: no such module or .py file; allowed: an "
        "importable module name or the path of a .py file")
    assert refuse("train", "--plugin", "missing.py", *TRAIN) == (
        "korth-bench: error: --plugin missing.py: no such file; allowed: an importable module "
        "name or the path of a .py file")
    assert refuse("run", "smoke", "--address", "127.0.0.1:1") == (
        "korth-bench: error: --address 127.0.0.1:1: no Ray cluster answers at 127.0.0.1:1 "
        "(Connection refused); start one with `ray start --head` or leave --address out to run "
        "on a local Ray")
