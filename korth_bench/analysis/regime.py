"""The regime a verdict covers: what was tested, in one phrase.

A verdict on a capacity trend holds for the cells, data and training budget that produced it,
and for a baseline trained as far as it was. ``tested_regime`` states that range, for example
"75 k-1.07 M parameters (ResNet-8 to -20, widths 1-2; 9,000 images, 20 epochs; baseline
67.5-76.2 % test, 72.2-87.3 % train)": the parameter counts of the smallest and the largest
cell, the depths and widths, the images trained on (``train_size``; when it is 0, the data set's
training images less the validation split held out of them), the epochs of the compared runs, and the range over cells of the baseline's mean final
test and train accuracy (train accuracy as the epochs table records it: the last epoch's
running accuracy over its augmented batches).
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import pandas as pd

from korth_bench.analysis.convergence import final_epoch_values
from korth_bench.analysis.entries import BASELINE

TRAINING_SET = {"cifar10": 50_000, "cifar100": 50_000, "packed": 50_000, "synthetic": 2_000}
"""Training images a data set has when ``train_size`` is 0 (all)."""
MODEL_NAMES = {"resnet": "ResNet", "wrn": "WRN", "plain": "plain CNN"}


def params_phrase(value: float) -> str:
    """A parameter count as the READMEs write it: 75290 -> '75 k', 1073962 -> '1.07 M' (a
    million from 999,500 on, so no '1000 k'); 'n/a' when missing."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value / 1e3:.0f} k" if value < 999_500 else f"{value / 1e6:.2f} M"


def _span(values, unit: str = "") -> str:
    low, high = min(values), max(values)
    return f"{low:g}{unit}" if low == high else f"{low:g}-{high:g}{unit}"


def tested_regime(runs: pd.DataFrame, epochs: pd.DataFrame,
                  baseline: str = BASELINE) -> Optional[Dict[str, object]]:
    """The range the completed entry runs ``runs`` cover (module docstring): a dict with text,
    params_min, params_max, depths, widths, train_images, epochs, baseline_test (min, max of the
    cells' mean final test accuracy, fractions), baseline_train (the same for train accuracy);
    None without runs."""
    if runs.empty:
        return None
    params = runs.groupby(["dataset", "model", "depth", "width"])["num_params"].median()
    full = runs["dataset"].map(TRAINING_SET).fillna(50_000)
    column = lambda name: (pd.to_numeric(runs[name], errors="coerce").fillna(0)  # noqa: E731
                           if name in runs else pd.Series(0, index=runs.index))
    images = column("train_size").where(column("train_size") > 0,
                                        full - column("val_size")).astype(int)
    base = runs[runs["regularizer"] == baseline]
    train = final_epoch_values(epochs, "train_acc")
    base = base.assign(train_acc=base["trial_id"].map(train) if len(train) else math.nan)
    by_cell = base.groupby(["dataset", "model", "depth", "width"])[["test_acc", "train_acc"]].mean()
    models = sorted(runs["model"].unique())
    depths, widths = sorted(runs["depth"].unique()), sorted(runs["width"].unique())
    model_text = ", ".join(MODEL_NAMES.get(m, m) for m in models)
    depth_text = (f"{model_text}-{depths[0]}" if len(depths) == 1
                  else f"{model_text}-{depths[0]} to -{depths[-1]}")
    width_text = (f"width {widths[0]:g}" if len(widths) == 1
                  else f"widths {_span(widths)}")
    budget = sorted(runs["epochs"].unique())
    found = {"params_min": float(params.min()), "params_max": float(params.max()),
             "depths": [int(d) for d in depths], "widths": [float(w) for w in widths],
             "train_images": sorted(int(i) for i in images.unique()),
             "epochs": [int(e) for e in budget],
             "baseline_test": (float(by_cell["test_acc"].min()), float(by_cell["test_acc"].max()))
             if len(by_cell) else (math.nan, math.nan),
             "baseline_train": (float(by_cell["train_acc"].min()),
                                float(by_cell["train_acc"].max()))
             if len(by_cell) and by_cell["train_acc"].notna().any() else (math.nan, math.nan)}
    accuracy = lambda pair, what: (  # noqa: E731
        "" if math.isnan(pair[0]) else
        f"{_span([round(100 * pair[0], 1), round(100 * pair[1], 1)])} % {what}")
    baseline_text = ", ".join(t for t in (accuracy(found["baseline_test"], "test"),
                                          accuracy(found["baseline_train"], "train")) if t)
    counts = found["train_images"]
    images_text = (f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,} to {counts[-1]:,}")
    found["text"] = (
        f"{params_phrase(found['params_min'])}-{params_phrase(found['params_max'])} parameters "
        f"({depth_text}, {width_text}; {images_text} images, {_span(found['epochs'])} epochs"
        + (f"; baseline {baseline_text}" if baseline_text else "") + ")")
    return found
