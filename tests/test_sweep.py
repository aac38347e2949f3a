"""Sweeps on a real local Ray: tables with exact keys, re-runs, Optuna + ASHA, fractional and
data-parallel trials, S3 storage, and the errors that must come before anything runs."""
import pickle
import sys
import time
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import torch

from korth_bench import results, sweep
from korth_bench.spaces import space as spaces
from korth_bench.sweep import cluster as sweep_cluster
from korth_bench.sweep.checkpoints import CHECKPOINTS_DIR, TrialCheckpoints
from korth_bench.sweep.context import sweep_context
from korth_bench.sweep.tuner import TUNE_DIR
from conftest import alive_nodes, free_port, make_space, wait_for, wait_for_port

pytestmark = pytest.mark.ray
EPOCHS = 2
GRID = {"grid": {"seed": [0], "coefficient": [1e-3]},
        "regularizers": {"none": {}, "so": {}, "dn_relaxed": {"relaxation": 0.3}, "cs": {"coefficient": [1e-4]}},
        "data": {"val_size": 64},
        # a quarter of the (logical) GPU and half a CPU each: four trials at once
        "resources": {"cpu": 0.5, "gpu": 0.25},
        "search": {"type": "grid", "metric": "val_acc", "concurrency": 4},
        "checkpoint": {"every": 1, "keep": 2}}  # two kept: "the newest" is not "any kept one"


def rows_of(sweep_dir, table, trial_id):
    """One trial's rows of a table, as written (its own Parquet file)."""
    return pq.read_table(Path(sweep_dir) / table / f"{trial_id}.parquet").to_pylist()


@pytest.fixture(scope="module")
def grid_sweep(ray_session, tmp_path_factory):
    """A 4-trial grid (none, so, dn_relaxed, cs) run once for the tests of this module."""
    root = tmp_path_factory.mktemp("grid")
    path = make_space(root, "grid4", **GRID)
    storage = str(root / "results")
    assert sweep.run(path, storage=storage, quiet=True) == 0
    return spaces.load(path), path, storage, Path(storage) / "grid4"


def test_grid_sweep_writes_every_table_with_exactly_the_expected_keys(grid_sweep):
    space, _, _, sweep_dir = grid_sweep
    ids = sorted(cfg.trial_id for cfg in space.trials)
    assert len(ids) == 4

    def query(sql):
        return duckdb.sql(sql.replace("{dir}", str(sweep_dir))).fetchall()

    trials = query("SELECT trial_id, status, sweep, epochs_completed, pgd_acc_8_255 "
                   "FROM '{dir}/trials/*.parquet' ORDER BY trial_id")
    assert [r[0] for r in trials] == ids
    assert all(r[1:4] == ("completed", "grid4", EPOCHS) and r[4] is not None for r in trials)
    epochs = query("SELECT trial_id, epoch FROM '{dir}/epochs/*.parquet'")
    assert sorted(epochs) == [(i, e) for i in ids for e in range(EPOCHS)]
    layer_keys = query("SELECT trial_id, epoch, layer FROM '{dir}/layers/*.parquet'")
    assert len(layer_keys) == len(set(layer_keys)) > 0 and {k[0] for k in layer_keys} == set(ids)
    robustness = query("SELECT trial_id, kind, name, severity FROM '{dir}/robustness/*.parquet'")
    assert len(robustness) == len(set(robustness))
    assert {(r[0], r[1]) for r in robustness} == {(i, k) for i in ids
                                                    for k in ("clean", "corruption", "attack")}
    for table in results.TABLES:
        files = sorted((sweep_dir / table).glob("*.parquet"))
        assert [f.stem for f in files] == ids  # one file per trial, nothing else
        assert len({pq.read_schema(f) for f in files}) == 1
        assert ds.dataset(sweep_dir / table, format="parquet").count_rows() == \
            results.read_table(str(sweep_dir), table).num_rows
    by_reg = {r["regularizer"]: r for r in results.read_table(str(sweep_dir), "trials").to_pylist()}
    assert by_reg["none"]["coefficient"] == 0.0 and by_reg["cs"]["coefficient"] == 1e-4
    assert by_reg["dn_relaxed"]["relaxation"] == 0.3 and by_reg["so"]["relaxation"] is None


def test_fractional_gpu_trials_run_concurrently(grid_sweep):
    _, _, _, sweep_dir = grid_sweep
    rows = results.read_table(str(sweep_dir), "trials").to_pylist()
    spans = [(datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["finished_at"]))
             for r in rows]
    most = max(sum(start <= moment < end for start, end in spans) for moment, _ in spans)
    assert most >= 2, spans


def test_data_parallel_trial_has_the_single_worker_schema(grid_sweep, tmp_path):
    _, _, _, single_dir = grid_sweep
    path = make_space(tmp_path, "dp", grid={"seed": [0]}, regularizers={"so": {"coefficient": 1e-3}},
                      resources={"cpu": 2, "workers": 2}, checkpoint={"every": 1, "keep": 1})
    storage = tmp_path / "results"
    assert sweep.run(path, storage=str(storage), quiet=True) == 0
    dp_dir = storage / "dp"
    (trial_id,) = [f.stem for f in (dp_dir / "trials").glob("*.parquet")]
    reference = next((single_dir / "trials").glob("*.parquet")).stem
    for table in results.TABLES:
        dp = pq.read_schema(dp_dir / table / f"{trial_id}.parquet")
        assert dp.equals(pq.read_schema(single_dir / table / f"{reference}.parquet")), table
    row = results.read_table(str(dp_dir), "trials").to_pylist()[0]
    assert row["status"] == "completed" and row["epochs_completed"] == EPOCHS
    assert results.read_table(str(dp_dir), "epochs").num_rows == EPOCHS


def _one_step(world_rank_size, coefficient, out_path):
    """One optimizer step of trial.train_one_epoch on a BN-free plain CNN: global batch 8, split
    over the ranks of the process group when there is one."""
    import torch.distributed as dist
    from torch import nn

    from korth_bench import data, models, regularizers
    from korth_bench.trial import loop as trial
    from korth_bench.config import TrialConfig

    rank, world = world_rank_size
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = models.build("plain", 3, 1, 10)
    for name, module in list(model.named_modules()):  # normalization must not see the split
        for child, sub in list(module.named_children()):
            if isinstance(sub, nn.BatchNorm2d):
                setattr(module, child, nn.Identity())
    cfg = TrialConfig.from_dict({"model": "plain", "depth": 3, "batch_size": 8, "augment": False,
                                 "regularizer": "so" if coefficient else "none",
                                 "coefficient": coefficient, "lr": 0.1,
                                 "dataset": "synthetic", "image_size": 16})
    splits = data.load("synthetic", data.SourceOptions(seed=0, train_size=8, test_size=8, image_size=16), "cpu")
    reg = regularizers.get("so")
    seen = []
    model.register_forward_pre_hook(lambda module, inputs: seen.append(len(inputs[0])))
    trained = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    execution = trial.Execution(torch.device("cpu"), memory_format=torch.contiguous_format,
                                rank=rank, world=world)
    trial.train_one_epoch(trained, optimizer, lambda: reg.penalty(model), splits, cfg, execution,
                          epoch=0, step=0, generator=torch.Generator().manual_seed(0))
    assert seen == [8 // world]  # each rank trained on its own half of the global batch
    if rank == 0:
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out_path)
    if world > 1:
        dist.barrier()


def _two_worker_step(loop_config):
    import ray.train
    import torch.distributed as dist

    context = ray.train.get_context()
    assert dist.is_initialized() and context.get_world_size() == 2
    _one_step((context.get_world_rank(), 2), loop_config["coefficient"], loop_config["out"])


def test_two_workers_with_half_batches_step_like_one_worker(ray_session, tmp_path):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    ray_session.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # tests/ is no package
    coefficient = 0.5
    TorchTrainer(_two_worker_step, train_loop_config={"coefficient": coefficient,
                                                      "out": str(tmp_path / "two.pt")},
                 scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
                 torch_config=TorchConfig(backend="gloo"),
                 run_config=RunConfig(name="equivalence", storage_path=str(tmp_path / "train"))).fit()
    _one_step((0, 1), coefficient, tmp_path / "one.pt")
    _one_step((0, 1), 0.0, tmp_path / "unregularized.pt")
    two, one, plain = (torch.load(tmp_path / f"{n}.pt") for n in ("two", "one", "unregularized"))
    assert max((two[k] - one[k]).abs().max().item() for k in one) <= 1e-5
    # the penalty moved the weights, so counting it twice (or not at all) would show above
    assert max((one[k] - plain[k]).abs().max().item() for k in one) > 1e-3


def test_optuna_multi_objective_with_asha_records_stopped_trials(ray_session, tmp_path):
    epochs, samples = 3, 6
    path = make_space(
        tmp_path, "opt", training={"epochs": epochs, "lr": None}, data={"val_size": 64},
        sample={"lr": {"loguniform": [1e-4, 0.3]}},
        regularizers={"none": {}, "so": {"coefficient": {"loguniform": [1e-4, 1e-2]}}},
        search={"type": "optuna", "metric": ["val_acc", "pgd_acc_8_255"], "mode": ["max", "max"],
                "num_samples": samples, "concurrency": 2, "seed": 1},
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
        resources={"cpu": 1})
    storage = tmp_path / "results"
    assert sweep.run(path, storage=str(storage), quiet=True) == 0
    sweep_dir = storage / "opt"
    trials = results.read_table(str(sweep_dir), "trials").to_pylist()
    assert len(trials) == len({r["trial_id"] for r in trials}) == samples
    statuses = {r["status"] for r in trials}
    assert "stopped" in statuses and statuses <= {"completed", "stopped"}, statuses
    epochs_rows = results.read_table(str(sweep_dir), "epochs").to_pylist()
    for row in trials:
        own = sorted(r["epoch"] for r in epochs_rows if r["trial_id"] == row["trial_id"])
        assert own == list(range(row["epochs_completed"]))
        if row["status"] == "stopped":
            assert 1 <= row["epochs_completed"] < epochs and row["pgd_acc_8_255"] is None
            assert pq.read_table(sweep_dir / "layers" / f"{row['trial_id']}.parquet").num_rows == 0
        else:
            assert row["epochs_completed"] == epochs and row["pgd_acc_8_255"] is not None
    (state,) = (sweep_dir / TUNE_DIR).glob("searcher-state-*.pkl")
    with open(state, "rb") as saved:
        study = pickle.load(saved)["_ot_study"]
    assert len(study.directions) == 2 and len(study.trials) == samples
    states = sorted(t.state.name for t in study.trials)
    completed = sum(r["status"] == "completed" for r in trials)
    assert states == sorted(["COMPLETE"] * completed + ["PRUNED"] * (samples - completed))
    assert all(len(t.values) == 2 for t in study.trials if t.state.name == "COMPLETE")


def test_rerun_skips_final_trials_and_runs_error_and_missing_ones(grid_sweep, capsys):
    space, path, storage, sweep_dir = grid_sweep
    rows = {r["trial_id"]: r for r in results.read_table(str(sweep_dir), "trials").to_pylist()}
    errored, missing, *kept = sorted(rows)
    results.write_trial(str(sweep_dir), {"trials": [{**rows[errored], "status": "error",
                                                     "error": "RuntimeError: injected"}]}, sweep="grid4")
    (sweep_dir / "trials" / f"{missing}.parquet").unlink()
    # each rerun trial has two complete checkpoints; it must start from the newest (the last epoch)
    stores = {i: TrialCheckpoints(pafs.LocalFileSystem(), str(sweep_dir / CHECKPOINTS_DIR / i), keep=2)
              for i in (errored, missing)}
    assert {i: store.complete() for i, store in stores.items()} == {
        i: [EPOCHS - 1, EPOCHS - 2] for i in stores}
    epochs_before = {i: rows_of(sweep_dir, "epochs", i) for i in stores}
    assert sweep.run(path, storage=storage, quiet=True) == 0
    after = {r["trial_id"]: r for r in results.read_table(str(sweep_dir), "trials").to_pylist()}
    assert set(after) == set(rows) and {r["status"] for r in after.values()} == {"completed"}
    assert all(after[i]["finished_at"] == rows[i]["finished_at"] for i in kept)
    assert all(after[i]["finished_at"] > rows[i]["finished_at"] for i in (errored, missing))
    # from its newest checkpoint: every epoch up to it kept as written (an epoch trained again has
    # a new epoch_time_s), none trained again; the final measures are the same
    for i in stores:
        assert rows_of(sweep_dir, "epochs", i) == epochs_before[i], i
        assert after[i]["epochs_completed"] == EPOCHS and after[i]["test_acc"] == rows[i]["test_acc"]
        assert after[i]["train_time_s"] == pytest.approx(rows[i]["train_time_s"])
    capsys.readouterr()
    assert sweep.run(path, storage=storage, quiet=True) == 0
    assert "nothing to run" in capsys.readouterr().out


def test_a_grid_larger_than_its_wave_runs_as_consecutive_tuners(ray_session, tmp_path, capsys):
    # five trials, at most two per Tuner: three waves, every table key once; a trial of the
    # last wave whose row is lost runs again, alone, on the next run
    path = make_space(tmp_path, "waves", grid={"seed": [0, 1, 2, 3, 4]}, regularizers=["none"],
                      resources={"cpu": 1}, search={"type": "grid", "concurrency": 2, "wave_size": 2},
                      checkpoint={"every": 1, "keep": 1})
    storage = str(tmp_path / "results")
    space = spaces.load(path)
    assert space.wave_size == 2 and sweep.run(path, dry_run=True) == 0
    assert "runs as 3 consecutive Tuners of at most 2 trials" in capsys.readouterr().out
    assert sweep.run(path, storage=storage, quiet=True) == 0
    err = capsys.readouterr().err
    assert [f"wave {k} of 3" in err for k in (1, 2, 3)] == [True] * 3
    sweep_dir = tmp_path / "results" / "waves"
    ids = sorted(cfg.trial_id for cfg in space.trials)
    rows = duckdb.sql(f"SELECT trial_id, status FROM '{sweep_dir}/trials/*.parquet' ORDER BY 1").fetchall()
    assert rows == [(i, "completed") for i in ids]
    epochs = duckdb.sql(f"SELECT trial_id, epoch FROM '{sweep_dir}/epochs/*.parquet'").fetchall()
    assert sorted(epochs) == [(i, e) for i in ids for e in range(EPOCHS)]
    (sweep_dir / "trials" / f"{space.trials[-1].trial_id}.parquet").unlink()
    assert sweep.run(path, storage=storage, resume=True, quiet=True) == 0
    assert " wave " not in capsys.readouterr().err  # one trial left: one Tuner
    assert len(results.trial_statuses(str(sweep_dir))) == 5


def test_trial_failure_records_an_error_row(ray_session, tmp_path):
    # the file passes the up-front check (a Parquet file with the packed columns) but its image
    # does not decode, so the trial itself fails
    import pyarrow as pa

    bad = tmp_path / "none.parquet"
    pq.write_table(pa.table({"split": ["train"], "label": [0], "index": [0], "jpeg": [b"no jpeg"]}), bad)
    path = make_space(tmp_path, "fails", data={"dataset": "packed", "data_path": str(bad),
                                               "image_size": None},
                      regularizers=["none"], failure={"max_retries": 0})
    storage = tmp_path / "results"
    assert sweep.run(path, storage=str(storage), quiet=True) == 1
    (row,) = results.read_table(str(storage / "fails"), "trials").to_pylist()
    assert row["status"] == "error" and "none.parquet" in row["error"]
    assert results.read_table(str(storage / "fails"), "layers").num_rows == 0


def test_sweep_on_s3_compatible_storage(ray_session, s3_server, tmp_path):
    path = make_space(tmp_path, "s3grid", grid={"seed": [0, 1]}, regularizers=["none"],
                      resources={"cpu": 1}, checkpoint={"every": 1, "keep": 1})
    uri = "s3://korth/sweeps"
    assert sweep.run(path, storage=uri, storage_endpoint=s3_server, quiet=True) == 0
    filesystem, _ = results.resolve(uri, s3_server)
    trials = results.read_table(f"{uri}/s3grid", "trials", filesystem).to_pylist()
    assert len(trials) == 2 and {r["status"] for r in trials} == {"completed"}
    assert results.read_table(f"{uri}/s3grid", "epochs", filesystem).num_rows == 2 * EPOCHS
    tune_state = filesystem.get_file_info(f"korth/sweeps/s3grid/{TUNE_DIR}")
    assert tune_state.type.name == "Directory"  # Tune's state went there too
    # and each trial's own checkpoints: its newest (keep 1), payload and manifest, on S3
    ids = sorted(cfg.trial_id for cfg in spaces.load(path).trials)
    listed = filesystem.get_file_info(pafs.FileSelector(f"korth/sweeps/s3grid/{CHECKPOINTS_DIR}",
                                                        recursive=True, allow_not_found=True))
    keys = sorted(i.path.split(f"/{CHECKPOINTS_DIR}/", 1)[1] for i in listed
                  if i.type == pafs.FileType.File)
    assert keys == sorted(f"{i}/epoch_{EPOCHS - 1:06d}.{kind}" for i in ids for kind in ("json", "pt"))
    for trial_id in ids:
        store = TrialCheckpoints(filesystem, f"korth/sweeps/s3grid/{CHECKPOINTS_DIR}/{trial_id}", keep=1)
        with store.newest() as restored:  # complete: the payload matches its manifest
            assert restored is not None
            state = torch.load(Path(restored) / "state.pt", map_location="cpu", weights_only=False)
        assert state["epoch"] == EPOCHS - 1 and state["config"]["seed"] in (0, 1)


def test_an_address_that_does_not_answer_fails_within_seconds(write_space):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ValueError, match=rf"--address 127.0.0.1:{port}: no Ray cluster answers"):
        sweep.run(write_space("addr"), address=f"127.0.0.1:{port}")
    assert time.monotonic() - start < 10


def test_local_storage_on_a_multi_node_cluster_fails_naming_storage(monkeypatch, tmp_path):
    context = sweep_context(spaces.load(make_space(tmp_path, "multi")), str(tmp_path), None)
    monkeypatch.setattr(sweep_cluster.ray, "nodes", lambda: [{"Alive": True}, {"Alive": True}])
    with pytest.raises(ValueError, match=r"--storage .* is local to this machine, but the cluster has 2 nodes"):
        sweep_cluster.check_storage(context)
    monkeypatch.setattr(sweep_cluster, "_on_shared_file_system", lambda path: True)  # e.g. NFS
    sweep_cluster.check_storage(context)
    monkeypatch.setattr(sweep_cluster.ray, "nodes", lambda: [{"Alive": True}])
    monkeypatch.setattr(sweep_cluster, "_on_shared_file_system", lambda path: False)
    sweep_cluster.check_storage(context)


def test_resume_without_saved_state_says_so(ray_session, write_space, tmp_path):
    with pytest.raises(ValueError, match="--resume: no interrupted sweep"):
        sweep.run(write_space("fresh"), storage=str(tmp_path / "results"), resume=True)


@pytest.mark.reliability
def test_interrupted_optuna_sweep_resumes_with_its_study(ray_session, tmp_path):
    import signal
    import subprocess

    samples = 5
    path = make_space(
        tmp_path, "resumed", training={"epochs": 2, "lr": None},
        sample={"lr": {"loguniform": [1e-3, 0.3]}},
        regularizers={"none": {}, "so": {"coefficient": {"loguniform": [1e-4, 1e-2]}}},
        search={"type": "optuna", "metric": "test_acc", "num_samples": samples, "concurrency": 1},
        resources={"cpu": 1})
    storage = tmp_path / "results"
    sweep_dir = storage / "resumed"
    driver = subprocess.Popen(  # its own local Ray, interrupted like Ctrl-C after two trials
        [sys.executable, "-c", "import sys; from korth_bench import sweep; "
         f"sys.exit(sweep.run({path!r}, storage={str(storage)!r}, quiet=True))"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: len(list((sweep_dir / "trials").glob("*.parquet"))) >= 2, 240,
             "two trials rows", driver)
    driver.send_signal(signal.SIGINT)
    output = driver.communicate(timeout=120)[0]
    resume = f"korth-bench run {path} --storage {storage} --resume"
    assert driver.returncode == 130, output
    assert f"sweep resumed was interrupted; continue it with: {resume}" in output.splitlines(), output
    (state,) = (sweep_dir / TUNE_DIR).glob("searcher-state-*.pkl")
    with open(state, "rb") as saved:
        before = [t.params for t in pickle.load(saved)["_ot_study"].trials]
    assert 2 <= len(before) < samples

    # the printed command itself resumes it
    import shlex
    from korth_bench import cli
    assert cli.main([*shlex.split(resume)[1:], "--quiet"]) == 0
    # The newest session's state, by the session timestamp in its name: the final sync copies
    # every session's file again, so modification times do not order them.
    state = max((sweep_dir / TUNE_DIR).glob("searcher-state-*.pkl"), key=lambda p: p.name)
    with open(state, "rb") as saved:
        study = pickle.load(saved)["_ot_study"]
    assert len(study.trials) == samples  # the same study went on, not a fresh one
    assert [t.params for t in study.trials][: len(before)] == before
    trials = results.read_table(str(sweep_dir), "trials").to_pylist()
    assert len(trials) == samples and {r["status"] for r in trials} == {"completed"}
    epochs = results.read_table(str(sweep_dir), "epochs")
    assert epochs.num_rows == samples * 2  # no epoch row lost or doubled by the interruption


@pytest.mark.reliability
def test_joining_a_cluster_and_refusing_local_storage_on_two_nodes(tmp_path):
    """A real head node (`ray start --head --block`), a sweep that joins it with --address, then
    a second node: local storage is refused at once, naming --storage."""
    import os
    import shutil
    import subprocess
    import tempfile

    ray_cli = str(Path(sys.executable).parent / "ray")
    cli = str(Path(sys.executable).parent / "korth-bench")
    port = free_port()
    address = f"127.0.0.1:{port}"
    path = make_space(tmp_path, "joined", grid={"seed": [0]}, regularizers=["none"])
    storage = str(tmp_path / "results")
    started = []

    # Ray's own directory for these nodes (short: it holds Unix sockets), so that nothing of
    # this test is left in /tmp/ray where `--address auto` of other Ray users would find it
    temp_dir = tempfile.mkdtemp(prefix="kbray")

    def start_node(*args):
        node = subprocess.Popen([ray_cli, "start", "--block", "--num-cpus=2", "--node-ip-address=127.0.0.1",
                                 f"--temp-dir={temp_dir}", *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        started.append(node)

    try:
        start_node("--head", f"--port={port}", "--include-dashboard=false")
        wait_for_port(port, started[0])
        joined = subprocess.run([cli, "run", path, "--address", address, "--storage", storage, "--quiet"],
                                capture_output=True, text=True, timeout=300)
        assert joined.returncode == 0, joined.stdout + joined.stderr
        assert results.trial_statuses(f"{storage}/joined") and \
            set(results.trial_statuses(f"{storage}/joined").values()) == {"completed"}

        start_node(f"--address={address}")
        wait_for(lambda: alive_nodes(address, os.environ) == 2, 120, "the second node to join",
                 started[1])
        start = time.monotonic()
        refused = subprocess.run([cli, "run", path, "--address", address, "--storage", storage + "2"],
                                 capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2 and "--storage" in refused.stderr + refused.stdout, \
            refused.stdout + refused.stderr
        assert "2 nodes" in refused.stderr + refused.stdout
        assert time.monotonic() - start < 60
    finally:
        for node in reversed(started):  # stop only the nodes this test started
            node.terminate()
            node.wait(timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)
