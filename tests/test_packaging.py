"""Packaging without this repository's surroundings: a non-editable install, run from another
directory, finds its shipped search spaces by name and its report schema."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_non_editable_install_lists_and_dry_runs_the_shipped_spaces(tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(ROOT)], check=True, capture_output=True, text=True)
    assert (site / "korth_bench" / "search_spaces" / "smoke.yaml").exists()
    assert (site / "korth_bench" / "report" / "leaderboard.schema.json").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = [sys.executable, "-c", "import sys, korth_bench.cli as c; sys.exit(c.main(sys.argv[1:]))"]

    def korth_bench(*args):
        done = subprocess.run([*command, *args], cwd=elsewhere, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = subprocess.run([sys.executable, "-c", "import korth_bench; print(korth_bench.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where  # the installed copy, not the checkout
    listing = korth_bench("list")
    assert "smoke" in listing and "resnet_capacity_cifar10" in listing
    dry = korth_bench("run", "smoke", "--dry-run")
    assert "(16 trials x 1 cpu" in dry, dry
    assert not any(elsewhere.iterdir())  # a dry run writes nothing
