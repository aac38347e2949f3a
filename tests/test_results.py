"""The Parquet tables: one atomic file per table per trial, stable columns, merged readers."""
import os

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings, strategies as st

from korth_bench import results
from korth_bench.config import TrialConfig


def trial_tables(seed=0, status="completed", epochs=2, **config):
    """The four tables of a made-up trial, shaped like ``TrialRecord.tables()``."""
    cfg = TrialConfig.from_dict({"seed": seed, "robustness_pgd_eps": [2, 8], **config})
    tid = cfg.trial_id
    summary = {**cfg.to_dict(), "trial_id": tid, "status": status, "error": None,
               "test_acc": 0.5 + seed / 100, "val_acc": 0.4, "num_params": 1234,
               "epochs_to_acc_50": None, "pgd_acc_8_255": 0.1, "fgsm_acc_2_255": 0.3,
               "git_dirty": False, "config_hash": cfg.config_hash}
    epoch_rows = [{"trial_id": tid, "epoch": e, "train_loss": 1.0 / (e + 1), "reg_loss": 0.0,
                   "train_acc": 0.3, "val_loss": None, "val_acc": None, "test_loss": 1.0,
                   "test_acc": 0.5, "lr": 0.1, "coefficient": 0.0, "epoch_time_s": 1.0,
                   "elapsed_s": e + 1.0, "images_per_s": 100.0} for e in range(epochs)]
    layers = [{"trial_id": tid, "epoch": epochs - 1, "layer": "conv1", "kind": "conv",
               "shape": [16, 3, 3, 3], "out_channels": 16, "fan_in": 27, "overdetermined": False,
               "gram_residual_fro": 1.5, "fm_sim": 0.2, "dead_channels": 0},
              {"trial_id": tid, "epoch": epochs - 1, "layer": "relu1", "kind": "activation",
               "shape": None, "fm_sim": 0.1, "dead_channels": 2}]
    robustness = [{"trial_id": tid, "kind": "clean", "name": "clean", "severity": 0, "eps": None,
                   "accuracy": 0.5, "num_examples": 100},
                  {"trial_id": tid, "kind": "attack", "name": "pgd", "severity": 8, "eps": 8 / 255,
                   "accuracy": 0.1, "num_examples": 100}]
    return cfg, {"trials": [summary], "epochs": epoch_rows, "layers": layers, "robustness": robustness}


def test_each_table_gets_one_file_per_trial_with_version_and_lists(tmp_path):
    cfg, tables = trial_tables(lr_schedule="multistep", epochs=4)
    assert results.write_trial(str(tmp_path), tables, sweep="demo") == cfg.trial_id
    for table in results.TABLES:
        path = tmp_path / table / f"{cfg.trial_id}.parquet"
        data = pq.read_table(path)
        assert data.schema.metadata[results.METADATA_KEY] == results.SCHEMA_VERSION.encode()
        assert list(data.column_names[: len(results.columns(table, cfg.to_dict()))]) == \
            list(results.columns(table, cfg.to_dict()))
    trials = pq.read_table(tmp_path / "trials" / f"{cfg.trial_id}.parquet")
    assert trials.schema.field("lr_milestones").type == pa.list_(pa.int64())
    assert trials.column("lr_milestones").to_pylist() == [list(cfg.lr_milestones)] == [[5, 8]]
    assert trials.column("sweep").to_pylist() == ["demo"]
    assert trials.schema.field("epochs_to_acc_50").type == pa.int64()
    layers = pq.read_table(tmp_path / "layers" / f"{cfg.trial_id}.parquet")
    assert layers.column("shape").to_pylist() == [[16, 3, 3, 3], None]
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temp files left


class ReplacingStore:
    """A file system whose first ``partial_reads`` GETs return a cut-off body, as an S3-compatible
    store can while another process replaces the object."""

    def __init__(self, body: bytes, partial_reads: int):
        self.body, self.partial_reads, self.reads = body, partial_reads, 0

    def open_input_stream(self, path):
        self.reads += 1
        return pa.BufferReader(self.body[:100] if self.reads <= self.partial_reads else self.body)


def test_a_partial_body_is_read_again_and_a_lasting_one_names_the_file(tmp_path, monkeypatch):
    cfg, tables = trial_tables(epochs=3)
    results.write_trial(str(tmp_path), tables, sweep="demo")
    body = (tmp_path / "epochs" / f"{cfg.trial_id}.parquet").read_bytes()
    monkeypatch.setattr(results.time, "sleep", lambda seconds: None)
    store = ReplacingStore(body, partial_reads=2)
    assert results._read_file(store, "epochs/x.parquet").num_rows == 3 and store.reads == 3
    store = ReplacingStore(body, partial_reads=results.READ_ATTEMPTS)
    with pytest.raises(ValueError, match=r"epochs/x.parquet: not a complete Parquet file"):
        results._read_file(store, "epochs/x.parquet")
    assert store.reads == results.READ_ATTEMPTS


def test_rewriting_a_trial_replaces_its_rows(tmp_path):
    cfg, tables = trial_tables(epochs=3)
    results.write_trial(str(tmp_path), tables, sweep="demo")
    _, retried = trial_tables(epochs=2)  # a retry that wrote fewer epochs replaces the file
    results.write_trial(str(tmp_path), retried, sweep="demo")
    epochs = results.read_table(str(tmp_path), "epochs")
    assert sorted(epochs.column("epoch").to_pylist()) == [0, 1]
    assert len(list((tmp_path / "epochs").iterdir())) == 1


def test_duckdb_and_pyarrow_read_a_table_directory_as_one_dataset(tmp_path):
    ids = []
    for seed in range(3):
        status = "stopped" if seed == 2 else "completed"
        cfg, tables = trial_tables(seed=seed, status=status)
        if status == "stopped":  # what the sweep's recorder writes: few columns, empty tables
            tables = {"trials": [{**cfg.to_dict(), "trial_id": cfg.trial_id, "status": "stopped"}],
                      "layers": [], "robustness": []}
        results.write_trial(str(tmp_path), tables, sweep="demo")
        ids.append(cfg.trial_id)
    schemas = {pq.read_schema(p) for p in (tmp_path / "trials").iterdir()}
    assert len(schemas) == 1  # identical columns in every file: globs read every column
    rows = duckdb.sql(f"SELECT trial_id, status, pgd_acc_8_255 FROM '{tmp_path}/trials/*.parquet' "
                      "ORDER BY trial_id").fetchall()
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert {r[1] for r in rows} == {"completed", "stopped"}
    dataset = ds.dataset(tmp_path / "layers", format="parquet").to_table()
    assert dataset.num_rows == 4 and set(dataset.column("trial_id").to_pylist()) == set(ids[:2])
    frame = results.read_frame(str(tmp_path), "epochs")
    assert set(map(tuple, frame[["trial_id", "epoch"]].values.tolist())) == \
        {(i, e) for i in ids[:2] for e in range(2)}


def test_reader_merges_directories_newest_file_wins(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    cfg, tables = trial_tables(seed=0)
    results.write_trial(str(first), tables, sweep="a")
    other, other_tables = trial_tables(seed=1)
    results.write_trial(str(first), other_tables, sweep="a")
    newer = {**tables, "trials": [{**tables["trials"][0], "test_acc": 0.99}]}
    results.write_trial(str(second), newer, sweep="b")
    os.utime(second / "trials" / f"{cfg.trial_id}.parquet", ns=(2**62, 2**62))
    merged = results.read_table([str(first), str(second)], "trials")
    by_id = {r["trial_id"]: r for r in merged.to_pylist()}
    assert set(by_id) == {cfg.trial_id, other.trial_id}
    assert by_id[cfg.trial_id]["test_acc"] == 0.99 and by_id[cfg.trial_id]["sweep"] == "b"
    assert results.read_table(str(tmp_path / "missing"), "robustness").num_rows == 0


def test_bad_input_names_what_is_wrong(tmp_path):
    cfg, tables = trial_tables()
    with pytest.raises(ValueError, match="unknown table 'trial'"):
        results.read_table(str(tmp_path), "trial")
    with pytest.raises(ValueError, match="trials.status='finished'"):
        results.write_trial(str(tmp_path), {"trials": [{**tables["trials"][0], "status": "finished"}]})
    with pytest.raises(ValueError, match="one trial_id"):
        results.write_trial(str(tmp_path), {"epochs": tables["epochs"] + [{"trial_id": "x", "epoch": 0}]})
    with pytest.raises(ValueError, match="epochs.epoch: cannot store"):
        results.write_rows(str(tmp_path), "epochs", cfg.trial_id, [{"epoch": "first"}])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.fixed_dictionaries({}, optional={
    "train_loss": st.floats(allow_nan=False) | st.none(),
    "test_acc": st.floats(0, 1) | st.none(),
    "images_per_s": st.integers(0, 10**6) | st.floats(0, 1e6),
}), min_size=0, max_size=4))
def test_epoch_files_keep_the_canonical_schema_whatever_is_missing(tmp_path_factory, partial):
    rows = [{"epoch": i, **row} for i, row in enumerate(partial)]
    directory = tmp_path_factory.mktemp("epochs")
    results.write_rows(str(directory), "epochs", "abc", rows)
    data = results.read_table(str(directory), "epochs") if rows else \
        pq.read_table(directory / "epochs" / "abc.parquet")
    assert data.schema.remove_metadata() == pa.schema(list(results.columns("epochs").items()))
    assert data.num_rows == len(rows)


def test_tables_on_s3_compatible_storage(s3_server):
    uri = "s3://korth/sweeps/demo"
    cfg, tables = trial_tables(seed=3)
    filesystem, path = results.resolve(uri, s3_server)
    assert path == "korth/sweeps/demo"
    results.write_trial(uri, tables, sweep="demo", filesystem=filesystem)
    results.write_trial(uri, tables, sweep="demo", filesystem=filesystem)  # replaced, not doubled
    trials = results.read_table(uri, "trials", filesystem)
    assert trials.column("trial_id").to_pylist() == [cfg.trial_id]
    assert results.read_table(uri, "epochs", filesystem).num_rows == 2
    assert results.trial_statuses(uri, filesystem) == {cfg.trial_id: "completed"}
    os.environ["AWS_ENDPOINT_URL"] = s3_server  # the endpoint may also come from the environment
    try:
        assert results.read_table(uri, "robustness").num_rows == 2
    finally:
        del os.environ["AWS_ENDPOINT_URL"]


def test_status_of_a_sweep_on_s3_counts_trials_and_estimates_time_left(s3_server, tmp_path, capsys):
    from conftest import make_space
    from korth_bench import cli, spaces

    path = make_space(tmp_path, "watched", grid={"seed": [0, 1, 2, 3]})
    done, running, failed, _ = spaces.load(path).trials
    storage = "s3://korth/status"
    uri = results.sweep_location(storage, "watched")
    filesystem = results.resolve(uri, s3_server)[0]

    def epochs(cfg, count):
        return [{"trial_id": cfg.trial_id, "epoch": e, "test_acc": 0.25 + 0.1 * e,
                 "elapsed_s": 8.0 * (e + 1)} for e in range(count)]

    def row(cfg, status, **values):
        return {**cfg.to_dict(), "trial_id": cfg.trial_id, "status": status, **values}

    results.write_trial(uri, {"trials": [row(done, "completed", wall_time_s=20.0, epochs_completed=2,
                                             finished_at="2026-01-01T00:00:00")],
                              "epochs": epochs(done, 2)}, sweep="watched", filesystem=filesystem)
    results.write_rows(uri, "epochs", running.trial_id, epochs(running, 1), filesystem)
    results.write_trial(uri, {"trials": [row(failed, "error", error="Traceback ...\nRuntimeError: boom",
                                             finished_at="2026-01-01T01:00:00")]},
                        sweep="watched", filesystem=filesystem)
    capsys.readouterr()
    assert cli.main(["status", path, "--storage", storage, "--storage-endpoint", s3_server]) == 0
    text = capsys.readouterr().out
    assert f"sweep {uri}" in text
    assert "trials: 4 planned: 1 completed, 1 error, 1 in progress, 1 not started" in text
    assert f"{running.trial_id}  epoch 1/2  test_acc 0.2500" in text
    assert f"{failed.trial_id}  2026-01-01T01:00:00  RuntimeError: boom" in text
    # 10 s per epoch (20 s over 2 epochs); 2 epochs not started + 1 in progress, 1 trial at once
    assert "seconds per epoch: 10.0" in text and "time left: about 30 s (3 epochs" in text
    capsys.readouterr()  # the sweep URI alone: counts, no plan
    assert cli.main(["status", uri, "--storage-endpoint", s3_server]) == 0
    text = capsys.readouterr().out
    assert "trials: 1 completed, 1 error, 1 in progress" in text and "time left" not in text


def test_status_names_the_cells_its_time_left_has_not_measured(tmp_path, capsys):
    """An epoch of a deeper or wider cell costs more than the finished cells' epochs: the estimate
    names the cells with trials left and no finished trial, and drops a cell once one finishes."""
    from conftest import make_space
    from korth_bench import cli, spaces

    path = make_space(tmp_path, "cells", training={"depth": None},
                      grid={"depth": [8, 14], "width": [1, 2]})
    trials = {(cfg.depth, cfg.width): cfg for cfg in spaces.load(path).trials}
    storage = str(tmp_path / "results")
    uri = results.sweep_location(storage, "cells")

    def finish(cfg):
        results.write_trial(uri, {"trials": [{**cfg.to_dict(), "trial_id": cfg.trial_id,
                                              "status": "completed", "wall_time_s": 20.0,
                                              "epochs_completed": 2}]}, sweep="cells")
        capsys.readouterr()
        assert cli.main(["status", path, "--storage", storage]) == 0
        return capsys.readouterr().out

    text = finish(trials[8, 1])
    assert "time left: about 60 s (6 epochs to run, 1 trial(s) at once)" in text
    assert ("3 cell(s) with trials left have no finished trial yet (resnet-8x2, resnet-14x1, "
            "resnet-14x2)") in text
    text = finish(trials[14, 2])
    assert "2 cell(s) with trials left have no finished trial yet (resnet-8x2, resnet-14x1)" in text


def test_a_folder_of_train_outputs_is_read_as_one_result_set(tmp_path):
    """`korth-bench train` writes results/train/<trial name>/{trials,...}: the folder reads as one."""
    train = tmp_path / "train"
    written = []
    for seed in (0, 1):
        cfg, tables = trial_tables(seed=seed)
        results.write_trial(str(train / cfg.name), tables, sweep=cfg.name)
        written.append(cfg.trial_id)
    (train / "report").mkdir()  # what `korth-bench report results/train` leaves beside them
    assert results.result_roots(results.resolve(str(train))[0], str(train)) == sorted(
        str(path) for path in train.iterdir() if path.name != "report")
    for table in ("trials", "epochs", "layers", "robustness"):
        assert set(results.read_table(str(train), table).column("trial_id").to_pylist()) == set(written)
    one = train / next(p.name for p in train.iterdir() if p.name != "report")
    assert results.result_roots(results.resolve(str(one))[0], str(one)) == [str(one)]
