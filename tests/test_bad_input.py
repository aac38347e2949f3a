"""Bad input to `korth-bench run`: one line naming the field, the value and what is allowed,
exit code 2, and nothing written (no results directory, no Ray). The search-space loader,
fuzzed, raises nothing but ``ConfigError``."""
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from korth_bench import cli
from korth_bench.spaces import space as spaces
from korth_bench.errors import ConfigError
from korth_bench.trial.loop import run_trial
from conftest import make_space, processes_mentioning


def run_cli(capsys, *args):
    """`korth-bench run ...` in this process -> (exit code, stderr lines)."""
    capsys.readouterr()
    code = cli.main(["run", *map(str, args), "--quiet"])
    return code, capsys.readouterr().err.strip().splitlines()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def packed_file(path, **columns):
    pq.write_table(pa.table(columns), path)
    return str(path)


# Each case: sections of the space (merged over conftest.TINY), or a raw YAML text, and the
# words its error must hold (the field, the value, the allowed values).
SPACE_CASES = {
    "malformed yaml": ("name: bad\ngrid: {seed: [0, 1\n", ["not valid YAML", "line"]),
    "unknown section": ({"grdi": {"seed": [0]}}, ["unknown section 'grdi'", "grid", "sections:"]),
    "unknown trial key": ({"training": {"dpeth": 8}}, ["'dpeth'", "allowed:", "depth, width"]),
    "unknown regularizer": ({"regularizers": {"sro": {}}}, ["'sro'", "choose from", "so"]),
    "unknown model": ({"training": {"model": "resnt"}}, ["model family 'resnt'", "choose from", "resnet"]),
    "unknown dataset": ({"data": {"dataset": "cifar11"}}, ["dataset 'cifar11'", "cifar10"]),
    "invalid depth": ({"training": {"depth": 9}}, ["depth=9", "resnet", "8"]),
    "negative coefficient": ({"grid": {"coefficient": [-0.001]}, "regularizers": ["so"]},
                             ["coefficient=-0.001", ">= 0"]),
    "non-numeric coefficient": ({"grid": {"coefficient": ["lots"]}, "regularizers": ["so"]},
                                ["coefficient", "'lots'", "number"]),
    "relaxation out of range": ({"regularizers": {"dn_relaxed": {"relaxation": 1.5}}},
                                ["relaxation=1.5", "[0, 1)"]),
    "empty grid": ({"grid": {"seed": []}}, ["grid.seed", "[]", "non-empty list"]),
    "unknown analysis key": ({"analysis": {"primary": {"arms": ["so"], "drop": 1}}},
                             ["analysis.primary.drop", "allowed:", "claimed_drop"]),
    "empty primary arms": ({"analysis": {"primary": {"arms": []}}},
                           ["analysis.primary.arms=[]", "non-empty list"]),
    "primary metric not a column": ({"analysis": {"primary": {"arms": ["so"], "metric": "acc"}}},
                                    ["analysis.primary.metric='acc'", "trials column"]),
    "claimed drop not positive": ({"analysis": {"primary": {"arms": ["so"], "claimed_drop": 0}}},
                                  ["analysis.primary.claimed_drop=0", "> 0"]),
    "primary alpha out of range": ({"analysis": {"primary": {"arms": ["so"], "alpha": 5}}},
                                   ["analysis.primary.alpha=5", "between 0 and 1"]),
    "declared not a date": ({"analysis": {"primary": {"arms": ["so"]}, "declared": "soon"}},
                            ["analysis.declared='soon'", "YYYY-MM-DD"]),
    # A regularizer without its coefficient (or relaxation) would train the baseline under its name.
    "regularizer without a coefficient": ({"regularizers": ["none", "so"]}, [
        "regularizer='so'", "coefficient=0.0", "give a coefficient", "regularizer=none"]),
    "grid coefficient 0": ({"grid": {"coefficient": [0, 1e-3]}, "regularizers": ["so"]}, [
        "regularizer='so'", "coefficient=0.0", "give a coefficient"]),
    "dn_relaxed without relaxation": (
        {"grid": {"coefficient": [1e-3]}, "regularizers": {"dn_relaxed": {}}},
        ["regularizer='dn_relaxed' needs relaxation", "r = 0 is dn"]),
    "sampled regularizer without a coefficient": (
        {"sample": {"seed": {"int": [0, 3]}}, "regularizers": {"none": {}, "dn": {}},
         "search": {"type": "optuna", "metric": "val_acc", "mode": "max", "num_samples": 4}},
        ["sampled trial", "regularizer='dn'", "coefficient=0.0", "give a coefficient"]),
    "sampled dn_relaxed without relaxation": (
        {"regularizers": {"dn_relaxed": {"coefficient": {"loguniform": [1e-4, 1e-2]}}},
         "search": {"type": "optuna", "metric": "val_acc", "mode": "max", "num_samples": 4}},
        ["sampled trial", "regularizer='dn_relaxed' needs relaxation"]),
}


@pytest.mark.parametrize("case", SPACE_CASES)
def test_a_bad_search_space_is_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys):
    sections, words = SPACE_CASES[case]
    if isinstance(sections, str):
        path = tmp_path / "bad.yaml"
        path.write_text(sections)
    else:
        path = make_space(tmp_path, "bad", **sections)
    storage = tmp_path / "results"
    code, lines = run_cli(capsys, path, "--storage", storage)
    assert code == 2 and len(lines) == 1, lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not storage.exists()


def _data_cases(tmp_path):
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet at all " * 8)
    wrong = packed_file(tmp_path / "wrong.parquet", label=[0], pixels=[b"x"])
    return {"missing data file": (tmp_path / "absent.parquet", ["absent.parquet", "no such file"]),
            "corrupt data file": (corrupt, ["corrupt.parquet", "not a readable Parquet file"]),
            "data file without the packed columns": (wrong, ["wrong.parquet", "split", "jpeg"])}


@pytest.mark.parametrize("case", ["missing data file", "corrupt data file",
                                  "data file without the packed columns"])
def test_a_bad_data_file_is_refused_before_any_trial(case, tmp_path, capsys):
    data_path, words = _data_cases(tmp_path)[case]
    path = make_space(tmp_path, "data", data={"dataset": "packed", "data_path": str(data_path),
                                              "image_size": None})
    storage = tmp_path / "results"
    code, lines = run_cli(capsys, path, "--storage", storage)
    assert code == 2 and len(lines) == 1, lines
    assert all(word in lines[0] for word in ["data_path=", *words, "packed Parquet"]), lines[0]
    assert not storage.exists()


def test_an_unwritable_results_directory_is_refused(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    path = make_space(tmp_path, "unwritable")
    for storage in (blocker / "results", "/proc/korth-results"):  # root writes anywhere else
        code, lines = run_cli(capsys, path, "--storage", storage)
        assert code == 2 and len(lines) == 1, lines
        assert f"--storage {storage}" in lines[0] and "not writable" in lines[0], lines[0]
        assert "writable local directory" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "unwritable.yaml"]


def test_a_cluster_address_that_does_not_answer_is_refused(tmp_path, capsys):
    port = free_port()
    storage = tmp_path / "results"
    code, lines = run_cli(capsys, make_space(tmp_path, "addr"), "--address", f"127.0.0.1:{port}",
                          "--storage", storage)
    assert code == 2 and len(lines) == 1, lines
    assert f"--address 127.0.0.1:{port}" in lines[0] and "ray start --head" in lines[0]
    assert not storage.exists()


def _cli_lines(capsys, *args):
    """Any `korth-bench ...` command in this process -> (exit code, stderr lines)."""
    capsys.readouterr()
    code = cli.main(list(map(str, args)))
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("resources, words", [
    ({"cpu": 8}, ["resources.cpu=8", "fits on no node of this machine", "4 CPUs, 1 GPUs"]),
    ({"cpu": 1, "gpu": 2}, ["resources.gpu=2 (resources.workers=2)", "4 CPUs, 1 GPUs"]),
])
def test_a_trial_that_fits_no_node_is_refused_before_trials_start(resources, words, tmp_path,
                                                                   capsys, ray_session):
    storage = tmp_path / "results"
    path = make_space(tmp_path, "big", resources=resources)
    code, lines = run_cli(capsys, path, "--storage", storage)
    assert code == 2 and len(lines) == 1, lines
    assert all(word in lines[0] for word in words), lines[0]
    code, lines = run_cli(capsys, path, "--storage", storage, "--pending-timeout", "0.5")
    assert code == 2 and len(lines) == 1 and "after waiting 0.5 s (--pending-timeout)" in lines[0]
    assert not storage.exists()


def test_a_gpu_space_on_a_machine_without_a_gpu_is_refused(tmp_path):
    """The paper spaces' resources.gpu=0.5 on a CPU machine, no --address: a fresh local Ray."""
    import subprocess
    import sys
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    storage = tmp_path / "results"
    path = make_space(tmp_path, "gpu", resources={"cpu": 1, "gpu": 0.5})
    done = subprocess.run([sys.executable, "-m", "korth_bench.cli", "run", path, "--storage",
                           str(storage), "--quiet"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "resources.gpu=0.5: a trial fits on no node of this machine" in lines[0], lines[0]
    assert "0 GPUs" in lines[0] and not storage.exists()


def test_an_object_store_that_does_not_answer_is_refused(tmp_path, capsys, monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                       "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    endpoint = f"http://127.0.0.1:{free_port()}"
    code, lines = run_cli(capsys, make_space(tmp_path, "s3"), "--storage", "s3://bucket/sweeps",
                          "--storage-endpoint", endpoint)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"korth-bench: error: --storage s3://bucket/sweeps "
                               f"(--storage-endpoint {endpoint}): the store did not answer"), lines[0]
    assert "Could not connect" in lines[0]


TRAIN = ["--set", "dataset=synthetic", "--set", "epochs=1", "--set", "device=cpu"]


def test_train_out_under_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, lines = _cli_lines(capsys, "train", *TRAIN, "--out", blocker / "out")
    assert code == 2 and len(lines) == 1, lines
    assert f"--out {blocker / 'out'}: results directory is not writable" in lines[0]
    assert f"{blocker} is not a directory" in lines[0]
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


@pytest.mark.parametrize("case", ["missing data file", "corrupt data file",
                                  "data file without the packed columns", "device=cuda"])
def test_train_checks_its_inputs_before_it_writes(case, tmp_path, capsys):
    import torch

    if case == "device=cuda":
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        settings, words = ["--set", "device=cuda"], ["device='cuda'", "no CUDA device"]
    else:
        data_path, words = _data_cases(tmp_path)[case]
        settings = ["--set", "dataset=packed", "--set", f"data_path={data_path}"]
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out"
    code, lines = _cli_lines(capsys, "train", *TRAIN, *settings, "--out", out)
    assert code == 2 and len(lines) == 1, lines
    assert all(word in lines[0] for word in words), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no trial directory


@pytest.mark.parametrize("settings, words", [
    (["regularizer=dn_relaxed", "relaxation=0.3"], ["regularizer='dn_relaxed'", "coefficient=0.0",
                                                    "regularizer=none"]),
    (["regularizer=so", "coefficient=0"], ["regularizer='so'", "give a coefficient"]),
    (["regularizer=dn_relaxed", "coefficient=1e-3"], ["needs relaxation", "r = 0 is dn"]),
])
def test_train_refuses_a_regularizer_without_its_required_keys(settings, words, tmp_path, capsys):
    out = tmp_path / "out"
    code, lines = _cli_lines(capsys, "train", *TRAIN, *[a for s in settings for a in ("--set", s)],
                             "--out", out)
    assert code == 2 and len(lines) == 1, lines
    assert all(word in lines[0] for word in words), lines[0]
    assert not out.exists()
    with pytest.raises(ConfigError, match=words[0].replace("=", ".").replace("'", ".")):
        run_trial({"dataset": "synthetic", **dict(s.split("=") for s in settings)})


def test_a_coefficient_for_none_is_one_line_saying_it_is_ignored(tmp_path, capsys):
    code, lines = _cli_lines(capsys, "train", *TRAIN, "--set", "regularizer=none", "--set",
                             "coefficient=0.01", "--set", "train_size=32", "--set", "test_size=32",
                             "--set", "robustness=false", "--set", "depth=8", "--out", tmp_path)
    assert code == 0
    assert lines[0] == ("korth-bench: note: coefficient=0.01 is ignored: regularizer='none' has no "
                        "penalty (its coefficient is 0)"), lines


def test_data_pack_of_a_missing_source_is_refused(tmp_path, capsys):
    code, lines = _cli_lines(capsys, "data", "pack", tmp_path / "absent", tmp_path / "out.parquet")
    assert code == 2 and len(lines) == 1, lines
    assert f"source '{tmp_path / 'absent'}' is not a directory" in lines[0]
    assert "cifar-10-batches-py" in lines[0] and not list(tmp_path.iterdir())


# ---------------------------------------------------------------------- whole processes
REPO = Path(__file__).resolve().parents[1]
PLAN_STUDY = "results/cifar10_cpu_capacity"  # a committed study, as tests/test_plan.py reads it
# `korth-bench ARGS` in a fresh interpreter that says afterwards whether Ray was started in it
CLI_THEN_RAY_STATE = ("import sys\nfrom korth_bench import cli\ncode = cli.main(sys.argv[1:])\n"
                      "ray = sys.modules.get('ray')\n"
                      "print('ray initialized:', bool(ray and ray.is_initialized()))\n"
                      "sys.exit(code)")


@pytest.mark.parametrize("args, fragment", [
    (["--primary", "sro"], "--primary 'sro' is not an entry"),
    (["--out", "x.yaml"], "--out x.yaml: a design is written from a candidate --space"),
    (["--power", "1.5"], "--power: must be a number in (0, 1)"),  # one line since issue 40
    (["--parallel", "0"], "--parallel 0: must be a whole number >= 1"),
])
def test_bad_plan_input_is_the_whole_stderr_in_one_line(args, fragment):
    """`korth-bench plan` on bad input: stderr is exactly one line (nothing before the error,
    no usage, no traceback), it names the option, exit code 2, nothing on stdout."""
    if not (REPO / PLAN_STUDY).is_dir():
        pytest.skip(f"{PLAN_STUDY} is not in this checkout")
    done = subprocess.run([sys.executable, "-m", "korth_bench.cli", "plan", PLAN_STUDY, *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("korth-bench") and ": error: " in lines[0], lines[0]
    assert fragment in lines[0], lines[0]
    assert done.stdout == ""


@pytest.mark.parametrize("case", ["unknown regularizer", "missing data file", "unwritable results",
                                  "address that does not answer"])
def test_bad_input_never_starts_ray(case, tmp_path, ray_temp_dir):
    """README, "What survives what": bad input exits 2 with one line and Ray not started: no Ray
    session under Ray's temp dir (RAY_TMPDIR, fresh and empty), no Ray process mentioning it,
    no Ray initialized in the process."""
    args = ["--storage", str(tmp_path / "results")]
    if case == "unknown regularizer":
        path = make_space(tmp_path, "bad", regularizers={"sro": {}})
    elif case == "missing data file":
        path = make_space(tmp_path, "bad", data={"dataset": "packed", "image_size": None,
                                                  "data_path": str(tmp_path / "absent.parquet")})
    elif case == "unwritable results":
        (tmp_path / "a-file").write_text("x")
        path, args = make_space(tmp_path, "bad"), ["--storage", str(tmp_path / "a-file" / "results")]
    else:
        path, args = make_space(tmp_path, "bad"), [*args, "--address", f"127.0.0.1:{free_port()}"]
    env = {**os.environ, "RAY_TMPDIR": ray_temp_dir, "RAY_USAGE_STATS_ENABLED": "0"}
    assert os.listdir(ray_temp_dir) == []
    done = subprocess.run([sys.executable, "-c", CLI_THEN_RAY_STATE, "run", path, *args, "--quiet"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    assert os.listdir(ray_temp_dir) == [], done.stderr  # no ray/session_*, no socket, no log
    assert processes_mentioning(ray_temp_dir) == []
    assert done.stdout.splitlines()[-1] == "ray initialized: False", done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("korth-bench: error: "), done.stderr
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------------- the loader, fuzzed
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.floats(allow_nan=True),
                    st.text(max_size=8))
KEYS = st.sampled_from([*spaces.SECTIONS, "depth", "model", "seed", "coefficient", "relaxation",
                        "regularizer", "type", "metric", "mode", "cpu", "gpu", "workers", "every",
                        "keep", "max_retries", "loguniform", "choice", "so", "none", "dn_relaxed",
                        "dataset", "epochs", "enabled", "x"])
TREES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(KEYS, inner, max_size=4)),
                     max_leaves=12)


def _tiny_space(sections):
    """A valid tiny space with fuzzed sections laid over it (so the fuzz reaches deep checks)."""
    space = yaml.safe_load(open(make_space(tempfile.mkdtemp(), "fuzz")))
    space.update(sections)
    return space


def _load_text(text):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(text)
    try:
        spaces.load(handle.name)
    except ConfigError:
        pass
    finally:
        os.unlink(handle.name)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.dictionaries(KEYS, TREES, max_size=4))
def test_fuzzed_sections_raise_only_config_error(sections):
    _load_text(yaml.safe_dump(_tiny_space(sections)))


@FUZZ
@given(st.one_of(st.text(max_size=200), TREES.map(lambda tree: yaml.safe_dump(tree))))
def test_fuzzed_yaml_text_raises_only_config_error(text):
    _load_text(text)
