"""The report's figures (matplotlib, Agg, no display), one PNG each.

`figures(result, notice)` draws, from what `korth_bench.analysis.analyze` returns:
`gain_vs_capacity` (gain in final test accuracy over the baseline vs parameters, or depth where
the tables lack them, with t-interval bands and x for a missing cell), `learning_curves` (test
accuracy per epoch per cell, t bands), `robustness` (accuracy per corruption severity or attack
eps per family) and `orthogonality_vs_similarity` (one point per completed trial, with the cell's
Spearman rho). A figure without data says what is missing; with synthetic data every figure title
carries the notice. `png_bytes` renders one figure.
"""
from __future__ import annotations

import io
import math
import textwrap
from typing import Dict, List, Optional

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from korth_bench.analysis import claims, entries
from korth_bench.report.formatting import cell_name, keyed_rows, number_text


def figures(result: dict, notice: Optional[str]) -> Dict[str, Figure]:
    """The report's figures by file stem; a figure without data says what is missing."""
    regularizers = sorted(result["grid"]["regularizer"].unique())
    colors = {name: f"C{index % 10}" for index, name in enumerate(regularizers)}
    return {"gain_vs_capacity": gain_figure(result, colors, notice),
            "learning_curves": curves_figure(result, colors, notice),
            "robustness": robustness_figure(result, colors, notice),
            "orthogonality_vs_similarity": similarity_figure(result, colors, notice)}


def _grid(panels: int, title: str, notice: Optional[str]):
    columns = max(1, min(4, panels))
    rows = max(1, math.ceil(panels / columns))
    width = max(7.0, 4.2 * columns)
    figure = Figure(figsize=(width, 3.4 * rows + 0.8), layout="constrained")
    FigureCanvasAgg(figure)
    heading = textwrap.fill(title, int(width * 11))
    figure.suptitle(heading + (f"\n{notice.upper()}" if notice else ""), fontsize=11)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, axes


def _empty(title: str, message: str, notice: Optional[str]) -> Figure:
    figure, (axis,) = _grid(1, title, notice)
    axis.text(0.5, 0.5, message, ha="center", va="center", transform=axis.transAxes)
    axis.set_axis_off()
    return figure


def gain_figure(result: dict, colors: dict, notice: Optional[str]) -> Figure:
    gains = result["gains"]
    gains = gains[gains["metric"] == "test_acc"] if len(gains) else gains
    title = "Gain in final test accuracy over the baseline vs model size (mean, t-interval band)"
    if gains.empty:
        return _empty(title, "no regularizer besides the baseline", notice)
    families = list(gains.groupby(list(entries.FAMILY)))
    figure, axes = _grid(len(families), title, notice)
    for axis, ((dataset, model), family) in zip(axes, families):
        # parameter counts on a log axis; depth where the tables lack them
        x = "num_params" if np.isfinite(family["num_params"]).all() else "depth"
        for regularizer, part in family.groupby("regularizer"):
            part = part.sort_values(x)
            measured = part[part["status"] == "measured"]
            label = f"{regularizer} (n={_n_range(measured['n'])})"
            axis.plot(measured[x], 100 * measured["mean"], "o-", color=colors[regularizer],
                      label=label)
            axis.fill_between(measured[x], 100 * measured["low"], 100 * measured["high"],
                              color=colors[regularizer], alpha=0.15)
            missing = part[part["status"] != "measured"]
            axis.plot(missing[x], np.zeros(len(missing)), "x", markersize=10,
                      color=colors[regularizer])
        missing = family[family["status"] != "measured"]
        for position, here in missing.groupby(x):
            lines = sorted({"no baseline" if status == "missing baseline" else f"{name}: no runs"
                            for name, status in zip(here["regularizer"], here["status"])})
            axis.annotate("\n".join(lines), (position, 0), textcoords="offset points",
                          xytext=(0, 8), ha="center", fontsize=7, color="#b00020")
        axis.axhline(0, color="grey", linewidth=0.8)
        axis.set_xscale("log" if x == "num_params" else "linear")
        # one tick per cell, so that the trend reads against the cells actually measured
        cells = np.sort(family[x].unique())
        axis.set_xticks(cells, [f"{v / 1e3:.0f}k" if x == "num_params" else f"{v:g}"
                                for v in cells], minor=False, rotation=45, fontsize=8)
        axis.set_xticks([], minor=True)
        axis.margins(x=0.12)
        axis.set_title(f"{model} ({dataset})", fontsize=9)
        axis.set_xlabel(f"{'parameters' if x == 'num_params' else 'depth'} (x: missing cell)")
        axis.set_ylabel("gain (pp)")
        _legend(axis, beside=True)
    return figure


def _cell_panels(result: dict, frame: pd.DataFrame) -> List[tuple]:
    """(cell key, the frame's rows of that cell, regularizers without completed runs there) for
    every cell of the sweep, so that a cell or regularizer with no data still gets said."""
    keys = list(entries.CELL)
    rows = dict(list(frame.groupby(keys)))
    return [(key, rows.get(key, frame.iloc[0:0]),
             sorted(grid.loc[grid["n_completed"] == 0, "regularizer"]))
            for key, grid in result["grid"].groupby(keys)]


def _note_absent(axis, absent: List[str]) -> None:
    if absent:
        axis.text(0.02, 0.02, "no completed runs: " + ", ".join(absent), fontsize=7,
                  color="#b00020", transform=axis.transAxes)


def _legend(axis, beside: bool = False) -> None:
    """The panel's legend; `beside` puts it right of the panel, off the data it names."""
    if axis.get_legend_handles_labels()[0]:
        placement = dict(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False) if beside else {}
        axis.legend(fontsize=7, **placement)


def _n_range(counts: pd.Series) -> str:
    if counts.empty:
        return "0"
    low, high = int(counts.min()), int(counts.max())
    return str(low) if low == high else f"{low}-{high}"


def curves_figure(result: dict, colors: dict, notice: Optional[str]) -> Figure:
    curves = result["curves"]
    title = "Test accuracy per epoch (mean over seeds, t-interval band)"
    if curves.empty:
        return _empty(title, "no epochs rows in these results", notice)
    cells = _cell_panels(result, curves)
    figure, axes = _grid(len(cells), title, notice)
    for axis, (key, cell, absent) in zip(axes, cells):
        _note_absent(axis, absent)
        for regularizer, part in cell.groupby("regularizer"):
            axis.plot(part["epoch"], 100 * part["mean"], color=colors[regularizer],
                      label=f"{regularizer} (n={_n_range(part['n'])})")
            axis.fill_between(part["epoch"], 100 * part["low"], 100 * part["high"],
                              color=colors[regularizer], alpha=0.15)
        axis.set_title(cell_name(dict(zip(entries.CELL, key))), fontsize=9)
        axis.set_xlabel("epoch (0-based)")
        axis.set_ylabel("test accuracy (%)")
        _legend(axis)
    return figure


def robustness_figure(result: dict, colors: dict, notice: Optional[str]) -> Figure:
    profile = result["robustness"]
    title = "Accuracy under corruptions and attacks (mean over a family's entry runs, t band)"
    if profile.empty:
        return _empty(title, "no robustness rows in these results", notice)
    panels = list(profile.groupby(list(entries.FAMILY) + ["kind", "name"]))
    figure, axes = _grid(len(panels), title, notice)
    for axis, ((dataset, model, kind, name), panel) in zip(axes, panels):
        for regularizer, part in panel.groupby("regularizer"):
            part = part.sort_values("severity")
            axis.errorbar(part["severity"], 100 * part["mean"],
                          yerr=[100 * (part["mean"] - part["low"]).fillna(0),
                                100 * (part["high"] - part["mean"]).fillna(0)],
                          marker="o", capsize=3, color=colors[regularizer],
                          label=f"{regularizer} (n={_n_range(part['n'])})")
        axis.set_title(f"{name} ({kind}), {model} ({dataset})", fontsize=9)
        axis.set_xlabel("eps (k/255)" if kind == "attack" else "severity")
        axis.set_ylabel("accuracy (%)")
        _legend(axis)
    return figure


def similarity_figure(result: dict, colors: dict, notice: Optional[str]) -> Figure:
    x, y = claims.SIMILARITY_PAIRS[0]
    title = f"{y} vs {x}, one point per completed trial"
    trials = result["completed"]
    if x not in trials or y not in trials or trials[[x, y]].dropna().empty:
        return _empty(title, f"no {x} / {y} values in these results", notice)
    rho = keyed_rows(result["similarity"], list(entries.CELL) + ["x", "y"])
    cells = _cell_panels(result, trials)
    figure, axes = _grid(len(cells), title, notice)
    for axis, (key, cell, absent) in zip(axes, cells):
        _note_absent(axis, absent)
        for regularizer, part in cell.groupby("regularizer"):
            axis.scatter(part[x], part[y], s=14, color=colors[regularizer], label=regularizer)
        stat = rho.get(tuple(key) + (x, y))
        text = (f"rho {number_text(stat['rho'], 2, True)} [{number_text(stat['low'], 2, True)}, "
                f"{number_text(stat['high'], 2, True)}], n={stat['n']}") if stat else "rho n/a"
        axis.set_title(f"{cell_name(dict(zip(entries.CELL, key)))}\nSpearman {text}", fontsize=9)
        axis.tick_params(axis="x", labelrotation=30)
        axis.set_xlabel(x)
        axis.set_ylabel(y)
        _legend(axis)
    return figure


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG file contents: 90 dpi, on white, reduced to a 256-colour palette
    without dithering (line plots use few colours; the file is 3-4x smaller, and the HTML page,
    which embeds every figure, with it)."""
    rendered = io.BytesIO()
    figure.savefig(rendered, format="png", dpi=90, facecolor="white")
    image = Image.open(rendered).convert("RGB").quantize(
        colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
