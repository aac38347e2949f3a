"""The report's figures (matplotlib, Agg, no display), one SVG each.

`figures(result, notice)` draws, from what `korth_bench.analysis.analyze` returns:
`gain_vs_capacity`, the headline: with a declared primary contrast (``settings['primary']``),
its pooled gain per cell with its interval on log2 parameters (the cells named on the axis), the
fitted line of the collapse test with its confidence band and, in grey, the equivalence region
(the fitted gain at the smallest cell +- the claimed drop) (`primary_figure`); the per-arm
panels then follow as `gain_by_arm`; without a primary contrast the per-arm panels are the
headline. The other figures are small multiples, one column of panels per arm (each regularizer
other than the baseline; the baseline alone where it is the only one), sharing their axes, the
baseline in grey in every panel it belongs to: `gain_by_arm` (one row per family: the gain in
final test accuracy per cell with its t interval, the arm's collapse line with its slope's
interval as a wedge through the cell means' centroid, and dashed grey lines whose drop over the
range is +-claimed_drop; x for a missing cell), `learning_curves` (one row per cell: test
accuracy per epoch, t bands), `robustness` (one row per corruption or attack: accuracy per
severity or eps, the clean accuracy at 0) and `orthogonality_vs_similarity` (one panel per cell,
since its Spearman rho is taken over every trial of the cell; one point per completed trial).
Bands are clipped to the metric's range, epochs and severities get integer ticks, legends sit
outside the panels and list only what is drawn. A figure without data is no image: its `Plot`
carries a one-line `message` instead, which the documents print in its place. Text sizes are
chosen for the headline figure to read at >= 11 px where it is shown 800 px wide. With synthetic
data every figure title carries the notice. `svg_text` renders one figure for inline use.
"""
from __future__ import annotations

import io
import math
import re
import textwrap
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from scipy import stats

from korth_bench.analysis import claims, entries
from korth_bench.analysis.collapse import PRIMARY_AXIS, fixed_cell_gains, pooled_unit_gains
from korth_bench.analysis.regime import params_phrase
from korth_bench.analysis.stats import t_interval
from korth_bench.report.formatting import (
    arms_text, bound_text, cell_name, interval_text, keyed_rows, metric_name, model_label,
    number_text, params_range, points_text)

BASELINE_COLOR = "#666666"
ACCURACY_RANGE = (0.0, 100.0)  # accuracies in %: a t band is clipped to what the metric can take
PANEL = (2.5, 1.75)  # inches per panel
MAX_COLUMNS = 5  # arms side by side; more wrap into blocks below
PRIMARY_COLOR = "C0"
EQUIVALENCE_COLOR = "#bdbdbd"  # the equivalence region: grey, never an arm's colour
EQUIVALENCE_EDGE = "#555555"
HEADLINE_FONT = 11  # pt in an 8-inch (576 pt) figure: >= 14 px at 800 px wide, 11 px at 600 px
TICK_FONT = 9  # small multiples (shown about 1200 px wide in the HTML page)
LABEL_FONT = 10


@dataclass
class Plot:
    """A figure and its layout: one row of panels per entry of `rows`, one column per entry of
    `arms` (no arms: one panel per row). `panels` counts the panels drawn. A figure without
    data has no `figure`, only its `message` (one line the documents print in its place)."""
    figure: Optional[Figure]
    rows: List[str] = field(default_factory=list)
    arms: List[str] = field(default_factory=list)
    message: Optional[str] = None

    @property
    def panels(self) -> int:
        return 0 if self.figure is None else len(self.rows) * max(1, len(self.arms))


def figures(result: dict, notice: Optional[str]) -> Dict[str, Plot]:
    """The report's figures by file stem; a figure without data says what is missing."""
    regularizers = sorted(result["grid"]["regularizer"].unique())
    baseline = result["settings"]["baseline"]
    palette = [f"C{i}" for i in range(10) if i not in (5, 7)]  # grey and brown: the baseline
    colors = {name: palette[index % len(palette)] for index, name in
              enumerate(r for r in regularizers if r != baseline)}
    colors[baseline] = BASELINE_COLOR
    arms = [r for r in regularizers if r != baseline] or [baseline]
    by_arm = gain_figure(result, arms, colors, notice)
    fits = primary_fits(result)
    gains = ({"gain_vs_capacity": primary_figure(result, fits, notice), "gain_by_arm": by_arm}
             if fits else {"gain_vs_capacity": by_arm})
    return {**gains,
            "learning_curves": curves_figure(result, arms, colors, notice),
            "robustness": robustness_figure(result, arms, colors, notice),
            "orthogonality_vs_similarity": similarity_figure(result, colors, notice)}


def _heading(title: str, notice: Optional[str], width: float, per_inch: int = 11) -> str:
    return (textwrap.fill(title, max(40, int(width * per_inch)))
            + (f"\n{notice.upper()}" if notice else ""))


def _small_multiples(rows: Sequence[str], arms: Sequence[str], title: str,
                     notice: Optional[str], ylabel: str, xlabels: Sequence[str],
                     share: str = "all", panel: tuple = PANEL):
    """Panels for rows x arms (`panel`: inches each), returned as that array: the arm named
    above its column, the row and `ylabel` at the left, `xlabels[row]` below. At most
    MAX_COLUMNS arms side by side: more wrap into blocks stacked below, so that a panel keeps its
    size. Panels share both axes with every panel (`share` 'all') or with their row ('row');
    tick labels show on the left column and the bottom row of each block only ('row': every row
    keeps its x labels, its own x range)."""
    blocks = max(1, math.ceil(len(arms) / MAX_COLUMNS))
    columns = max(1, math.ceil(len(arms) / blocks))  # blocks as even as they can be
    width = max(6.0, panel[0] * columns + 1.0)
    figure = Figure(figsize=(width, panel[1] * len(rows) * blocks + 1.3), layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(_heading(title, notice, width), fontsize=LABEL_FONT + 1)
    grid = figure.subplots(len(rows) * blocks, columns, squeeze=False)
    axes = np.empty((len(rows), max(1, len(arms))), dtype=object)
    for index in range(max(1, len(arms))):
        block, column = divmod(index, columns)
        for row in range(len(rows)):
            axes[row, index] = grid[block * len(rows) + row, column]
    used = {id(axis) for axis in axes.ravel()}
    for axis in grid.ravel():
        if id(axis) not in used:
            axis.remove()
    first = axes[0, 0]
    for (row, index), axis in np.ndenumerate(axes):
        block, column = divmod(index, columns)
        lead = first if share == "all" else axes[row, 0]
        if axis is not lead:
            axis.sharex(lead)
            axis.sharey(lead)
        last = row == len(rows) - 1 or share == "row"
        axis.tick_params(labelsize=TICK_FONT, labelleft=column == 0, labelbottom=last)
        if row == 0 and index < len(arms):
            axis.set_title(arms[index].replace(" [", "\n["), fontsize=LABEL_FONT,
                           fontweight="bold")
        if column == 0:
            axis.set_ylabel(f"{rows[row]}\n{ylabel}", fontsize=LABEL_FONT)
        if last:
            axis.set_xlabel(xlabels[row], fontsize=LABEL_FONT)
    return figure, axes


def _empty(title: str, message: str) -> Plot:
    """No figure: the one line the documents print in its place (`title`: what it would show,
    unused, kept so that each figure's call names it)."""
    return Plot(None, message=message)


def _band(axis, x, low, high, color, clip=ACCURACY_RANGE) -> None:
    """A t band, clipped to the metric's range (an accuracy band never leaves [0, 100] %)."""
    axis.fill_between(x, np.clip(low, *clip), np.clip(high, *clip), color=color, alpha=0.2,
                      linewidth=0)


def _legend_below(figure: Figure, handles: list, fontsize: float = LABEL_FONT - 1,
                  ncol: int = 4) -> None:
    figure.legend(handles=handles, loc="outside lower center", ncol=min(ncol, len(handles)),
                  fontsize=fontsize, frameon=False)


def _n_range(counts: pd.Series) -> str:
    if counts.empty:
        return "0"
    low, high = int(counts.min()), int(counts.max())
    return str(low) if low == high else f"{low}-{high}"


# ---------------------------------------------------------------- the primary contrast

def primary_rows(result: dict) -> pd.DataFrame:
    """The collapse rows of the declared primary contrast on the primary axis (one per family);
    empty when the result has none (no ``settings['primary']`` or no primary row)."""
    primary = result["settings"].get("primary")
    collapse = result["collapse"]
    if not primary or not primary.get("arms") or not len(collapse):
        return collapse.iloc[0:0]
    return collapse[(collapse["test_family"] == "primary") & (collapse["axis"] == PRIMARY_AXIS)]


def primary_fits(result: dict) -> List[dict]:
    """Per family of the primary contrast: its cells (CELL columns, num_params, gain, low, high
    at the report's confidence, n seeds), the collapse row, and the fitted line with its band.

    The cell means are the collapse test's own: ``collapse.fixed_cell_gains`` (cells 'fixed':
    the interval from the cell's estimated variance on the pooled df) or the cell means of
    ``collapse.pooled_unit_gains`` (cells 'random': a t interval over the cell's units). The line
    is the row's slope through the row's intercept when it has one, else through the centroid
    of the cell means (the same unweighted least squares on log2 parameters); its band, at the
    row's 1 - alpha, is the fixed-cells variance sum_c (1/C + (x - mean x) w_c)^2 Var(g_c) on
    the pooled df, or the random-cells residual variance s^2 (1/C + (x - mean x)^2 / Sxx) on
    C - 2 df.
    """
    rows = primary_rows(result)
    if rows.empty:
        return []
    settings = result["settings"]
    primary = settings["primary"]
    arms, metric, baseline = list(primary["arms"]), primary.get("metric", "test_acc"), settings["baseline"]
    fixed = primary.get("cells") == "fixed"
    confidence = settings["confidence"]
    runs = result["runs"]
    fits = []
    for row in rows.to_dict("records"):
        family = runs[(runs["dataset"] == row["dataset"]) & (runs["model"] == row["model"])]
        if fixed:
            table = fixed_cell_gains(family, arms, metric, baseline)
            df = float(table.attrs.get("df", 0))
            se = np.sqrt(table["gain_var"].to_numpy(float))
            half = stats.t.ppf(0.5 + confidence / 2, df) * se if df >= 1 else np.full(len(table), np.nan)
            cells = table.assign(low=table["gain"] - half, high=table["gain"] + half,
                                 n=table["arm_seeds"], var=table["gain_var"])
        else:
            units = pooled_unit_gains(family, arms, metric, baseline)
            df = math.nan
            parts = []
            for key, group in units.groupby(list(entries.CELL), dropna=False, sort=True):
                found = t_interval(group["gain"].to_numpy(float), confidence)
                parts.append({**dict(zip(entries.CELL, key)),
                              "num_params": float(group["num_params"].median()),
                              "gain": found["mean"], "low": found["low"], "high": found["high"],
                              "n": found["n"]})
            cells = pd.DataFrame(parts, columns=list(entries.CELL) + [
                "num_params", "gain", "low", "high", "n"])
        cells = cells.sort_values("num_params").reset_index(drop=True)
        if len(cells) < 2 or not np.isfinite(cells["num_params"]).all():
            continue
        fits.append({"row": row, "cells": cells, "fixed": fixed, "df": df,
                     "label": arms_text(arms), **_line(cells, row, fixed, df)})
    return fits


def _line(cells: pd.DataFrame, row: dict, fixed: bool, df: float) -> dict:
    """slope, intercept (gain at log2 parameters 0) and band(x) -> (low, high) of the fitted line,
    as fractions; the slope is the collapse row's (NaN: refit from the cell means)."""
    x = np.log2(cells["num_params"].to_numpy(float))
    gain = cells["gain"].to_numpy(float)
    centred = x - x.mean()
    sxx = float(centred @ centred)
    slope = row.get("slope", math.nan)
    if not (slope is not None and math.isfinite(slope)):
        slope = float(centred @ gain / sxx) if sxx > 0 else math.nan
    intercept = row.get("intercept", math.nan)
    if not (intercept is not None and math.isfinite(intercept)):
        intercept = float(gain.mean() - slope * x.mean())
    level = 1 - float(row.get("alpha", 0.05))

    def band(grid: np.ndarray):
        grid = np.asarray(grid, float)
        fitted = intercept + slope * grid
        if not sxx > 0:
            return fitted * np.nan, fitted * np.nan
        if fixed:
            weights = 1 / x.size + np.outer(grid - x.mean(), centred) / sxx  # [grid, cells]
            var = (weights ** 2) @ cells["var"].to_numpy(float)
            dof = df
        else:
            residual = gain - (intercept + slope * x)
            dof = x.size - 2
            s2 = float(residual @ residual) / dof if dof >= 1 else math.nan
            var = s2 * (1 / x.size + (grid - x.mean()) ** 2 / sxx)
        if not dof >= 1:
            return fitted * np.nan, fitted * np.nan
        half = stats.t.ppf(0.5 + level / 2, dof) * np.sqrt(var)
        return fitted - half, fitted + half

    return {"slope": slope, "intercept": intercept, "x": x, "band": band}


def primary_figure(result: dict, fits: List[dict], notice: Optional[str]) -> Plot:
    """The headline figure: the declared primary contrast per cell (mean pooled gain with its
    interval) on log2 parameters, the fitted line with its confidence band, and the equivalence
    region, the fitted gain at the smallest cell +- the claimed drop, in grey: a line that stays
    inside it over the range is a drop inside the bound (the collapse rule takes the drop's
    interval, printed in the panel)."""
    settings = result["settings"]
    confidence = round(100 * settings["confidence"])
    first = fits[0]
    level = round(100 * (1 - first["row"]["alpha"]))
    drop = first["row"]["claimed_drop"]
    metric = metric_name(first["row"]["metric"])
    title = (f"Claim 2's primary contrast: the mean gain of {first['label']} over "
             f"{settings['baseline']} in {metric}, per cell")
    width = 8.0
    figure = Figure(figsize=(width, 3.9 * len(fits) + 1.6), layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(_heading(title, notice, width, 10), fontsize=HEADLINE_FONT + 1)
    axes = figure.subplots(len(fits), 1, squeeze=False)[:, 0]
    for axis, fit in zip(axes, fits):
        cells, row = fit["cells"], fit["row"]
        x = cells["num_params"].to_numpy(float)
        gain, low, high = (100 * cells[c].to_numpy(float) for c in ("gain", "low", "high"))
        grid = np.linspace(fit["x"].min(), fit["x"].max(), 80)
        band_low, band_high = fit["band"](grid)
        start = 100 * (fit["intercept"] + fit["slope"] * fit["x"].min())
        axis.axhline(0, color=BASELINE_COLOR, linewidth=0.8)
        axis.axhspan(start - 100 * drop, start + 100 * drop, color=EQUIVALENCE_COLOR, alpha=0.3,
                     linewidth=0, zorder=0)
        for edge in (start - 100 * drop, start + 100 * drop):
            axis.axhline(edge, color=EQUIVALENCE_EDGE, linestyle="--", linewidth=1.0, zorder=1)
        if np.isfinite(band_low).all():
            axis.fill_between(2 ** grid, 100 * band_low, 100 * band_high, color=PRIMARY_COLOR,
                              alpha=0.25, linewidth=0, zorder=2)
        axis.plot(2 ** grid, 100 * (fit["intercept"] + fit["slope"] * grid), color=PRIMARY_COLOR,
                  linewidth=2, zorder=3)
        axis.errorbar(x, gain, yerr=[gain - low, high - gain], fmt="o", markersize=6, capsize=4,
                      color="black", linewidth=1.4, zorder=4)
        axis.set_xscale("log", base=2)
        axis.set_xticks(x, [f"{params_phrase(v)}\n{model_label(c['model'], c['depth'], c['width'])}"
                            for v, c in zip(x, cells.to_dict("records"))])
        axis.set_xticks([], minor=True)
        axis.margins(x=0.07)
        axis.tick_params(labelsize=HEADLINE_FONT)
        axis.set_xlabel(f"parameters (log scale) and cell, {row['model']} ({row['dataset']})",
                        fontsize=HEADLINE_FONT)
        axis.set_ylabel(f"gain over {settings['baseline']} (pt)", fontsize=HEADLINE_FONT)
        top = max(np.nanmax(high), start + 100 * drop)
        bottom = min(0.0, np.nanmin(low), start - 100 * drop)
        axis.set_ylim(bottom - 0.08 * (top - bottom), top + 0.32 * (top - bottom))
        inside = -drop < row["drop_low"] and row["drop_high"] < drop
        axis.text(0.02, 0.97, f"drop over the range: {points_text(row['drop'])} pt "
                  f"{interval_text(row['drop_low'], row['drop_high'])} ({level} %), "
                  f"{'inside' if inside else 'not inside'} the {bound_text(drop)} bound\n"
                  f"{params_range(x.min(), x.max())}; n = {_n_range(cells['n'])} seeds per cell",
                  transform=axis.transAxes, va="top", ha="left", fontsize=HEADLINE_FONT)
    _legend_below(figure, [
        Line2D([], [], marker="o", color="black", linestyle="none", markersize=6,
               label=f"cell mean gain, {confidence} % t interval"),
        Line2D([], [], color=PRIMARY_COLOR, linewidth=2, label="fitted line (cell means)"),
        Patch(color=PRIMARY_COLOR, alpha=0.25, label=f"its {level} % confidence band"),
        Patch(facecolor=EQUIVALENCE_COLOR, alpha=0.6, edgecolor=EQUIVALENCE_EDGE, linestyle="--",
              label=f"{bound_text(drop)} around the line's start (equivalence)")],
        fontsize=HEADLINE_FONT - 1, ncol=2)
    return Plot(figure, [f"{fit['row']['model']} ({fit['row']['dataset']})" for fit in fits],
                [fits[0]["label"]])


# ---------------------------------------------------------------- gains vs capacity, per arm

def gain_figure(result: dict, arms: List[str], colors: dict, notice: Optional[str]) -> Plot:
    gains = result["gains"]
    gains = gains[gains["metric"] == "test_acc"] if len(gains) else gains
    settings = result["settings"]
    drop = 100 * settings["claimed_drop"]
    confidence = round(100 * settings["confidence"])
    title = (f"Gain in final test accuracy over the baseline ({settings['baseline']}) vs model "
             f"size, one panel per regularizer: cell means with {confidence} % t intervals, each "
             f"arm's collapse line")
    if gains.empty:
        return _empty(title, "no regularizer besides the baseline: no gains to draw")
    arms = [arm for arm in arms if arm in set(gains["regularizer"])]
    families = list(gains.groupby(list(entries.FAMILY)))
    rows = [f"{model} ({dataset})" for (dataset, model), _ in families]
    by_params = bool(np.isfinite(gains["num_params"]).all())
    figure, axes = _small_multiples(rows, arms, title, notice, "gain (pt)",
                                    ["parameters" if by_params else "depth"] * len(rows),
                                    panel=(3.2, 2.8))
    wedges = []  # drawn once the data have set the shared y range, which they do not widen
    missing_drawn = False
    collapse = result["collapse"]
    lines = keyed_rows(collapse[collapse["metric"] == "test_acc"], ["dataset", "model",
                                                                    "regularizer", "axis"])
    for row, ((dataset, model), family) in enumerate(families):
        # parameter counts on a log axis (the collapse test's primary axis); depth where the
        # tables lack them
        x, axis_name = ("num_params", PRIMARY_AXIS) if by_params else ("depth", "depth")
        cells = np.sort(family[x].unique())
        for column, arm in enumerate(arms):
            axis = axes[row, column]
            part = family[family["regularizer"] == arm].sort_values(x)
            measured = part[part["status"] == "measured"]
            mean = 100 * measured["mean"].to_numpy(float)
            axis.axhline(0, color=BASELINE_COLOR, linewidth=0.8)
            fit = lines.get((dataset, model, arm, axis_name))
            if fit is not None and len(measured) >= 2 and math.isfinite(fit["slope"]):
                wedges.append((axis, measured[x].to_numpy(float), mean, fit, by_params,
                               colors[arm]))
            axis.errorbar(measured[x], mean, yerr=[mean - 100 * measured["low"].to_numpy(float),
                                                   100 * measured["high"].to_numpy(float) - mean],
                          fmt="o", markersize=4, capsize=2, color=colors[arm], linewidth=1)
            missing = part[part["status"] != "measured"]
            for position, status in zip(missing[x], missing["status"]):
                missing_drawn = True
                axis.plot([position], [0], "x", markersize=8, color="#b00020")
                axis.annotate("no baseline" if status == "missing baseline" else "no runs",
                              (position, 0), textcoords="offset points", xytext=(0, 6),
                              ha="center", fontsize=8, color="#b00020")
            axis.text(0.98, 0.03, f"n={_n_range(measured['n'])}", transform=axis.transAxes,
                      ha="right", fontsize=8, color="#444444")
            axis.set_xscale("log" if by_params else "linear")
            # one tick per cell, so that the trend reads against the cells actually measured
            axis.set_xticks(cells, [params_phrase(v) if by_params else f"{v:g}" for v in cells],
                            rotation=45, fontsize=TICK_FONT)
            axis.set_xticks([], minor=True)
            axis.margins(x=0.08)
    limits = axes[0, 0].get_ylim()
    for wedge in wedges:
        _fit_wedges(*wedge, drop)
    for axis in axes.ravel():
        axis.set_ylim(limits)
    handles = [Line2D([], [], marker="o", color="black", linestyle="none", markersize=4,
                      label=f"cell mean gain, {confidence} % t interval")]
    if wedges:
        handles += [
            Line2D([], [], color="black", label="fitted line (the arm's collapse test)"),
            Patch(color="black", alpha=0.2, label=f"its slope's {confidence} % interval"),
            Line2D([], [], color=EQUIVALENCE_EDGE, linestyle="--",
                   label=f"drop over the range of {bound_text(drop / 100)} (equivalence)")]
    if missing_drawn:
        handles.append(Line2D([], [], marker="x", color="#b00020", linestyle="none",
                              label="missing cell"))
    _legend_below(figure, handles, ncol=2)
    return Plot(figure, rows, arms)


def _fit_wedges(axis, x: np.ndarray, mean: np.ndarray, fit: dict, by_params: bool,
                color: str, drop: float) -> None:
    """The collapse test's line through the centroid of the cell means (an unweighted least-squares
    line passes through it), the wedge of lines whose slope lies in its interval (in the arm's
    colour), and the lines whose drop over the capacity range is +-drop pt (dashed grey: a line
    between them is a drop inside the bound)."""
    coordinate = np.log2(x) if by_params else x
    centre, level = coordinate.mean(), mean.mean()
    grid = np.linspace(coordinate.min(), coordinate.max(), 50)
    shown = 2 ** grid if by_params else grid
    span = np.ptp(coordinate)
    line = lambda slope: level + 100 * slope * (grid - centre)  # noqa: E731
    bound = drop / span / 100 if span > 0 else 0.0
    for sign in (-1, 1):
        axis.plot(shown, line(sign * bound), color=EQUIVALENCE_EDGE, linestyle="--",
                  linewidth=1.0)
    axis.fill_between(shown, line(fit["low"]), line(fit["high"]), color=color, alpha=0.2,
                      linewidth=0)
    axis.plot(shown, line(fit["slope"]), color=color, linewidth=1.2)


# ---------------------------------------------------------------- learning curves

def _cells(result: dict) -> List[tuple]:
    """Every cell of the sweep (CELL keys), smallest model first."""
    grid = result["grid"].sort_values(["dataset", "model", "num_params", "depth", "width"])
    return list(dict.fromkeys(tuple(row) for row in grid[list(entries.CELL)].itertuples(
        index=False)))


def curves_figure(result: dict, arms: List[str], colors: dict, notice: Optional[str]) -> Plot:
    curves = result["curves"]
    baseline = result["settings"]["baseline"]
    confidence = round(100 * result["settings"]["confidence"])
    title = (f"Test accuracy per epoch, one panel per regularizer and cell, {baseline} in grey "
             f"(mean over seeds, {confidence} % t band)")
    if curves.empty:
        return _empty(title, "no epochs rows in these results")
    keys = list(entries.CELL)
    parts = dict(list(curves.groupby(keys + ["regularizer"])))
    completed = keyed_rows(result["grid"], keys + ["regularizer"])
    cells = _cells(result)
    rows = [model_label(model, depth, width) + (f" ({dataset})" if len(
        {c[0] for c in cells}) > 1 else "") for dataset, model, depth, width in cells]
    figure, axes = _small_multiples(rows, arms, title, notice, "test acc. (%)",
                                    ["epoch (0-based)"] * len(rows))
    for row, cell in enumerate(cells):
        for column, arm in enumerate(arms):
            axis = axes[row, column]
            for name in dict.fromkeys([baseline, arm]):
                part = parts.get(cell + (name,))
                if part is None:
                    if cell + (name,) in completed:
                        axis.text(0.03, 0.05, f"{name}: no completed runs", fontsize=8,
                                  color="#b00020", transform=axis.transAxes)
                    continue
                _band(axis, part["epoch"], 100 * part["low"], 100 * part["high"], colors[name])
                axis.plot(part["epoch"], 100 * part["mean"], color=colors[name], linewidth=1.2)
            shown = [parts[cell + (name,)]["n"] for name in (arm,) if cell + (name,) in parts]
            if shown:
                axis.text(0.98, 0.05, f"n={_n_range(shown[0])}", transform=axis.transAxes,
                          ha="right", fontsize=8, color="#444444")
    axes[0, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].yaxis.set_major_locator(MaxNLocator(4))
    _legend_below(figure, [
        Line2D([], [], color=BASELINE_COLOR, label=f"{baseline} (baseline)"),
        Line2D([], [], color="C0", label="the regularizer named above the column"),
        Patch(color="black", alpha=0.2, label=f"{confidence} % t band")])
    return Plot(figure, rows, arms)


# ---------------------------------------------------------------- robustness

def robustness_figure(result: dict, arms: List[str], colors: dict,
                      notice: Optional[str]) -> Plot:
    profile = result["robustness"]
    baseline = result["settings"]["baseline"]
    confidence = round(100 * result["settings"]["confidence"])
    title = (f"Accuracy under corruptions and attacks, one panel per regularizer, {baseline} in "
             f"grey, clean accuracy at 0 (mean over a family's entry runs, {confidence} % t band)")
    if profile.empty:
        return _empty(title, "no robustness rows in these results (robustness evaluation off "
                      "or not run)")
    family_keys = list(entries.FAMILY)
    clean = profile[profile["kind"] == "clean"]
    shifted = profile[profile["kind"] != "clean"]
    if shifted.empty:
        return _empty(title, "only clean accuracy in these results: no corruption or attack")
    groups = list(shifted.groupby(family_keys + ["kind", "name"]))
    several = shifted.groupby(family_keys).ngroups > 1
    rows = [name + (f", {model} ({dataset})" if several else "")
            for (dataset, model, kind, name), _ in groups]
    figure, axes = _small_multiples(
        rows, arms, title, notice, "accuracy (%)",
        ["eps (k/255)" if kind == "attack" else "severity" for (*_, kind, _), _ in groups],
        share="row")
    for row, ((dataset, model, kind, name), group) in enumerate(groups):
        start = clean[(clean["dataset"] == dataset) & (clean["model"] == model)]
        for column, arm in enumerate(arms):
            axis = axes[row, column]
            for regularizer in dict.fromkeys([baseline, arm]):
                part = pd.concat([start[start["regularizer"] == regularizer],
                                  group[group["regularizer"] == regularizer]]).sort_values(
                    "severity")
                if part.empty:
                    continue
                _band(axis, part["severity"], 100 * part["low"], 100 * part["high"],
                      colors[regularizer])
                axis.plot(part["severity"], 100 * part["mean"], linewidth=1.1,
                          color=colors[regularizer])
            # ticks at the severities measured (integers), few on the shared accuracy axis
            axis.set_xticks(sorted(set(group["severity"]) | set(start["severity"])))
            axis.yaxis.set_major_locator(MaxNLocator(4))
    _legend_below(figure, [
        Line2D([], [], color=BASELINE_COLOR, label=f"{baseline} (baseline)"),
        Line2D([], [], color="C0", label="the regularizer named above the column"),
        Patch(color="black", alpha=0.2, label=f"{confidence} % t band")])
    return Plot(figure, rows, arms)


# ---------------------------------------------------------------- orthogonality vs similarity

def similarity_figure(result: dict, colors: dict, notice: Optional[str]) -> Plot:
    x, y = claims.SIMILARITY_PAIRS[0]
    title = f"{y} vs {x}, one panel per cell (rho over all its trials), one point per trial"
    trials = result["completed"]
    if x not in trials or y not in trials or trials[[x, y]].dropna().empty:
        return _empty(title, f"no {x} / {y} values in these results")
    keys = list(entries.CELL)
    rho = keyed_rows(result["similarity"], keys + ["x", "y"])
    by_cell = dict(list(trials.groupby(keys)))
    cells = _cells(result)
    rows = [cell_name(dict(zip(keys, cell))) for cell in cells]
    columns = min(4, len(cells))
    width = max(6.0, 3.0 * columns + 0.5)
    figure = Figure(figsize=(width, 2.4 * math.ceil(len(cells) / columns) + 1.3),
                    layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(_heading(title, notice, width), fontsize=LABEL_FONT + 1)
    axes = figure.subplots(math.ceil(len(cells) / columns), columns, squeeze=False,
                           sharex=True, sharey=True).ravel()
    for unused in axes[len(cells):]:
        unused.remove()
    for axis, cell, name in zip(axes, cells, rows):
        part = by_cell.get(cell, trials.iloc[0:0])
        for regularizer, points in part.groupby("regularizer"):
            axis.scatter(points[x], points[y], s=9, color=colors[regularizer])
        stat = rho.get(tuple(cell) + (x, y))
        text = (f"rho {number_text(stat['rho'], 2, True)} [{number_text(stat['low'], 2, True)}, "
                f"{number_text(stat['high'], 2, True)}], n={stat['n']}") if stat else "rho n/a"
        axis.set_title(f"{name}\nSpearman {text}", fontsize=LABEL_FONT - 1)
        axis.tick_params(labelsize=TICK_FONT)
    for index, axis in enumerate(axes[:len(cells)]):
        if index + columns >= len(cells):  # no panel below: this one carries the x axis
            axis.xaxis.set_tick_params(labelbottom=True)
            axis.set_xlabel(x, fontsize=LABEL_FONT)
        if axis.get_subplotspec().is_first_col():
            axis.set_ylabel(y, fontsize=LABEL_FONT)
    present = sorted(set(trials["regularizer"]))
    _legend_below(figure, [Line2D([], [], marker="o", linestyle="none", markersize=4,
                                  color=colors[name], label=name) for name in present])
    return Plot(figure, rows)


# ---------------------------------------------------------------- rendering

SVG_STYLE = {"svg.fonttype": "none", "font.sans-serif": ["DejaVu Sans", "Arial"]}
"""Text as text (small, searchable, crisp at any zoom), in a short font list."""


def svg_text(plot: Plot, name: str) -> str:
    """The figure as an SVG element to inline in a page or save as a file, scaled by its container:
    coordinates to 0.1 pt (finer than a screen pixel), no indentation, only the ids something
    refers to (and each panel's ``axes_N`` group, which counts the panels), no metadata block,
    every id prefixed with `name` so that several figures can share one page."""
    buffer = io.StringIO()
    with matplotlib.rc_context({**SVG_STYLE, "svg.hashsalt": name}):
        plot.figure.savefig(buffer, format="svg", facecolor="white")
    text = buffer.getvalue()
    text = re.sub(r"\n\s+", "\n", text[text.index("<svg"):]).replace(" \n", " ")
    text = re.sub(r"<metadata>.*?</metadata>\n?", "", text, flags=re.S)  # creator, date: not ours
    text = re.sub(r' transform="rotate\(-0 [^)]*\)"', "", text)
    # one font rule for the figure instead of one per label
    text = re.sub(r"font-family: [^;\"]*;? ?", "", text)
    text = re.sub(r"(<svg[^>]*>)", r"\1<style>text { font-family: 'DejaVu Sans', Arial, "
                  r"sans-serif; }</style>", text, count=1)
    # numbers inside tags only: a tick label such as 0.125 is text and keeps its digits
    text = re.sub(r"<[^>]+>", lambda tag: re.sub(r"(\d\.\d)\d+", r"\1", tag.group(0)), text)
    referenced = set(re.findall(r'(?:url\(#|xlink:href="#)([^)"]+)', text))
    text = re.sub(r' id="([^"]+)"', lambda m: m.group(0) if m.group(1) in referenced
                  or re.fullmatch(r"axes_\d+", m.group(1)) else "", text)
    while True:  # groups that only wrap one element, now that their ids are gone
        unwrapped = re.sub(r"<g>\n?(<(?:[^<>]*/>|text[^>]*>[^<]*</text>|g>)\n?)</g>\n?", r"\1",
                           text)
        unwrapped = re.sub(r"<g>\n?</g>\n?", "", unwrapped)
        if unwrapped == text:
            break
        text = unwrapped
    text = re.sub(r'\bid="', f'id="{name}-', text)
    text = re.sub(r"url\(#", f"url(#{name}-", text)
    return re.sub(r'xlink:href="#', f'xlink:href="#{name}-', text)
