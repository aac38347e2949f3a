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
