"""Numbers and names as report text: metric names and units, levels, gains, p-values, cells.

Shared by `korth_bench.report.documents` (tables, Markdown, HTML, JSON) and `korth_bench.report.plots` (titles),
so that a number prints the same way in every file of the report; missing values print "n/a".
"""
from __future__ import annotations

import math
import re
from typing import Dict, Sequence

import numpy as np
import pandas as pd

from korth_bench.analysis.regime import params_phrase

METRIC_NAMES = {"test_acc": "final test accuracy",
                "best_test_acc": "best test accuracy over epochs",
                "clean_acc": "clean accuracy (robustness subset)",
                "corruption_acc_mean": "mean corruption accuracy",
                "accuracy_auc": "mean test accuracy over epochs",
                "epochs_to_90pct_best": "epochs to 90 % of best",
                "epochs_to_95pct_best": "epochs to 95 % of best"}


def metric_name(metric: str) -> str:
    """Readable name of a trials metric column."""
    attack = re.fullmatch(r"(fgsm|pgd)_acc_(\d+)_255", metric)
    if attack:
        return f"{attack.group(1).upper()} accuracy at eps {attack.group(2)}/255"
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


def metric_units(metric: str) -> tuple:
    """(scale, unit of a level, unit of a gain): accuracies print in % and accuracy points (pt,
    percentage points, as the READMEs write them)."""
    if metric.startswith("epochs_to_"):
        return 1.0, "epochs", "epochs"
    if metric.startswith("seconds_to_"):
        return 1.0, "s", "s"
    return 100.0, "%", "pt"


def number_text(value: float, digits: int = 2, signed: bool = False) -> str:
    """'0.12' / '+0.12' (signed); 'n/a' for a missing value, '+inf' / '-inf' for an infinite one;
    a value that rounds to zero prints unsigned ('0.00', never '-0.00' or '+0.00')."""
    if value is None or np.isnan(value):
        return "n/a"
    if np.isinf(value):
        return "+inf" if value > 0 else "-inf"
    if round(float(value), digits) == 0:
        return f"{0:.{digits}f}"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def p_text(value: float) -> str:
    """A p-value to three decimals, '<0.001' below that, 'n/a' when not finite."""
    return "n/a" if not np.isfinite(value) else "<0.001" if value < 0.001 else f"{value:.3f}"


def gain_p_text(row, alpha: float) -> str:
    """'0.012 (t); exact 0.250, smallest attainable 0.250' from a gains row: the t p that goes
    with the interval, the distribution-free one beside it, and its floor when above alpha."""
    text = f"{p_text(row.get('p_value', math.nan))} (t); exact {p_text(row.get('p_exact', math.nan))}"
    floor = row.get("min_attainable_p", math.nan)
    if np.isfinite(floor) and floor > alpha:
        text += f", smallest attainable {p_text(floor)}"
    return text


def level_text(row, metric: str) -> str:
    """'91.20 % ± 0.31 sd (3/3 seeds)' from a scores row (mean, sd, n) and the expected seeds."""
    scale, unit, _ = metric_units(metric)
    return (f"{number_text(row['mean'] * scale)} {unit} ± {number_text(row['sd'] * scale)} sd "
            f"({int(row['n'])}/{int(row['n_seeds_expected'])} seeds)")


def gain_text(row, metric: str) -> str:
    """'+0.45 pt [-0.10, +1.00], paired, n=3' from a gains row; missing rows say so."""
    if row["status"] != "measured":
        return row["status"]
    scale, _, unit = metric_units(metric)
    if row["low"] == row["high"]:  # every seed gave the same gain: a t interval would read as certainty
        interval = "[no seed spread: interval undefined]"
    else:
        interval = (f"[{number_text(row['low'] * scale, signed=True)}, "
                    f"{number_text(row['high'] * scale, signed=True)}]")
    return (f"{number_text(row['mean'] * scale, signed=True)} {unit} {interval}, {row['pairing']}, "
            f"n={int(row['n'])}")


def model_label(model: str, depth, width) -> str:
    """'resnet-20x1': the one spelling of a model cell's architecture in every table and figure."""
    return f"{model}-{depth}x{width}"


def cell_name(row) -> str:
    """'resnet-20x1 (cifar10)' for a row with the CELL columns."""
    return f"{model_label(row['model'], row['depth'], row['width'])} ({row['dataset']})"


def params_text(value: float) -> str:
    """A parameter count in millions ('0.27 M'); 'n/a' when not finite."""
    return "n/a" if not np.isfinite(value) else f"{value / 1e6:.2f} M"


def params_range(low: float, high: float) -> str:
    """'75 k-1.07 M parameters (14x)': a capacity range with its ratio."""
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0:
        return "n/a parameters"
    return f"{params_phrase(low)}-{params_phrase(high)} parameters ({high / low:.0f}x)"


def points_text(fraction: float, digits: int = 2, signed: bool = True) -> str:
    """An accuracy difference stored as a fraction, in points: 0.0123 -> '+1.23'."""
    return number_text(100 * fraction if fraction is not None else math.nan, digits, signed)


def interval_text(low: float, high: float, digits: int = 2) -> str:
    """'[-0.40, +0.39]' for an interval of fractions, in points."""
    return f"[{points_text(low, digits)}, {points_text(high, digits)}]"


def bound_text(claimed_drop: float) -> str:
    """'±1 pt' for an equivalence bound stored as a fraction (0.01)."""
    return f"±{100 * claimed_drop:.3g} pt"


def arms_text(arms: Sequence[str]) -> str:
    """Entry labels in short: 'so, dn, srip [sum]' for 'so [penalty_reduction=sum]', ... when
    they share their arm values; 'so [sum], dn [mean]' when not; plain names stay plain."""
    short = []
    for label in arms:
        name, _, rest = label.partition(" [")
        values = (", ".join(part.split("=", 1)[-1] for part in rest.rstrip("]").split(", "))
                  if rest else "")
        short.append((name, values))
    if len({values for _, values in short}) == 1:
        values = short[0][1] if short else ""
        return ", ".join(name for name, _ in short) + (f" [{values}]" if values else "")
    return ", ".join(name + (f" [{values}]" if values else "") for name, values in short)


def keyed_rows(frame: pd.DataFrame, keys: Sequence[str]) -> Dict[tuple, dict]:
    """The frame's rows as dicts, keyed by the tuple of their `keys` columns."""
    return {tuple(row[k] for k in keys): row for row in frame.to_dict("records")}
