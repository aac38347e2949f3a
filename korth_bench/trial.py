"""One trial: train one configuration and measure it completely. Never imports Ray.

``train_and_measure`` reads top to bottom: config -> seed -> data -> model -> regularizer ->
optimizer -> per epoch (train, evaluate, report) -> layer measures, feature-map similarity,
robustness -> the rows of the four tables. The loss is ``CE + lambda(epoch) * sum_layers R(W)``.
Ray Tune, ``korth-bench train`` and tests all call it with their own ``report(metrics,
checkpoint_dir)`` callback.
"""
from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from korth_bench import data, measures, models, regularizers, robustness
from korth_bench.config import TrialConfig
from korth_bench.convergence import convergence_summary
from korth_bench.precision import resolve_precision
from korth_bench.provenance import provenance
from korth_bench.schedules import coefficient_at, lr_at

Report = Callable[[Dict[str, Any], Optional[str]], None]
CHECKPOINT_FILE = "state.pt"
EVAL_BATCH_AUTO = {"cuda": 1000, "cpu": 128}
"""Evaluation and attack batch for ``eval_batch_size: 0``. Large batches fill a GPU; on a CPU a
1000-image batch falls out of cache (ResNet-20 inference, 2 threads: 1,285 img/s at 1000 vs
2,565 at 128)."""


def eval_batch_size(requested: int, device: torch.device) -> int:
    """The configured ``eval_batch_size``, or for 0 the device's ``EVAL_BATCH_AUTO``."""
    return requested or EVAL_BATCH_AUTO.get(device.type, 1000)


@dataclass
class TrialRecord:
    """Everything a trial measured: the summary row and the rows of the other three tables."""
    config: TrialConfig
    summary: Dict[str, Any]
    epochs: List[Dict[str, Any]] = field(default_factory=list)
    layers: List[Dict[str, Any]] = field(default_factory=list)
    robustness: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.summary["status"]

    def tables(self) -> Dict[str, List[Dict[str, Any]]]:
        return {"trials": [self.summary], "epochs": self.epochs, "layers": self.layers,
                "robustness": self.robustness}


def run_trial(config: Union[dict, TrialConfig], report: Optional[Report] = None,
              resume_from: Optional[str] = None) -> Dict[str, Any]:
    """Train and measure one configuration; returns its ``trials`` row."""
    return train_and_measure(config, report, resume_from).summary


# ---------------------------------------------------------------------- setup helpers
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA device is visible; use device=auto or cpu")
    return torch.device(name)


def distributed_rank_world() -> tuple:
    """(rank, world size) of a data-parallel group set up by the launcher, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def initialize(model: nn.Module, cfg: TrialConfig) -> None:
    """Apply ``cfg.init``: PyTorch's default, orthogonal kernels, or [CS]'s iterative init."""
    if cfg.init == "orthogonal":
        for layer in regularizers.regularized_layers(model, include_linear=True):
            nn.init.orthogonal_(layer[1].weight)  # on the reshaped [o, n] matrix
    elif cfg.init == "cs_iterative":
        # [CS]: Adam steps on the Convolutional Similarity alone, before any data is seen.
        cs = regularizers.get("cs", **({"pairs": cfg.pairs} if cfg.pairs else {}))
        weights = [m.weight for _, m in regularizers.regularized_layers(model, include_linear=False)]
        optimizer = torch.optim.Adam(weights, lr=cfg.init_lr)
        for _ in range(cfg.init_steps):
            optimizer.zero_grad(set_to_none=True)
            cs.penalty(model).backward()
            optimizer.step()


def make_classifier(model: nn.Module, mean, std, device: torch.device, autocast):
    """Logits for float images in [0, 1]: normalization inside, as the attacks need."""
    mean = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def classify(images01: torch.Tensor) -> torch.Tensor:
        with autocast():
            return model((images01 - mean) / std).float()
    return classify


# ---------------------------------------------------------------------- epoch helpers
def train_one_epoch(model, optimizer, penalty_fn, splits, cfg: TrialConfig, *, epoch: int,
                    step: int, steps_per_epoch: int, coefficient: float, generator, autocast,
                    rank: int, world: int, memory_format) -> Dict[str, Any]:
    """One pass over the training images. Sums stay on the device: one host sync per epoch."""
    model.train()
    device = splits.train_x.device
    sums = torch.zeros(4, device=device, dtype=torch.float64)  # ce*n, penalty, correct, n
    for images, labels in data.batches(splits.train_x, splits.train_y, cfg.batch_size, generator,
                                       augment=cfg.augment, shuffle=True, mean=splits.mean,
                                       std=splits.std):
        if world > 1:  # every rank draws the same global batch and keeps its own slice
            images, labels = images.tensor_split(world)[rank], labels.tensor_split(world)[rank]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, lr=cfg.lr, schedule=cfg.lr_schedule,
                                steps_per_epoch=steps_per_epoch, epochs=cfg.epochs,
                                milestones=cfg.lr_milestones, gamma=cfg.lr_gamma,
                                warmup_epochs=cfg.warmup_epochs)
        images = images.contiguous(memory_format=memory_format)
        with autocast():
            logits = model(images)
            ce = F.cross_entropy(logits.float(), labels)
        loss = ce
        if coefficient > 0:  # a zero coefficient skips the work and touches no random stream
            penalty = penalty_fn()
            loss = ce + coefficient * penalty
            sums[1] += penalty.detach()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        sums[0] += ce.detach() * len(labels)
        sums[2] += (logits.detach().argmax(1) == labels).sum()
        sums[3] += len(labels)
    if world > 1:
        torch.distributed.all_reduce(sums)
        sums[1] /= world
    ce_sum, penalty_sum, correct, seen = sums.tolist()
    return {"train_loss": ce_sum / seen, "reg_loss": penalty_sum / steps_per_epoch,
            "train_acc": correct / seen, "step": step, "finite": math.isfinite(ce_sum + penalty_sum)}


def warm_up_compiled(trained, model, splits, cfg: TrialConfig, *, autocast, rank: int, world: int,
                     memory_format) -> float:
    """Compile ``trained`` before the first timed epoch; returns the seconds it took.

    ``torch.compile`` compiles on the first forward and backward of each new input shape, so an
    untreated epoch 0 would count the compilation in its ``epoch_time_s`` and ``images_per_s``.
    Here one forward and cross-entropy backward runs per batch shape an epoch sees (the full batch
    and a smaller last one), on the first training images. These passes change nothing that
    training uses afterwards once undone: no optimizer step runs, so the weights are untouched;
    the batch-norm statistics (all buffers) are restored, the gradients dropped, and the random
    streams dropout draws from reset; the data generator is not used. So the trial computes what
    it would without the warm-up, and the returned time is the compilation (plus a step or two of
    ordinary work, which is small beside it).
    """
    device = splits.train_x.device
    count = len(splits.train_y)
    sizes = sorted({min(cfg.batch_size, count), count % cfg.batch_size} - {0}, reverse=True)
    buffers = {name: value.clone() for name, value in model.named_buffers()}
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    _synchronize(device)
    start = time.perf_counter()
    trained.train()
    for size in sizes:
        images = data.normalize(splits.train_x[:size], splits.mean, splits.std)
        labels = splits.train_y[:size]
        if world > 1:  # the slice this rank trains on, as in train_one_epoch
            images, labels = images.tensor_split(world)[rank], labels.tensor_split(world)[rank]
        with autocast():
            logits = trained(images.contiguous(memory_format=memory_format))
            ce = F.cross_entropy(logits.float(), labels)
        ce.backward()
    _synchronize(device)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        for name, value in model.named_buffers():
            value.copy_(buffers[name])
    for parameter in model.parameters():
        parameter.grad = None
    torch.set_rng_state(cpu_rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng, device)
    return seconds


@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor, mean, std, batch_size: int,
             autocast, memory_format) -> Dict[str, Optional[float]]:
    """Mean cross-entropy and accuracy on uint8 images; None for an empty split."""
    if len(labels) == 0:
        return {"loss": None, "acc": None}
    model.eval()
    sums = torch.zeros(2, device=images.device, dtype=torch.float64)
    for x, y in zip(images.split(batch_size), labels.split(batch_size)):
        x = data.normalize(x, mean, std).contiguous(memory_format=memory_format)
        with autocast():
            logits = model(x).float()
        sums[0] += F.cross_entropy(logits, y, reduction="sum")
        sums[1] += (logits.argmax(1) == y).sum()
    loss_sum, correct = sums.tolist()
    return {"loss": loss_sum / len(labels), "acc": correct / len(labels)}


def measure_model(model, probe: torch.Tensor, trial_id: str, epoch: int):
    """Layer rows (weights and feature maps) at ``epoch`` and their ``trials`` aggregates."""
    model.eval()
    weights = measures.layer_rows(model, include_linear=True)
    features = measures.feature_map_rows(model, probe)
    # A conv's feature-map similarity belongs on its own row; activations get rows of their own.
    rows = [dict(r) for r in weights]
    index = {r["layer"]: i for i, r in enumerate(rows)}
    for r in features:
        if r["kind"] == "conv" and r["layer"] in index:
            rows[index[r["layer"]]].update(fm_sim=r["fm_sim"], dead_channels=r["dead_channels"])
        else:
            rows.append(r)
    rows = [{"trial_id": trial_id, "epoch": epoch, **r} for r in rows]
    return rows, measures.summarize(weights, features)


# ---------------------------------------------------------------------- checkpoints
def save_checkpoint(directory: str, state: Dict[str, Any]) -> None:
    torch.save(state, os.path.join(directory, CHECKPOINT_FILE))


def load_checkpoint(directory: str) -> Dict[str, Any]:
    path = os.path.join(directory, CHECKPOINT_FILE)
    if not os.path.exists(path):
        raise ValueError(f"resume_from={directory!r} holds no {CHECKPOINT_FILE}")
    return torch.load(path, map_location="cpu", weights_only=False)


# ---------------------------------------------------------------------- the trial
def train_and_measure(config: Union[dict, TrialConfig], report: Optional[Report] = None,
                      resume_from: Optional[str] = None) -> TrialRecord:
    """Train one configuration and measure it.

    Args:
        config: a flat dict of trial keys (validated by ``TrialConfig.from_dict``) or a config.
        report: called once per epoch as ``report(epoch_row, checkpoint_dir_or_None)``; the
            directory (a temporary one, valid during the call) holds ``state.pt`` every
            ``checkpoint_every`` epochs and on the last.
        resume_from: a directory handed to ``report`` earlier; training continues after its epoch.
    Returns:
        a ``TrialRecord`` with status ``completed`` or ``diverged`` (a NaN or infinite loss stops
        training; everything measured until then is kept).
    """
    cfg = config if isinstance(config, TrialConfig) else TrialConfig.from_dict(config)
    started_at = datetime.now(timezone.utc)
    wall_start = time.perf_counter()
    device = resolve_device(cfg.device)
    rank, world = distributed_rank_world()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the {world} data-parallel "
                         "workers (batch_size is the global batch)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)  # model init and dropout; data order has its own generator

    splits = data.load(cfg.dataset, device=device, seed=cfg.seed, train_size=cfg.train_size,
                       val_size=cfg.val_size, test_size=cfg.test_size, data_path=cfg.data_path,
                       data_root=cfg.data_root, download=cfg.download,
                       num_classes=cfg.num_classes, image_size=cfg.image_size)
    model = models.build(cfg.model, cfg.depth, cfg.width, splits.num_classes,
                         **_model_options(cfg)).to(device)
    initialize(model, cfg)
    num_params = sum(p.numel() for p in model.parameters())
    reg = regularizers.get(cfg.regularizer, **cfg.regularizer_params())
    penalty_fn = lambda: reg.penalty(model, reduction=cfg.penalty_reduction,  # noqa: E731
                                     include_linear=cfg.regularize_linear)

    cuda = device.type == "cuda"
    # channels_last: faster convolutions on CUDA and, measured here, on the CPU too (ResNet-20
    # training 575 vs 459 img/s on 2 cores, interleaved runs).
    memory_format = torch.channels_last
    model = model.to(memory_format=memory_format)
    precision = resolve_precision(cfg.precision, device)
    bf16 = precision == "bf16"
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    eval_batch = eval_batch_size(cfg.eval_batch_size, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                nesterov=cfg.nesterov, weight_decay=cfg.weight_decay,
                                foreach=True)
    trained = model  # the module that sees the batches (DDP and compile wrap it)
    if world > 1:
        if cuda:
            trained = nn.SyncBatchNorm.convert_sync_batchnorm(trained)
        trained = nn.parallel.DistributedDataParallel(trained)
    if cfg.compile:
        # A fresh start per trial: a process running many trials would otherwise meet dynamo's
        # recompile limit and silently train eagerly, and compile_time_s would depend on history.
        torch._dynamo.reset()
        trained = torch.compile(trained)

    subset = robustness.fixed_subset(len(splits.test_y), cfg.robustness_test_size,
                                     cfg.robustness_seed).to(device)
    probe = data.normalize(splits.test_x[subset[: cfg.probe_size]], splits.mean, splits.std)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    steps_per_epoch = max(1, math.ceil(len(splits.train_y) / cfg.batch_size))
    epoch_rows: List[Dict[str, Any]] = []
    layer_rows: List[Dict[str, Any]] = []
    start_epoch, step, train_time_s, compile_time_s = 0, 0, 0.0, None
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        reg.load_state_dict(state["regularizer"])
        torch.set_rng_state(state["cpu_rng"])
        if cuda and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
        epoch_rows, layer_rows = state["epochs"], state["layers"]
        step, train_time_s = state["step"], state["train_time_s"]
        compile_time_s = state.get("compile_time_s")
        start_epoch = state["epoch"] + 1
    if cfg.compile and start_epoch < cfg.epochs:  # every process compiles anew: the times add up
        compile_time_s = (compile_time_s or 0.0) + warm_up_compiled(
            trained, model, splits, cfg, autocast=autocast, rank=rank, world=world,
            memory_format=memory_format)

    status, error = "completed", None
    for epoch in range(start_epoch, cfg.epochs):
        coefficient = coefficient_at(epoch, coefficient=cfg.coefficient,
                                     schedule=cfg.coefficient_schedule, epochs=cfg.epochs)
        lr = lr_at(step, lr=cfg.lr, schedule=cfg.lr_schedule, steps_per_epoch=steps_per_epoch,
                   epochs=cfg.epochs, milestones=cfg.lr_milestones, gamma=cfg.lr_gamma,
                   warmup_epochs=cfg.warmup_epochs)
        _synchronize(device)
        epoch_start = time.perf_counter()
        train = train_one_epoch(trained, optimizer, penalty_fn, splits, cfg, epoch=epoch, step=step,
                                steps_per_epoch=steps_per_epoch, coefficient=coefficient,
                                generator=generator, autocast=autocast, rank=rank, world=world,
                                memory_format=memory_format)
        _synchronize(device)
        epoch_time_s = time.perf_counter() - epoch_start
        train_time_s += epoch_time_s
        step = train["step"]
        row = {"trial_id": cfg.trial_id, "epoch": epoch, "train_loss": train["train_loss"],
               "reg_loss": train["reg_loss"], "train_acc": train["train_acc"], "lr": lr,
               "coefficient": coefficient, "epoch_time_s": epoch_time_s, "elapsed_s": train_time_s,
               "images_per_s": len(splits.train_y) / epoch_time_s}
        if not train["finite"]:
            status, error = "diverged", f"non-finite training loss in epoch {epoch}"
            row.update(val_loss=None, val_acc=None, test_loss=None, test_acc=None)
            epoch_rows.append(row)
            if report is not None:
                report(row, None)
            break
        evaluation = {split: evaluate(model, x, y, splits.mean, splits.std, eval_batch,
                                      autocast, memory_format)
                      for split, x, y in (("val", splits.val_x, splits.val_y),
                                          ("test", splits.test_x, splits.test_y))}
        for split, result in evaluation.items():
            row[f"{split}_loss"], row[f"{split}_acc"] = result["loss"], result["acc"]
        epoch_rows.append(row)
        if cfg.measure_every and (epoch + 1) % cfg.measure_every == 0 and epoch + 1 < cfg.epochs:
            layer_rows += measure_model(model, probe, cfg.trial_id, epoch)[0]
        if report is not None:
            due = cfg.checkpoint_every and ((epoch + 1) % cfg.checkpoint_every == 0
                                            or epoch + 1 == cfg.epochs)
            if due and rank == 0:
                with tempfile.TemporaryDirectory(prefix="korth-ckpt-") as directory:
                    save_checkpoint(directory, {
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(), "cpu_rng": torch.get_rng_state(),
                        "regularizer": reg.state_dict(),
                        "cuda_rng": torch.cuda.get_rng_state() if cuda else None,
                        "epoch": epoch, "step": step, "epochs": epoch_rows, "layers": layer_rows,
                        "train_time_s": train_time_s, "compile_time_s": compile_time_s,
                        "config": cfg.to_dict()})
                    report(row, directory)
            else:
                report(row, None)

    robustness_rows: List[Dict[str, Any]] = []
    final_measures: Dict[str, Any] = {}
    if status == "completed":
        rows, final_measures = measure_model(model, probe, cfg.trial_id, cfg.epochs - 1)
        layer_rows += rows
        if cfg.robustness:
            classify = make_classifier(model, splits.mean, splits.std, device, autocast)
            robustness_rows = [{"trial_id": cfg.trial_id, **r} for r in robustness.evaluate_robustness(
                classify, splits.test_x[subset], splits.test_y[subset],
                corruptions=cfg.robustness_corruptions, severities=cfg.robustness_severities,
                attacks=cfg.robustness_attacks, eps_255=cfg.robustness_pgd_eps,
                pgd_steps=cfg.robustness_pgd_steps, pgd_step_ratio=cfg.robustness_pgd_step_ratio,
                seed=cfg.robustness_seed, batch_size=eval_batch)]
            final_measures.update(robustness.summarize(robustness_rows))

    last = epoch_rows[-1] if epoch_rows else {}
    summary = {
        "trial_id": cfg.trial_id, "status": status, "error": error, **cfg.to_row(),
        "num_params": num_params, "epochs_completed": sum(r["test_acc"] is not None for r in epoch_rows),
        "test_acc": last.get("test_acc"), "test_loss": last.get("test_loss"),
        "val_acc": last.get("val_acc"),
        **convergence_summary([r["test_acc"] for r in epoch_rows if r["test_acc"] is not None],
                              [r["elapsed_s"] for r in epoch_rows if r["test_acc"] is not None],
                              cfg.convergence_thresholds),
        **final_measures,
        "wall_time_s": time.perf_counter() - wall_start, "train_time_s": train_time_s,
        "compile_time_s": compile_time_s, "precision_resolved": precision, **provenance(device), "config_hash": cfg.config_hash,
        "started_at": started_at.isoformat(), "finished_at": datetime.now(timezone.utc).isoformat(),
    }
    return TrialRecord(cfg, summary, epoch_rows, layer_rows, robustness_rows)


def _model_options(cfg: TrialConfig) -> Dict[str, Any]:
    options: Dict[str, Any] = {"dropout": cfg.dropout}
    if cfg.shortcut is not None:
        options["shortcut"] = cfg.shortcut
    return options


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
