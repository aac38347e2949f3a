"""Regularizers from outside the package, as the README shows them: a ``--plugin`` file or module
(``list``, ``train``, a Ray sweep whose workers import it, the penalty benchmark's ``--custom``)
and an installed distribution's ``korth_bench.regularizers`` entry point, found with no flag.

Every command runs as a subprocess: a plugin registers its regularizers in the process that
imports it, and the test process's registry stays the package's own."""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import TINY, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KORTH = str(BIN / "korth-bench")
TINY_TRAIN = ["--set", "dataset=synthetic", "--set", "epochs=1", "--set", "image_size=16",
              "--set", "train_size=128", "--set", "val_size=0", "--set", "test_size=64",
              "--set", "depth=8", "--set", "robustness=false", "--set", "device=cpu",
              "--set", "threads=1"]


def readme_section(heading):
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {heading}\n")
    return text[start:text.find("\n## ", start + 1)]


def run(args, cwd, env=None, timeout=300):
    environ = {k: v for k, v in os.environ.items() if k not in ("KORTH_BENCH_PLUGINS",)}
    environ.update(env or {})
    return subprocess.run(args, cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=timeout)


def trial_rows(out):
    return pq.read_table(str(out)).to_pylist() if Path(out).exists() else []


@pytest.fixture
def readme_plugin(tmp_path):
    """The README's regularizer, written where its commands say: ``my_regularizers.py``."""
    code = re.search(r"```python\n(.*?)```", readme_section("Your own regularizer"), re.S).group(1)
    (tmp_path / "my_regularizers.py").write_text(code)
    return tmp_path


def test_the_readme_plugin_file_is_listed_trained_and_benchmarked(readme_plugin):
    listed = run([KORTH, "list", "--plugin", "my_regularizers.py"], readme_plugin)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^  so_unsquared +coefficient \(required\)$", listed.stdout, re.M)
    refused = run([KORTH, "list"], readme_plugin)  # without the flag it is not there
    assert refused.returncode == 0 and "so_unsquared" not in refused.stdout

    trained = run([KORTH, "train", "--plugin", "my_regularizers.py", "--set",
                   "regularizer=so_unsquared", "--set", "coefficient=0.01", *TINY_TRAIN,
                   "--out", "out"], readme_plugin)
    assert trained.returncode == 0, trained.stderr
    rows = [row for path in (readme_plugin / "out").glob("*/trials/*.parquet")
            for row in trial_rows(path)]
    assert [(r["regularizer"], r["status"]) for r in rows] == [("so_unsquared", "completed")]

    # as the README runs it from the directory holding the file, without PYTHONPATH
    bench = run([sys.executable, str(ROOT / "benchmarks" / "bench_penalties.py"), "--custom",
                 "my_regularizers", "--short", "--models", "resnet20", "--regularizers",
                 "so_unsquared", "--precisions", "fp32", "--threads", "1"], readme_plugin)
    assert bench.returncode == 0, bench.stderr
    assert re.search(r"^\| resnet20 \| fp32 \|.*\| so_unsquared \|", bench.stdout, re.M)


def test_a_plugin_module_by_name_and_a_missing_plugin(tmp_path):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "reg_module.py").write_text(textwrap.dedent("""
        from korth_bench import regularizers
        from korth_bench.regularizers import Regularizer

        @regularizers.register("module_l2")
        class L2(Regularizer):
            def formula(self, weight, stride):
                return weight.square().sum()
    """))
    listed = run([KORTH, "list", "--plugin", "reg_module"], tmp_path,
                 env={"PYTHONPATH": str(tmp_path / "mods")})
    assert listed.returncode == 0, listed.stderr
    assert "  module_l2 " in listed.stdout
    missing = run([KORTH, "list", "--plugin", "no_such_plugin"], tmp_path)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.splitlines() == [
        "korth-bench: error: --plugin no_such_plugin: no such module or .py file; allowed: an "
        "importable module name or the path of a .py file"]


def pyproject(name, module):
    """A one-module setuptools project's pyproject.toml, entry points to be appended."""
    return textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "0.1"
        [tool.setuptools]
        py-modules = ["{module}"]

    """)


PACKAGE = {
    "pyproject.toml": pyproject("korth-bench-ep-demo", "korth_ep_demo") + textwrap.dedent("""
        [project.entry-points."korth_bench.regularizers"]
        ep_unsquared = "korth_ep_demo:Unsquared"
        ep_module = "korth_ep_demo"
    """),
    "korth_ep_demo.py": """
        import torch
        from korth_bench import regularizers
        from korth_bench.regularizers import Regularizer

        class Unsquared(Regularizer):
            def formula(self, weight, stride):
                k = weight.reshape(weight.shape[0], -1)
                eye = torch.eye(len(k), dtype=k.dtype, device=k.device)
                return torch.linalg.matrix_norm(k @ k.T - eye)

        @regularizers.register("ep_registered")
        class Registered(Unsquared):
            pass
    """,
}


def readme_package(directory):
    """A distribution of the README's ``my_regularizers.py`` declaring the README's entry point."""
    section = readme_section("Your own regularizer")
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    entry_points = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    directory.mkdir()
    (directory / "my_regularizers.py").write_text(code)
    (directory / "pyproject.toml").write_text(pyproject("my-regularizers", "my_regularizers")
                                              + entry_points)


def test_an_installed_entry_point_is_found_by_list_train_and_the_benchmark(tmp_path):
    readme_package(tmp_path / "readme_src")
    env = install_demo_package(tmp_path, tmp_path / "readme_src")

    listed = run([KORTH, "list"], tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    # the README's module; a class by its entry point's name; a module's own registration
    for name in ("so_unsquared", "ep_unsquared", "ep_registered"):
        assert re.search(rf"^  {name} +coefficient \(required\)$", listed.stdout, re.M), name

    args = [KORTH, "train", "--set", "regularizer=ep_unsquared", "--set", "coefficient=0.01",
            *TINY_TRAIN, "--out", "out"]
    trained = run(args, tmp_path, env=env)
    assert trained.returncode == 0, trained.stderr
    again = run(args + ["--overwrite"], tmp_path, env=env)  # replaces the first, one row
    assert again.returncode == 0, again.stderr
    rows = [row for path in (tmp_path / "out").glob("*/trials/*.parquet") for row in trial_rows(path)]
    assert [(r["regularizer"], r["status"]) for r in rows] == [("ep_unsquared", "completed")]

    bench = run([sys.executable, str(ROOT / "benchmarks" / "bench_penalties.py"), "--short",
                 "--models", "resnet20", "--regularizers", "ep_registered", "--precisions", "fp32",
                 "--threads", "1"], tmp_path, env=env)
    assert bench.returncode == 0, bench.stderr
    assert "| ep_registered |" in bench.stdout


def plugin_space(directory, name, regularizers=("so_unsquared",), seeds=(0, 1)):
    space = {"name": name, **{k: dict(v) for k, v in TINY.items()}, "grid": {"seed": list(seeds)},
             "regularizers": {r: {"coefficient": [0.01]} for r in regularizers},
             "resources": {"cpu": 1}, "search": {"type": "grid", "metric": "val_acc",
                                                  "mode": "max", "concurrency": 2},
             "scheduler": "fifo", "checkpoint": {"every": 1, "keep": 1}}
    space["training"]["epochs"] = 1
    space["robustness"] = {"enabled": False}
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def sweep_rows(storage, name):
    return sorted((r["regularizer"], r["seed"], r["status"])
                  for p in (Path(storage) / name / "trials").glob("*.parquet")
                  for r in trial_rows(p))


def install_demo_package(directory, *more):
    """PACKAGE (and the source trees ``more``) installed with pip --target under ``directory``;
    returns the environment that puts them on the path (pip's --target: nothing imports them but
    their entry points)."""
    source = directory / "src"
    source.mkdir(parents=True)
    for name, text in PACKAGE.items():
        (source / name).write_text(textwrap.dedent(text))
    installed = run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation",
                     "--no-deps", "--no-index", "--target", str(directory / "site"), str(source),
                     *map(str, more)],
                    directory)
    assert installed.returncode == 0, installed.stderr
    return {"PYTHONPATH": str(directory / "site")}


@pytest.mark.ray
def test_a_sweep_imports_a_plugin_file_and_an_entry_point_in_its_ray_workers(readme_plugin):
    """The driver imports the file and names it in $KORTH_BENCH_PLUGINS; the local Ray's workers
    inherit it and import the file before building a trial (it is on no import path); the
    installed entry point is found by the workers' own registry look-up."""
    env = install_demo_package(readme_plugin / "package")
    path = plugin_space(readme_plugin, "plugin_smoke", ("so_unsquared", "ep_unsquared"), (0,))
    swept = run([KORTH, "run", str(path), "--plugin", "my_regularizers.py", "--storage", "results",
                 "--quiet"], readme_plugin, env=env, timeout=600)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert sweep_rows(readme_plugin / "results", "plugin_smoke") == [
        ("ep_unsquared", 0, "completed"), ("so_unsquared", 0, "completed")]

    # every trial is final, so there is nothing to run: a bad --address is still refused first
    address = run([KORTH, "run", str(path), "--plugin", "my_regularizers.py", "--storage",
                   "results", "--address", "127.0.0.1:1"], readme_plugin, env=env)
    assert address.returncode == 2 and address.stdout == ""
    assert address.stderr.splitlines() == [
        "korth-bench: error: --address 127.0.0.1:1: no Ray cluster answers at 127.0.0.1:1 "
        "(Connection refused); start one with `ray start --head` or leave --address out to run "
        "on a local Ray"]
    nothing = run([KORTH, "run", str(path), "--plugin", "my_regularizers.py", "--storage",
                   "results"], readme_plugin, env=env)
    assert nothing.returncode == 0 and "nothing to run" in nothing.stdout


@pytest.mark.ray
@pytest.mark.reliability  # a real head node: about a minute (make test-reliability)
def test_a_cluster_sweep_ships_a_plugin_file_to_its_workers(readme_plugin):
    """A head node started apart (`ray start --head`: its workers inherit nothing of the
    driver's environment) runs the trials of a sweep joined with --address: the plugin file
    reaches them as Ray py_modules and $KORTH_BENCH_PLUGINS names its module."""
    import shutil
    import tempfile

    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="kbplug")  # short: Ray's Unix sockets live there
    head = subprocess.Popen([str(BIN / "ray"), "start", "--block", "--head", f"--port={port}",
                             "--num-cpus=2", "--node-ip-address=127.0.0.1",
                             "--include-dashboard=false", f"--temp-dir={temp_dir}"],
                            cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT,
                            env={k: v for k, v in os.environ.items() if k != "KORTH_BENCH_PLUGINS"})
    try:
        wait_for_port(port, head)
        path = plugin_space(readme_plugin, "plugin_cluster")
        swept = run([KORTH, "run", str(path), "--plugin", "my_regularizers.py", "--address",
                     f"127.0.0.1:{port}", "--storage", str(readme_plugin / "results"), "--quiet"],
                    readme_plugin, timeout=600)
        assert swept.returncode == 0, swept.stdout + swept.stderr
        assert sweep_rows(readme_plugin / "results", "plugin_cluster") == [
            ("so_unsquared", 0, "completed"), ("so_unsquared", 1, "completed")]
    finally:
        head.terminate()
        head.wait(timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)
