"""One trial end to end: on real CIFAR-10 images (the packed file, KORTH_CIFAR10_PARQUET) where a
test is about learning, on synthetic images where it is about the loop's mechanics."""
import dataclasses
import io
import math
from pathlib import Path

import pytest
import torch

from korth_bench import regularizers
from korth_bench.config import TrialConfig
from korth_bench.trial import progress
from korth_bench.trial.loop import run_trial, train_and_measure
from conftest import CIFAR, needs_cifar

SYNTHETIC = {"model": "resnet", "depth": 8, "dataset": "synthetic", "image_size": 16,
             "train_size": 256, "val_size": 64, "test_size": 128, "batch_size": 64, "epochs": 1,
             "device": "cpu", "seed": 0, "robustness": False, "probe_size": 16, "threads": 2}
SMALL = {"model": "resnet", "depth": 8, "dataset": "packed", "data_path": str(CIFAR),
         "train_size": 1000, "val_size": 200, "test_size": 500, "batch_size": 128, "epochs": 1,
         "device": "cpu", "seed": 0, "robustness_test_size": 100, "robustness_severities": [1, 5],
         "robustness_pgd_steps": 3, "probe_size": 16, "threads": 2}

EPOCH_FIELDS = ("train_loss", "reg_loss", "train_acc", "val_loss", "val_acc", "test_loss",
                "test_acc", "lr", "coefficient", "epoch_time_s", "elapsed_s", "images_per_s")
SUMMARY_FIELDS = ("test_acc", "val_acc", "best_test_acc", "accuracy_auc", "epochs_to_90pct_best",
                  "seconds_to_95pct_best", "clean_acc", "corruption_acc_mean", "fgsm_acc_1_255",
                  "pgd_acc_8_255", "ortho_gram_residual_mean", "ortho_cos_max", "fm_sim_mean",
                  "fm_sim_post_mean", "num_params", "wall_time_s", "train_time_s")


def assert_finite(row, fields):
    for name in fields:
        assert row[name] is not None and math.isfinite(row[name]), (name, row[name])


@needs_cifar
def test_resnet8_learns_real_images_and_records_every_field():
    record = train_and_measure({**SMALL, "train_size": 5000, "epochs": 5, "lr_schedule": "cosine",
                                "robustness_test_size": 200})
    assert record.status == "completed"
    assert record.summary["test_acc"] > 0.30, record.summary["test_acc"]
    assert len(record.epochs) == 5
    for row in record.epochs:
        assert_finite(row, EPOCH_FIELDS)
    assert_finite(record.summary, SUMMARY_FIELDS)
    assert record.summary["pgd_acc_8_255"] <= record.summary["fgsm_acc_8_255"] <= record.summary["clean_acc"]
    assert {r["kind"] for r in record.layers} == {"conv", "linear", "activation"}
    assert len({r["layer"] for r in record.layers}) == len(record.layers)  # one row per layer
    assert all(r["fm_sim"] is not None for r in record.layers if r["kind"] != "linear")
    assert {r["kind"] for r in record.robustness} == {"clean", "corruption", "attack"}
    assert record.summary["device"] and record.summary["torch_version"]


@needs_cifar
@pytest.mark.parametrize("name", [n for n in regularizers.names() if n != "none"])
def test_every_regularizer_trains_one_epoch(name):
    params = {"relaxation": 0.3} if name == "dn_relaxed" else {}
    record = train_and_measure({**SMALL, "regularizer": name, "coefficient": 1e-3,
                                "robustness": False, **params})
    assert record.status == "completed"
    row = record.epochs[0]
    assert_finite(row, EPOCH_FIELDS)
    assert row["reg_loss"] > 0 and row["coefficient"] == 1e-3


def test_a_coefficient_at_zero_in_the_loop_equals_none():
    """Where the coefficient is 0 in the loop (a ``step`` schedule's last stage) the penalty is
    skipped and touches no random stream. A trial cannot ask for 0 itself (``regularizers.check``
    refuses it), so the resolved config is changed behind the check."""
    base = SYNTHETIC
    a = train_and_measure({**base, "regularizer": "none"}).epochs[0]
    so = TrialConfig.from_dict({**base, "regularizer": "so", "coefficient": 1e-3})
    b = train_and_measure(dataclasses.replace(so, coefficient=0.0)).epochs[0]
    assert a["train_loss"] == b["train_loss"] and a["test_acc"] == b["test_acc"]


def test_resumed_trial_matches_uninterrupted(tmp_path):
    base = {**SYNTHETIC, "epochs": 3, "regularizer": "srip", "coefficient": 1e-3, "dropout": 0.1}
    full = train_and_measure(base)

    saved = tmp_path / "ckpt"

    class Killed(Exception):
        pass

    def kill_after_epoch_1(row, checkpoint):
        if row["epoch"] == 1:
            saved.mkdir()
            (saved / "state.pt").write_bytes((Path(checkpoint) / "state.pt").read_bytes())
            raise Killed

    with pytest.raises(Killed):
        train_and_measure(base, report=kill_after_epoch_1)
    resumed = train_and_measure(base, resume_from=str(saved))
    assert [r["epoch"] for r in resumed.epochs] == [0, 1, 2]
    # the row's wall time adds the killed process's seconds up to its checkpoint to this one's
    before = torch.load(saved / "state.pt", weights_only=False)["wall_time_s"]
    assert before >= sum(r["epoch_time_s"] for r in resumed.epochs[:2]) > 0
    assert resumed.summary["wall_time_s"] > before
    assert resumed.summary["wall_time_s"] >= resumed.summary["train_time_s"]
    for key in EPOCH_FIELDS:
        if key not in ("epoch_time_s", "elapsed_s", "images_per_s"):
            assert resumed.epochs[2][key] == full.epochs[2][key], key


def test_huge_learning_rate_diverges_with_rows_kept():
    record = train_and_measure({**SYNTHETIC, "epochs": 3, "lr": 1e6})
    assert record.status == "diverged" and "non-finite" in record.summary["error"]
    assert len(record.epochs) >= 1 and not math.isfinite(record.epochs[-1]["train_loss"])
    assert record.summary["trial_id"] and record.summary["test_acc"] is None


def test_run_trial_returns_the_trials_row_and_reports_every_epoch():
    reported = []
    row = run_trial({**SYNTHETIC, "epochs": 2}, report=lambda r, ckpt: reported.append((dict(r), ckpt)))
    assert row["status"] == "completed" and row["epochs_completed"] == 2
    assert [r["epoch"] for r, _ in reported] == [0, 1]
    # the row's accuracies are those of the reported epochs: final, best and where it was
    curve = [r["test_acc"] for r, _ in reported]
    assert row["test_acc"] == curve[-1] and row["val_acc"] == reported[-1][0]["val_acc"]
    assert row["best_test_acc"] == max(curve) and row["best_test_epoch"] == curve.index(max(curve))
    assert row["accuracy_auc"] == pytest.approx(sum(curve) / len(curve))
    assert all(ckpt is not None for _, ckpt in reported)  # checkpoint_every 1 by default


def test_synthetic_trial_runs_without_real_data():
    record = train_and_measure({"model": "plain", "depth": 3, "dataset": "synthetic",
                                "train_size": 256, "test_size": 128, "epochs": 2, "device": "cpu",
                                "regularizer": "cs", "coefficient": 1e-3, "init": "cs_iterative",
                                "init_steps": 3, "robustness_test_size": 64,
                                "robustness_corruptions": ["contrast"], "robustness_severities": [1],
                                "robustness_pgd_eps": [2], "robustness_pgd_steps": 2})
    assert record.status == "completed" and len(record.epochs) == 2
    assert record.summary["pgd_acc_2_255"] <= record.summary["clean_acc"]


def test_selfcheck_runs_every_path_on_cpu_and_reports_failures(capsys, monkeypatch):
    from korth_bench import cli, selfcheck

    assert cli.main(["selfcheck", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for name in set(regularizers.names()) - {"none"}:
        assert f"penalty {name} " in out
    assert "0 failing check(s)" in out
    # A check that breaks is printed with its error, the rest still run, and the exit code is 1.
    monkeypatch.setattr(selfcheck, "checks", lambda device: [
        {"check": "bad depth", "depth": 9}, {"check": "fp32", "precision": "fp32", "epochs": 1}])
    assert selfcheck.main("cpu") == 1
    out = capsys.readouterr().out
    assert "bad depth" in out and "ERROR" in out and "depth" in out and "1 failing check(s)" in out


def test_compile_time_is_recorded_apart_and_leaves_the_trial_unchanged(monkeypatch):
    """Every compilation happens before epoch 0 is timed, and the warm-up passes change nothing:
    the compiled trial trains exactly as the eager one. A backend that records when it is called
    and runs the captured graph eagerly keeps this fast and bitwise comparable; the partial last
    batch (200 = 3 x 64 + 8) and dropout make the shapes and random streams count."""
    from korth_bench.trial import loop as trial

    phase, compiled_in = ["setup"], []

    def backend(graph_module, example_inputs):
        compiled_in.append(phase[0])
        return graph_module.forward

    real_compile, real_epoch = torch.compile, trial.train_one_epoch

    def timed_epoch(*args, **kwargs):
        phase[0] = f"epoch {kwargs['epoch']}"
        try:
            return real_epoch(*args, **kwargs)
        finally:
            phase[0] = "evaluation"

    monkeypatch.setattr(torch, "compile", lambda module: real_compile(module, backend=backend))
    monkeypatch.setattr(trial, "train_one_epoch", timed_epoch)
    config = {"model": "plain", "depth": 3, "dropout": 0.3, "dataset": "synthetic",
              "train_size": 200, "test_size": 64, "batch_size": 64, "epochs": 2, "device": "cpu",
              "precision": "fp32", "robustness": False, "probe_size": 8}
    compiled = train_and_measure({**config, "compile": True})
    eager = train_and_measure(config)
    assert compiled_in and set(compiled_in) == {"setup"}, compiled_in  # none inside an epoch
    assert compiled.summary["compile_time_s"] > 0 and eager.summary["compile_time_s"] is None
    for mine, theirs in zip(compiled.epochs, eager.epochs):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-6, abs=1e-9), key
    from korth_bench import results
    table = results.to_arrow("trials", [compiled.summary], compiled.summary)
    assert table.schema.field("compile_time_s").type == "double"


class Terminal(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_the_progress_bar_writes_only_to_a_terminal_and_clears_its_line():
    shown, piped = Terminal(True), Terminal(False)
    for stream in (shown, piped):
        bar = progress.Bar("epoch 1/2", 4, stream=stream)
        for _ in range(4):
            bar.advance()
        bar.close()
    assert piped.getvalue() == ""  # a pipe, a log file, a Ray worker's stderr: nothing
    text = shown.getvalue()
    assert text.startswith("\r  epoch 1/2 [") and "4/4" in text and "#" * progress.WIDTH in text
    assert text.endswith("\r\033[K") and "\n" not in text


def _initialized(init, seed=0, **keys):
    """ResNet-8 built at ``seed`` as the trial builds it, then ``loop.initialize`` with ``init``."""
    from korth_bench import models
    from korth_bench.trial.loop import initialize

    cfg = TrialConfig.from_dict({**SYNTHETIC, "seed": seed, "init": init, **keys})
    torch.manual_seed(seed)
    model = models.build(cfg.model, cfg.depth, cfg.width, 10)
    initialize(model, cfg)
    return model


def test_each_init_mode_changes_the_kernels_as_stated():
    """init: default leaves PyTorch's init; orthogonal makes every reshaped kernel K (o x n)
    orthonormal, K K^T = I where o <= n (K^T K = I otherwise), unlike the default; cs_iterative's
    init_steps Adam steps lower the cs penalty below the default init's at the same seed."""
    from korth_bench import models

    torch.manual_seed(0)
    pytorch = models.build("resnet", 8, 1, 10)
    default = _initialized("default")
    for (name, a), b in zip(default.state_dict().items(), pytorch.state_dict().values()):
        assert torch.equal(a, b), name

    orthogonal = _initialized("orthogonal")
    layers = regularizers.regularized_layers(orthogonal, include_linear=True)
    defaults = dict(regularizers.regularized_layers(default, include_linear=True))
    wide = 0
    for name, layer in layers:
        kernel = layer.weight.detach().double().reshape(layer.weight.shape[0], -1)
        o, n = kernel.shape
        gram = kernel @ kernel.T if o <= n else kernel.T @ kernel
        torch.testing.assert_close(gram, torch.eye(min(o, n), dtype=torch.float64),
                                   atol=1e-5, rtol=0, msg=name)
        base = defaults[name].weight.detach().double().reshape(o, -1)
        base_gram = base @ base.T if o <= n else base.T @ base
        assert (base_gram - torch.eye(min(o, n), dtype=torch.float64)).abs().max() > 0.1, name
        assert not torch.allclose(layer.weight, defaults[name].weight), name
        wide += o <= n and isinstance(layer, torch.nn.Conv2d)
    assert wide == sum(isinstance(layer, torch.nn.Conv2d) for _, layer in layers) == 7

    cs = regularizers.get("cs")
    iterative = _initialized("cs_iterative", init_steps=5)
    with torch.no_grad():
        lowered, start = cs.penalty(iterative).item(), cs.penalty(default).item()
    assert lowered < 0.9 * start, (lowered, start)


def _schedule_config(**values):
    return TrialConfig.from_dict({"epochs": 4, "lr": 0.1, **values})


def test_lr_schedule_warmup_then_cosine_by_hand():
    """warmup_epochs: lr rises linearly, per step, from lr/10 at step 0 towards lr; cosine then
    falls from lr, lr/2 at half of the steps after warm-up, to 0 at the last, and stays 0."""
    from korth_bench.trial.schedules import lr_at

    cfg = _schedule_config(lr_schedule="cosine", warmup_epochs=1)  # 10 steps/epoch, 40 in all
    assert lr_at(0, cfg, 10) == pytest.approx(0.01)
    assert lr_at(5, cfg, 10) == pytest.approx(0.1 * (0.1 + 0.9 * 5 / 10))
    assert lr_at(9, cfg, 10) == pytest.approx(0.1 * (0.1 + 0.9 * 9 / 10))
    assert lr_at(10, cfg, 10) == pytest.approx(0.1)
    assert lr_at(25, cfg, 10) == pytest.approx(0.05)  # 15 of the 30 steps after warm-up
    assert lr_at(40, cfg, 10) == pytest.approx(0.0, abs=1e-15)
    assert lr_at(55, cfg, 10) == pytest.approx(0.0, abs=1e-15)
    plain = _schedule_config(lr_schedule="cosine")
    assert lr_at(0, plain, 10) == 0.1
    assert lr_at(10, plain, 10) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(20, plain, 10) == pytest.approx(0.05)


def test_lr_schedule_multistep_multiplies_by_gamma_from_each_milestone_epoch():
    """multistep: lr * gamma**k from the first step of the k-th milestone (0-based epochs);
    the default milestones are 50 % and 75 % of the epochs."""
    from korth_bench.trial.schedules import lr_at

    cfg = _schedule_config(lr_schedule="multistep", lr_milestones=[1, 3], lr_gamma=0.5)
    assert [lr_at(step, cfg, 10) for step in (0, 9, 10, 29, 30, 39)] == pytest.approx(
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    default = _schedule_config(lr_schedule="multistep", epochs=8)  # milestones 4 and 6, gamma 0.1
    assert [lr_at(step, default, 5) for step in (19, 20, 29, 30)] == pytest.approx(
        [0.1, 0.01, 0.01, 0.001])
    warm = _schedule_config(lr_schedule="multistep", lr_milestones=[2], warmup_epochs=1)
    assert [lr_at(step, warm, 10) for step in (0, 10, 19, 20)] == pytest.approx(
        [0.01, 0.1, 0.1, 0.01])


def test_coefficient_schedule_constant_and_srip_steps_scaled_to_the_run():
    """constant: lambda0 in every epoch. step ([SRIP]): lambda0 times 1, 1e-3, 1e-4, 1e-6, 0 from
    epochs 0, 20, 50, 70, 120 of 200, each breakpoint scaled to E epochs as round(b * E / 200)
    (Python's round: 2.5 -> 2, 3.5 -> 4)."""
    from korth_bench.trial.schedules import coefficient_at

    constant = _schedule_config(regularizer="so", coefficient=1e-2, epochs=200)
    assert {coefficient_at(epoch, constant) for epoch in range(200)} == {1e-2}
    srip = _schedule_config(regularizer="so", coefficient=1e-2, coefficient_schedule="step",
                            epochs=200)
    epochs = (0, 19, 20, 49, 50, 69, 70, 119, 120, 199)
    assert [coefficient_at(epoch, srip) for epoch in epochs] == pytest.approx(
        [1e-2, 1e-2, 1e-5, 1e-5, 1e-6, 1e-6, 1e-8, 1e-8, 0.0, 0.0], rel=1e-12, abs=0)
    short = _schedule_config(regularizer="so", coefficient=1e-2, coefficient_schedule="step",
                             epochs=10)  # breakpoints 0, 1, 2, 4, 6
    assert [coefficient_at(epoch, short) for epoch in range(8)] == pytest.approx(
        [1e-2, 1e-5, 1e-6, 1e-6, 1e-8, 1e-8, 0.0, 0.0], rel=1e-12, abs=0)
