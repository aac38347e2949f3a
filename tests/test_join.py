"""Joining a committed study (korth_bench.join): only the missing arms run, on the study's
recorded protocol, cells and seeds, after a first-epoch arithmetic check; the study's files
never change; the joined report shows the new rows beside the study's unchanged verdicts.

The study is written by real trials of the current code (no Ray), so its first epochs repeat
exactly; a copy whose recorded epoch 0 and code fingerprint are altered stands for a study
computed by other code.
"""
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from korth_bench import cli, protocol, results
from korth_bench.trial.loop import train_and_measure

ROOT = Path(__file__).resolve().parent.parent
STUDY_KEYS = {"dataset": "synthetic", "image_size": 16, "train_size": 192, "val_size": 64,
              "test_size": 128, "model": "resnet", "depth": 8, "epochs": 2, "batch_size": 64,
              "lr": 0.05, "device": "cpu", "threads": 1, "robustness": False}
CELLS = ({"width": 1}, {"width": 2})
SEEDS = (0, 1, 2)
ARMS = (("none", 0.0), ("so", 1e-3))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """tiny_study: baseline and so at ResNet-8x1 and -8x2, seeds 0-2, two epochs."""
    root = tmp_path_factory.mktemp("committed") / "tiny_study"
    for cell in CELLS:
        for seed in SEEDS:
            for regularizer, coefficient in ARMS:
                record = train_and_measure({**STUDY_KEYS, **cell, "seed": seed,
                                            "regularizer": regularizer, "coefficient": coefficient})
                results.write_trial(str(root), record, sweep="tiny_study")
    return root


def file_hashes(directory):
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def join_space(tmp_path, name="tiny_join", **sections):
    body = {"name": name, "regularizers": {"dn": {"coefficient": 1e-3}, "so": {"coefficient": 1e-3}},
            "search": {"type": "grid", "concurrency": 2}, **sections}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def replace_column(path, name, change):
    """Rewrite one column of a Parquet file in place, keeping its schema and metadata."""
    table = pq.read_table(path)
    index = table.schema.get_field_index(name)
    values = change(table.column(name).to_pylist())
    pq.write_table(table.set_column(index, table.schema.field(index),
                                    pa.array(values, table.schema.field(index).type)), path)


def cli_lines(capsys, *args):
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


@pytest.mark.parametrize("sections, expected", [
    ({"training": {"epochs": 3}},
     "epochs: the space sets 3, the study tiny_study ran 2; a join takes the data, training and "
     "evaluation keys from the study's rows (leave epochs out of the space)"),
    ({"data": {"train_size": 128}},
     "train_size: the space sets 128, the study tiny_study ran 192;"),
    ({"grid": {"depth": [14]}},
     "depth=14: the study tiny_study has depth 8; a join runs the study's cells and seeds"),
    ({"grid": {"seed": [0, 7]}},
     "seed=7: the study tiny_study has seed 0, 1, 2; a join runs the study's cells and seeds"),
])
def test_a_join_that_leaves_the_studys_protocol_is_one_line_and_writes_nothing(
        study, tmp_path, capsys, sections, expected):
    code, lines, _ = cli_lines(capsys, "run", join_space(tmp_path, **sections), "--join", study,
                               "--storage", tmp_path / "out", "--quiet")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("korth-bench: error: ") and expected in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def test_a_join_with_the_same_arithmetic_runs_only_the_missing_arm_and_reports_it_apart(
        study, tmp_path, capsys, ray_session):
    before = file_hashes(study)
    code, lines, out = cli_lines(capsys, "run", join_space(tmp_path), "--join", study,
                                 "--storage", tmp_path / "out", "--quiet")
    assert code == 0, lines
    joined_dir = tmp_path / "out" / "tiny_join"
    manifest = json.loads((joined_dir / "join.json").read_text())
    assert manifest["mode"] == "same arithmetic" and manifest["arms"] == ["dn"]
    assert manifest["code_fingerprint"] == protocol.code_fingerprint()
    assert len(manifest["first_epoch"]) == len(CELLS)
    for check in manifest["first_epoch"]:  # the committed and re-run first epochs, bit for bit
        assert check["same"] and all(v["committed"] == v["rerun"] for v in check["values"].values())
    assert "2 trial(s) the study already has" not in out and "6 trial(s) the study already has" in out
    trials = results.read_frame(str(joined_dir), "trials")
    assert sorted(trials["regularizer"]) == ["dn"] * 6 and (trials["status"] == "completed").all()
    committed = results.read_frame(str(study), "trials")
    # the join's rows carry the study's protocol: same data splits per seed, this code
    splits = committed.groupby("seed")["split_sha256"].first()
    assert (trials["split_sha256"] == trials["seed"].map(splits)).all()
    assert (trials["code_fingerprint"] == protocol.code_fingerprint()).all()
    assert file_hashes(study) == before  # no committed file of the study changed
    code, _, out = cli_lines(capsys, "status", join_space(tmp_path), "--storage", tmp_path / "out")
    assert code == 0 and "trials: 6 planned: 6 completed" in out  # the join's trials, not the space's

    study_only, with_join = tmp_path / "alone", tmp_path / "joined"
    assert cli.main(["report", str(study), "--out", str(study_only)]) == 0
    assert cli.main(["report", str(study), str(joined_dir), "--out", str(with_join)]) == 0
    alone = json.loads((study_only / "leaderboard.json").read_text())
    both = json.loads((with_join / "leaderboard.json").read_text())
    assert both["verdicts"] == alone["verdicts"] and both["collapse"] == alone["collapse"]
    assert [e["regularizer"] for e in both["entries"]] == [e["regularizer"] for e in alone["entries"]]
    (found,) = both["joined"]
    gains = {(e["width"]): e for e in found["entries"]}
    for width in (1, 2):  # each cell's gain: dn minus the committed baseline, paired by seed
        dn = trials[trials["width"] == width].set_index("seed")["test_acc"]
        base = committed[(committed["width"] == width) & (committed["regularizer"] == "none")]
        expected = (dn - base.set_index("seed")["test_acc"]).mean()
        assert gains[width]["gain"] == pytest.approx(expected, abs=1e-12)
        assert gains[width]["pairing"] == "paired" and gains[width]["n_seeds"] == 3
    assert len(found["slopes"]) == 1 and found["slopes"][0]["n_cells"] == 2 and not found["drift"]
    markdown = (with_join / "leaderboard.md").read_text()
    first_screen = markdown.split("## Figures")[0]
    assert "**Joined after the fact: dn at 1 cell(s) of tiny_study" in first_screen
    assert "same arithmetic" in first_screen and "| dn (joined) |" in markdown


def test_another_arithmetic_is_refused_unless_the_baseline_is_rerun(study, tmp_path, capsys,
                                                                     ray_session):
    other = tmp_path / "other_study"
    shutil.copytree(study, other)
    for path in (other / "trials").glob("*.parquet"):  # rows as another version of the code wrote them
        replace_column(path, "code_fingerprint", lambda values: ["0" * 64] * len(values))
        replace_column(other / "epochs" / path.name, "train_loss",
                       lambda values: [values[0] + 1e-3, *values[1:]])
    space = join_space(tmp_path, regularizers={"dn": {"coefficient": 1e-3}})
    code, lines, _ = cli_lines(capsys, "run", space, "--join", other, "--storage",
                               tmp_path / "out", "--quiet")
    assert code == 2 and len(lines) == 1, lines
    assert "not the same arithmetic: the first epoch of trial" in lines[0]
    assert "gives train_loss" in lines[0]
    assert f"code fingerprint 000000000000 (study) vs {protocol.code_fingerprint()[:12]} (here)" in lines[0]
    assert "torch" not in lines[0].split("(here)")[-1] and lines[0].endswith("--rebaseline N")
    assert not (tmp_path / "out").exists()

    code, lines, _ = cli_lines(capsys, "run", space, "--join", other, "--rebaseline", 2,
                               "--storage", tmp_path / "out", "--quiet")
    assert code == 0, lines
    joined_dir = tmp_path / "out" / "tiny_join"
    manifest = json.loads((joined_dir / "join.json").read_text())
    assert manifest["mode"] == "re-baselined (2 seeds)"
    assert not any(check["same"] for check in manifest["first_epoch"])
    trials = results.read_frame(str(joined_dir), "trials")
    assert sorted(trials["regularizer"]) == ["dn"] * 6 + ["none"] * 4
    assert cli.main(["report", str(other), str(joined_dir), "--out", str(tmp_path / "r")]) == 0
    (found,) = json.loads((tmp_path / "r" / "leaderboard.json").read_text())["joined"]
    assert {e["baseline"] for e in found["entries"]} == {"re-run (2 seeds)"}
    assert len(found["drift"]) == 2  # re-run minus committed baseline, per cell, described
    for row in found["drift"]:
        assert row["n_rerun"] == 2 and row["n_committed"] == 3
        assert np.isfinite(row["mean"])


def test_settings_tell_data_apart_by_its_hash_not_its_path():
    """Two copies of one data file under different names are one setting; two different files
    under one name are two (rows without data_sha256 fall back to the file name)."""
    from korth_bench.analysis.entries import setting_labels

    rows = pd.DataFrame({"dataset": "packed", "model": "resnet", "depth": 8, "width": 1,
                         "regularizer": "none", "seed": [0, 1, 2, 3],
                         "data_path": ["/a/cifar.parquet", "/b/copy.parquet", "/c/cifar.parquet",
                                       "/d/cifar.parquet"],
                         "data_sha256": ["aa", "aa", "bb", None]})
    labels = setting_labels(rows, ["data_path"])
    assert labels[0] == labels[1] == "data_path=aa"
    assert labels[2] == "data_path=bb" and labels[3] == "data_path=cifar.parquet"


def test_a_study_protocol_recomputed_after_the_fact_is_what_its_trials_recorded(study, tmp_path):
    """korth-bench protocol draws each trial's splits again from the data and its recorded keys:
    for rows that recorded their own split_sha256 the two agree, trial by trial."""
    document = protocol.study_protocol(str(study), data_path=None)
    rows = results.read_frame(str(study), "trials").set_index("trial_id")
    assert set(document["trials"]) == set(rows.index)
    for trial_id, recorded in document["trials"].items():
        assert recorded["split_sha256"] == rows.loc[trial_id, "split_sha256"]


def test_split_hash_moves_with_any_image_and_names_its_split():
    import torch

    base = {"train": torch.arange(0, 10), "val": torch.arange(10, 12), "test": torch.arange(5),
            "fixed": torch.arange(3)}
    same = {k: v.clone() for k, v in base.items()}
    moved = {**base, "train": torch.arange(0, 11), "val": torch.arange(11, 12)}
    assert protocol.split_sha256(base) == protocol.split_sha256(same)
    assert protocol.split_sha256(moved) != protocol.split_sha256(base)
    assert protocol.split_sha256({**base, "test": torch.arange(1, 6)}) != protocol.split_sha256(base)


def test_the_data_hash_is_the_files_sha256(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"korth" * 1000)
    assert protocol.data_sha256(str(path)) == hashlib.sha256(b"korth" * 1000).hexdigest()
    assert protocol.data_sha256(None) is None and protocol.data_sha256("s3://b/k") is None


COMMITTED = sorted(p.parent for p in (ROOT / "results").glob("*/protocol.json"))


@pytest.mark.parametrize("directory", COMMITTED, ids=lambda p: p.name)
def test_a_committed_protocol_file_covers_every_trial_with_its_commits_code(directory):
    """Each committed study's protocol.json names every trial, and its code fingerprints are
    the training code at the rows' git commits, recomputed from the repository's history."""
    document = json.loads((directory / "protocol.json").read_text())
    rows = results.read_frame(str(directory), "trials")
    assert set(document["trials"]) == set(rows["trial_id"])
    for commit, part in rows.groupby("git_commit"):
        known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
                               capture_output=True).returncode == 0
        if not known:  # a shallow clone, or an export without history
            pytest.skip(f"commit {commit[:12]} is not in this checkout's history")
        expected = protocol.code_fingerprint_at(commit, str(ROOT))
        assert {document["trials"][t]["code_fingerprint"] for t in part["trial_id"]} == {expected}
