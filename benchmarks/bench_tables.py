"""Reading a 10,000-trial sweep's tables: the status scan (``results.trial_statuses``, at every
start and ``--resume``), each table's ``read_table`` and ``korth-bench report``, on local files
and on a SeaweedFS S3 server behind a loopback proxy that adds a round trip per request (10 ms:
an object store across a network).

The sweep is shaped like a paper sweep: 6 cells (ResNet-20/56/110, WRN-16-4/28-10/40-4) x 7
regularizers x 48 settings (6 learning rates x 8 weight decays) x 5 seeds = 10,080 trials, each
with a full ``trials`` row, a 100-epoch ``epochs`` table, end-of-training ``layers`` (one row per
conv layer of the cell's network) and the full robustness suite (clean, 8 corruptions x 5
severities, FGSM and PGD at 1, 2, 8 /255). The rows are realistic synthetic values, seeded.
``--trials N`` takes the first N trials (seeds innermost). Targets, printed and never asserted:
status scan of 10,000 trials <= 15 s at 10 ms per request; report on 10,000 local trials <= 90 s
(2 cores). "client CPU" is this process's CPU time: on one machine the SeaweedFS server shares the
two cores, which a remote object store does not. Start it inside a loopback-only network namespace (``make bench`` does).
"""
from __future__ import annotations

import argparse
import itertools
import os
import random
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import pyarrow.fs as pafs

from korth_bench import report, results
from korth_bench.config import TrialConfig
from korth_bench.trial.summary import trial_row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import seaweedfs  # noqa: E402  (the tests' SeaweedFS starter)

CELLS = [("resnet", 20, 1, 19), ("resnet", 56, 1, 55), ("resnet", 110, 1, 109),
         ("wrn", 16, 4, 15), ("wrn", 28, 10, 27), ("wrn", 40, 4, 39)]   # model, depth, width, conv layers
REGULARIZERS = ["none", "so", "dso", "mc", "srip", "ocnn", "cs"]
LRS = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3]
WEIGHT_DECAYS = [0.0, 1e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3]
SEEDS = range(5)
EPOCHS = 100
LATENCY_S = 0.010
TARGETS = {("status scan", "s3 +10 ms"): 15.0, ("report", "local"): 90.0}  # seconds at 10,000 trials
FULL_TRIALS = len(CELLS) * len(REGULARIZERS) * len(LRS) * len(WEIGHT_DECAYS) * len(SEEDS)


# ---------------------------------------------------------------------- the sweep's tables
def configs(count: int) -> List[TrialConfig]:
    grid = itertools.product(CELLS, REGULARIZERS, LRS, WEIGHT_DECAYS, SEEDS)
    out = []
    for (model, depth, width, _), regularizer, lr, weight_decay, seed in itertools.islice(grid, count):
        out.append(TrialConfig.from_dict({
            "model": model, "depth": depth, "width": width, "dataset": "cifar10", "epochs": EPOCHS,
            "val_size": 5000, "lr": lr, "weight_decay": weight_decay, "regularizer": regularizer,
            "coefficient": 0.0 if regularizer == "none" else 1e-3, "seed": seed,
            "lr_schedule": "multistep"}))
    return out


def trial_tables(cfg: TrialConfig, rng: random.Random) -> Dict[str, List[Dict[str, Any]]]:
    """One trial's four tables with realistic values."""
    final = rng.uniform(0.80, 0.95)
    epochs = []
    for e in range(EPOCHS):
        acc = final * (1 - 0.7 * 0.95 ** e) + rng.gauss(0, 0.005)
        epochs.append({"trial_id": cfg.trial_id, "epoch": e, "train_loss": 2.3 * 0.96 ** e,
                       "reg_loss": rng.uniform(0, 1), "train_acc": min(1.0, acc + 0.05),
                       "val_loss": 1.0 - acc, "val_acc": acc - 0.005, "test_loss": 1.0 - acc,
                       "test_acc": acc, "lr": cfg.lr, "coefficient": cfg.coefficient,
                       "epoch_time_s": 30.0 + rng.random(), "elapsed_s": 31.0 * (e + 1),
                       "images_per_s": 1500.0 + rng.random()})
    conv_layers = next(c[3] for c in CELLS if (c[0], c[1]) == (cfg.model, cfg.depth))
    layers = [{"trial_id": cfg.trial_id, "epoch": EPOCHS - 1, "layer": f"conv{i}", "kind": "conv",
               "shape": [16 * cfg.width, 16 * cfg.width, 3, 3], "out_channels": 16 * cfg.width,
               "fan_in": 144 * cfg.width, "overdetermined": False,
               **{k: rng.random() for k in ("gram_residual_fro", "diag_deviation", "offdiag_fro",
                                           "cos_mean", "cos_max", "spectral_norm", "cs_mean",
                                           "cs_normalized_mean", "fm_sim")}, "dead_channels": 0}
              for i in range(conv_layers)]
    robustness = [{"trial_id": cfg.trial_id, "kind": "clean", "name": "clean", "severity": 0,
                   "eps": 0.0, "accuracy": final, "num_examples": 1000}]
    robustness += [{"trial_id": cfg.trial_id, "kind": "corruption", "name": name, "severity": s,
                    "eps": 0.0, "accuracy": final * (1 - 0.08 * s), "num_examples": 1000}
                   for name in cfg.robustness_corruptions for s in cfg.robustness_severities]
    robustness += [{"trial_id": cfg.trial_id, "kind": "attack", "name": attack, "severity": 0,
                    "eps": k / 255, "accuracy": final * 0.5 / k, "num_examples": 1000}
                   for attack in cfg.robustness_attacks for k in cfg.robustness_pgd_eps]
    measured = {"num_params": 270_000 * cfg.width ** 2, "clean_acc": final,
                "corruption_acc_mean": final * 0.76,
                **{f"{a}_acc_{k}_255": final * 0.5 / k for a in cfg.robustness_attacks
                   for k in cfg.robustness_pgd_eps}}
    summary = trial_row(cfg, "completed", None, epochs, measured=measured,
                        run={"wall_time_s": 3300.0, "device": "NVIDIA H100",
                             "started_at": "2026-01-01T00:00:00"})
    return {"trials": [summary], "epochs": epochs, "layers": layers, "robustness": robustness}


def write_sweep(uri: str, cfgs: List[TrialConfig], filesystem: pafs.FileSystem) -> None:
    rng = random.Random(0)
    for cfg in cfgs:
        results.write_trial(uri, trial_tables(cfg, rng), sweep="bench", filesystem=filesystem)


# ---------------------------------------------------------------------- a slow network
class LatencyProxy:
    """A TCP proxy on 127.0.0.1 that holds each chunk a client sends for ``latency_s`` before
    passing it on: one round trip added per HTTP request."""

    def __init__(self, target_port: int, latency_s: float):
        self.target_port, self.latency_s = target_port, latency_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, server, self.latency_s), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, 0.0), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, delay: float) -> None:
        try:
            while chunk := source.recv(1 << 16):
                if delay:
                    time.sleep(delay)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


# ---------------------------------------------------------------------- timing
def timed(what: str, where: str, trials: int, call) -> Dict[str, Any]:
    start, cpu = time.perf_counter(), time.process_time()
    call()
    seconds, client_cpu = time.perf_counter() - start, time.process_time() - cpu
    target = TARGETS.get((what, where))
    scaled = seconds * FULL_TRIALS / trials
    row = {"what": what, "where": where, "trials": trials, "seconds": seconds,
           "client_cpu_s": client_cpu,
           "ms_per_trial": 1000 * seconds / trials, "at_10k_s": scaled,
           "target_at_10k_s": target, "met": None if target is None else scaled <= target}
    print(f"| {what} | {where} | {trials} | {seconds:.2f} | {client_cpu:.2f} | "
          f"{row['ms_per_trial']:.1f} | {scaled:.0f} | "
          f"{'-' if target is None else f'<= {target:g}'} | "
          f"{'-' if target is None else ('yes' if row['met'] else 'no')} |", flush=True)
    return row


def measure(uri: str, filesystem: pafs.FileSystem, where: str, trials: int, out: str) -> List[Dict]:
    rows = [timed("status scan", where, trials, lambda: results.trial_statuses(uri, filesystem))]
    for table in results.TABLES:
        rows.append(timed(f"read_table {table}", where, trials,
                          lambda: results.read_table(uri, table, filesystem)))
    if where == "local":  # report() reads through its own file system: local paths only
        rows.append(timed("report", where, trials, lambda: report.build_report([uri], out)))
    return rows


def main(argv=None) -> List[Dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=FULL_TRIALS,
                        help=f"trials to build (default the full sweep, {FULL_TRIALS})")
    parser.add_argument("--no-s3", action="store_true", help="local files only")
    args = parser.parse_args(argv)
    cfgs = configs(args.trials)
    print(f"building {len(cfgs)} trials x 4 tables ({EPOCHS} epochs each)", flush=True)
    print("| measure | storage | trials | seconds | client CPU (s) | ms/trial | scaled to 10k (s) | "
          "target (s) | met |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "bench")
        write_sweep(local, cfgs, pafs.LocalFileSystem())
        rows += measure(local, pafs.LocalFileSystem(), "local", len(cfgs), os.path.join(tmp, "report"))
        if args.no_s3 or seaweedfs.weed_binary() is None:
            return rows
        os.environ.update(seaweedfs.S3_CREDENTIALS)
        os.makedirs(os.path.join(tmp, "weed"))
        endpoint, server = seaweedfs.start(os.path.join(tmp, "weed"))
        try:
            uri = f"s3://{seaweedfs.BUCKET}/bench"
            write_sweep(uri, cfgs, results.resolve(uri, endpoint)[0])
            rows += measure(uri, results.resolve(uri, endpoint)[0], "s3", len(cfgs), "")
            proxy = LatencyProxy(int(endpoint.rsplit(":", 1)[1]), LATENCY_S)
            slow = results.resolve(uri, f"http://127.0.0.1:{proxy.port}")[0]
            rows += measure(uri, slow, f"s3 +{LATENCY_S * 1000:g} ms", len(cfgs), "")
            proxy.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
