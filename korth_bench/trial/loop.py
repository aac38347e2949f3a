"""The trial loop: train one configuration and measure it completely. Never imports Ray.

``train_and_measure`` reads top to bottom: config -> seed -> data -> model -> regularizer ->
optimizer -> per epoch (train, evaluate, report) -> layer measures, feature-map similarity,
robustness -> the rows of the four tables. The loss is ``CE + lambda(epoch) * sum_layers R(W)``.
Ray Tune, ``korth-bench train`` and tests all call it with their own ``report(metrics,
checkpoint_dir)`` callback.
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from korth_bench import data, measures, models, regularizers
from korth_bench.config import TrialConfig
from korth_bench.protocol import trial_identity
from korth_bench.errors import ConfigError
from korth_bench.trial import checkpoint, progress, robustness
from korth_bench.trial.precision import bf16_kernels, kernel_path, resolve_precision
from korth_bench.trial.provenance import provenance
from korth_bench.trial.schedules import coefficient_at, lr_at
from korth_bench.trial.summary import trial_row

Report = Callable[[Dict[str, Any], Optional[str]], None]
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


@dataclass(frozen=True)
class Execution:
    """Where and how a trial's batches run."""
    device: torch.device
    bf16: bool = False                                  # bf16 autocast (the penalty stays fp32)
    # channels_last: faster convolutions on CUDA and, measured here, on the CPU too (ResNet-20
    # training 575 vs 459 img/s on 2 cores, interleaved runs).
    memory_format: torch.memory_format = torch.channels_last
    rank: int = 0                                       # this process's slice of each global batch
    world: int = 1                                      # data-parallel processes
    compiled: bool = False                              # torch.compile wraps the model

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def kernels(self):
        """The context the whole trial runs in: bf16 through float32 kernels on a CPU without
        native bf16 (``precision.bf16_kernels``), else nothing."""
        return bf16_kernels("bf16" if self.bf16 else "fp32", self.device, compile=self.compiled)


def run_trial(config: Union[dict, TrialConfig], report: Optional[Report] = None,
              resume_from: Optional[str] = None) -> Dict[str, Any]:
    """Train and measure one configuration.

    Args:
        config: a flat dict of trial keys (the fields of ``TrialConfig``; validated by ``TrialConfig.from_dict``).
        report: called once per epoch as ``report(epoch_row, checkpoint_dir_or_None)``.
        resume_from: a checkpoint directory handed to ``report`` earlier.
    Returns:
        the trial's ``trials`` row (status ``completed`` or ``diverged``).
    """
    return train_and_measure(config, report, resume_from).summary


# ---------------------------------------------------------------------- setup helpers
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA device is visible; use device=auto or cpu")
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


def make_classifier(model: nn.Module, mean, std, execution: Execution):
    """Logits for float images in [0, 1]: normalization inside, as the attacks need."""
    mean = torch.as_tensor(mean, dtype=torch.float32, device=execution.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=execution.device).view(1, -1, 1, 1)

    def classify(images01: torch.Tensor) -> torch.Tensor:
        with execution.autocast():
            return model((images01 - mean) / std).float()
    return classify


# ---------------------------------------------------------------------- epoch helpers
def steps_per_epoch(splits: data.DataSplits, cfg: TrialConfig) -> int:
    return max(1, math.ceil(len(splits.train_y) / cfg.batch_size))


def train_one_epoch(model, optimizer, penalty_fn, splits, cfg: TrialConfig, execution: Execution,
                    *, epoch: int, step: int, generator: torch.Generator) -> Dict[str, Any]:
    """One pass over the training images from global step ``step``. Sums stay on the device: one
    host sync per epoch."""
    model.train()
    rank, world = execution.rank, execution.world
    per_epoch = steps_per_epoch(splits, cfg)
    coefficient = coefficient_at(epoch, cfg)
    sums = torch.zeros(4, device=execution.device, dtype=torch.float64)  # ce*n, penalty, correct, n
    bar = progress.Bar(f"epoch {epoch + 1}/{cfg.epochs}", per_epoch)
    for images, labels in data.batches(splits.train_x, splits.train_y, cfg.batch_size, generator,
                                       augment=cfg.augment, shuffle=True, mean=splits.mean,
                                       std=splits.std):
        if world > 1:  # every rank draws the same global batch and keeps its own slice
            images, labels = images.tensor_split(world)[rank], labels.tensor_split(world)[rank]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg, per_epoch)
        images = images.contiguous(memory_format=execution.memory_format)
        with execution.autocast():
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
        bar.advance()
    bar.close()
    if world > 1:
        torch.distributed.all_reduce(sums)
        sums[1] /= world
    ce_sum, penalty_sum, correct, seen = sums.tolist()
    return {"train_loss": ce_sum / seen, "reg_loss": penalty_sum / per_epoch,
            "coefficient": coefficient, "train_acc": correct / seen, "step": step,
            "finite": math.isfinite(ce_sum + penalty_sum)}


def warm_up_compiled(trained, model, splits, cfg: TrialConfig, execution: Execution) -> float:
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
    device = execution.device
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
        if execution.world > 1:  # the slice this rank trains on, as in train_one_epoch
            images = images.tensor_split(execution.world)[execution.rank]
            labels = labels.tensor_split(execution.world)[execution.rank]
        with execution.autocast():
            logits = trained(images.contiguous(memory_format=execution.memory_format))
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
             execution: Execution) -> Dict[str, Optional[float]]:
    """Mean cross-entropy and accuracy on uint8 images; None for an empty split."""
    if len(labels) == 0:
        return {"loss": None, "acc": None}
    model.eval()
    sums = torch.zeros(2, device=images.device, dtype=torch.float64)
    for x, y in zip(images.split(batch_size), labels.split(batch_size)):
        x = data.normalize(x, mean, std).contiguous(memory_format=execution.memory_format)
        with execution.autocast():
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
        raise ConfigError(f"batch_size={cfg.batch_size} must be divisible by the {world} data-parallel "
                          "workers (batch_size is the global batch)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)  # model init and dropout; data order has its own generator

    splits = data.load(cfg.dataset, cfg.data_options(), device)
    model = models.build(cfg.model, cfg.depth, cfg.width, splits.num_classes,
                         dropout=cfg.dropout, shortcut=cfg.shortcut).to(device)
    initialize(model, cfg)
    num_params = sum(p.numel() for p in model.parameters())
    reg = regularizers.get(cfg.regularizer, **cfg.regularizer_params())
    penalty_fn = lambda: reg.penalty(model, reduction=cfg.penalty_reduction,  # noqa: E731
                                     include_linear=cfg.regularize_linear)

    precision = resolve_precision(cfg.precision, device)
    execution = Execution(device, bf16=precision == "bf16", rank=rank, world=world,
                          compiled=cfg.compile)
    model = model.to(memory_format=execution.memory_format)
    eval_batch = eval_batch_size(cfg.eval_batch_size, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                nesterov=cfg.nesterov, weight_decay=cfg.weight_decay,
                                foreach=True)
    trained = model  # the module that sees the batches (DDP and compile wrap it)
    if world > 1:
        if device.type == "cuda":
            trained = nn.SyncBatchNorm.convert_sync_batchnorm(trained)
        trained = nn.parallel.DistributedDataParallel(trained)
    if cfg.compile:
        # A fresh start per trial: a process running many trials would otherwise meet dynamo's
        # recompile limit and silently train eagerly, and compile_time_s would depend on history.
        torch._dynamo.reset()
        trained = torch.compile(trained)

    # Robustness subset and probe batch: the fixed subset of the whole test pool, drawn
    # independently of the trial seed and test_size, so every trial sees the same images.
    probe = data.normalize(splits.fixed_x[: cfg.probe_size], splits.mean, splits.std)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    objects = checkpoint.TrainingObjects(model, optimizer, reg, generator)
    progress = checkpoint.Progress(epoch=-1, step=0, epochs=[], layers=[], train_time_s=0.0)
    if resume_from is not None:
        progress = checkpoint.restore(resume_from, objects)
    # a resumed trial's wall time is its earlier processes' (up to the checkpoint) plus this one's
    wall_start -= progress.wall_time_s
    with execution.kernels():
        if cfg.compile and progress.epoch + 1 < cfg.epochs:  # every process compiles anew: times add up
            progress.compile_time_s = (progress.compile_time_s or 0.0) + warm_up_compiled(
                trained, model, splits, cfg, execution)

        status, error = "completed", None
        for epoch in range(progress.epoch + 1, cfg.epochs):
            lr = lr_at(progress.step, cfg, steps_per_epoch(splits, cfg))
            _synchronize(device)
            epoch_start = time.perf_counter()
            train = train_one_epoch(trained, optimizer, penalty_fn, splits, cfg, execution,
                                    epoch=epoch, step=progress.step, generator=generator)
            _synchronize(device)
            epoch_time_s = time.perf_counter() - epoch_start
            progress.train_time_s += epoch_time_s
            progress.step, progress.epoch = train["step"], epoch
            row = {"trial_id": cfg.trial_id, "epoch": epoch, "train_loss": train["train_loss"],
                   "reg_loss": train["reg_loss"], "train_acc": train["train_acc"], "lr": lr,
                   "coefficient": train["coefficient"], "epoch_time_s": epoch_time_s,
                   "elapsed_s": progress.train_time_s,
                   "images_per_s": len(splits.train_y) / epoch_time_s}
            if not train["finite"]:
                status, error = "diverged", f"non-finite training loss in epoch {epoch}"
                row.update(val_loss=None, val_acc=None, test_loss=None, test_acc=None)
                progress.epochs.append(row)
                if report is not None:
                    report(row, None)
                break
            evaluation = {split: evaluate(model, x, y, splits.mean, splits.std, eval_batch, execution)
                          for split, x, y in (("val", splits.val_x, splits.val_y),
                                              ("test", splits.test_x, splits.test_y))}
            for split, result in evaluation.items():
                row[f"{split}_loss"], row[f"{split}_acc"] = result["loss"], result["acc"]
            progress.epochs.append(row)
            if cfg.measure_every and (epoch + 1) % cfg.measure_every == 0 and epoch + 1 < cfg.epochs:
                progress.layers += measure_model(model, probe, cfg.trial_id, epoch)[0]
            if report is not None:
                due = cfg.checkpoint_every and ((epoch + 1) % cfg.checkpoint_every == 0
                                                or epoch + 1 == cfg.epochs)
                if due and rank == 0:
                    progress.wall_time_s = time.perf_counter() - wall_start
                    with tempfile.TemporaryDirectory(prefix="korth-ckpt-") as directory:
                        checkpoint.save(directory, objects, progress, cfg.to_dict())
                        report(row, directory)
                else:
                    report(row, None)

        robustness_rows: List[Dict[str, Any]] = []
        measured: Dict[str, Any] = {"num_params": num_params}
        if status == "completed":
            rows, final_measures = measure_model(model, probe, cfg.trial_id, cfg.epochs - 1)
            progress.layers += rows
            measured.update(final_measures)
            if cfg.robustness:
                classify = make_classifier(model, splits.mean, splits.std, execution)
                robustness_rows = [{"trial_id": cfg.trial_id, **r} for r in robustness.evaluate_robustness(
                    classify, splits.fixed_x[: cfg.robustness_test_size],
                    splits.fixed_y[: cfg.robustness_test_size], cfg.robustness_options(), eval_batch)]
                measured.update(robustness.summarize(robustness_rows))

    summary = trial_row(cfg, status, error, progress.epochs, measured=measured,
                        run={"wall_time_s": time.perf_counter() - wall_start,
                             "compile_time_s": progress.compile_time_s,
                             "precision_resolved": precision, **provenance(device),
                             "kernel_path": kernel_path(precision, device, compile=cfg.compile),
                             **trial_identity(cfg.data_path, splits.indices),
                             "started_at": started_at.isoformat()})
    return TrialRecord(cfg, summary, progress.epochs, progress.layers, robustness_rows)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
