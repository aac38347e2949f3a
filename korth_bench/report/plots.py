"""The report's figures (matplotlib, Agg, no display) as small multiples, one SVG each.

`figures(result, notice)` draws, from what `korth_bench.analysis.analyze` returns, one column of
panels per arm (each regularizer other than the baseline; the baseline alone where it is the only
one), sharing their axes, the baseline drawn in grey in every panel it belongs to:
`gain_vs_capacity` (one row per family: the gain in final test accuracy over the baseline per cell
with its t interval, the collapse test's fitted line with its slope's interval as a wedge through
the cell means' centroid, and the equivalence wedge of slopes whose drop over the capacity range
stays inside +-claimed_drop; x for a missing cell), `learning_curves` (one row per cell: test
accuracy per epoch, t bands), `robustness` (one row per corruption or attack: accuracy per
severity or eps, the clean accuracy at 0) and `orthogonality_vs_similarity` (one panel per cell,
since its Spearman rho is taken over every trial of the cell; one point per completed trial).
Bands are clipped to the metric's range, epochs and severities get integer ticks, legends sit
outside the panels. A figure without data says what is missing; with synthetic data every
figure title carries the notice. `svg_text` renders one figure for inline use.
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

from korth_bench.analysis import claims, entries
from korth_bench.analysis.collapse import PRIMARY_AXIS
from korth_bench.report.formatting import cell_name, keyed_rows, model_label, number_text

BASELINE_COLOR = "#666666"
ACCURACY_RANGE = (0.0, 100.0)  # accuracies in %: a t band is clipped to what the metric can take
PANEL = (2.5, 1.75)  # inches per panel
MAX_COLUMNS = 5  # arms side by side; more wrap into blocks below


@dataclass
class Plot:
    """A figure and its layout: one row of panels per entry of `rows`, one column per entry of
    `arms` (no arms: one panel per row). `panels` counts the panels drawn."""
    figure: Figure
    rows: List[str] = field(default_factory=list)
    arms: List[str] = field(default_factory=list)

    @property
    def panels(self) -> int:
        return len(self.rows) * max(1, len(self.arms))


def figures(result: dict, notice: Optional[str]) -> Dict[str, Plot]:
    """The report's figures by file stem; a figure without data says what is missing."""
    regularizers = sorted(result["grid"]["regularizer"].unique())
    baseline = result["settings"]["baseline"]
    palette = [f"C{i}" for i in range(10) if i not in (5, 7)]  # grey and brown: the baseline
    colors = {name: palette[index % len(palette)] for index, name in
              enumerate(r for r in regularizers if r != baseline)}
    colors[baseline] = BASELINE_COLOR
    arms = [r for r in regularizers if r != baseline] or [baseline]
    return {"gain_vs_capacity": gain_figure(result, arms, colors, notice),
            "learning_curves": curves_figure(result, arms, colors, notice),
            "robustness": robustness_figure(result, arms, colors, notice),
            "orthogonality_vs_similarity": similarity_figure(result, colors, notice)}


def _heading(title: str, notice: Optional[str], width: float) -> str:
    return textwrap.fill(title, max(40, int(width * 12))) + (f"\n{notice.upper()}" if notice else "")


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
    figure.suptitle(_heading(title, notice, width), fontsize=11)
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
        axis.tick_params(labelsize=7, labelleft=column == 0, labelbottom=last)
        if row == 0 and index < len(arms):
            axis.set_title(arms[index].replace(" [", "\n["), fontsize=9, fontweight="bold")
        if column == 0:
            axis.set_ylabel(f"{rows[row]}\n{ylabel}", fontsize=8)
        if last:
            axis.set_xlabel(xlabels[row], fontsize=8)
    return figure, axes


def _empty(title: str, message: str, notice: Optional[str]) -> Plot:
    figure = Figure(figsize=(6.0, 1.8), layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(_heading(title, notice, 6.0), fontsize=11)
    axis = figure.subplots()
    axis.text(0.5, 0.5, message, ha="center", va="center", transform=axis.transAxes)
    axis.set_axis_off()
    return Plot(figure)


def _band(axis, x, low, high, color, clip=ACCURACY_RANGE) -> None:
    """A t band, clipped to the metric's range (an accuracy band never leaves [0, 100] %)."""
    axis.fill_between(x, np.clip(low, *clip), np.clip(high, *clip), color=color, alpha=0.2,
                      linewidth=0)


def _legend_below(figure: Figure, handles: list) -> None:
    figure.legend(handles=handles, loc="outside lower center", ncol=min(4, len(handles)),
                  fontsize=8, frameon=False)


def _n_range(counts: pd.Series) -> str:
    if counts.empty:
        return "0"
    low, high = int(counts.min()), int(counts.max())
    return str(low) if low == high else f"{low}-{high}"


# ---------------------------------------------------------------- gains vs capacity

def gain_figure(result: dict, arms: List[str], colors: dict, notice: Optional[str]) -> Plot:
    gains = result["gains"]
    gains = gains[gains["metric"] == "test_acc"] if len(gains) else gains
    settings = result["settings"]
    drop = 100 * settings["claimed_drop"]
    confidence = round(100 * settings["confidence"])
    title = (f"Gain in final test accuracy over the baseline ({settings['baseline']}) vs model "
             f"size, one panel per regularizer: cell means with {confidence} % t intervals, the "
             f"collapse test's line")
    if gains.empty:
        return _empty(title, "no regularizer besides the baseline: no gains to draw", notice)
    arms = [arm for arm in arms if arm in set(gains["regularizer"])]
    families = list(gains.groupby(list(entries.FAMILY)))
    rows = [f"{model} ({dataset})" for (dataset, model), _ in families]
    by_params = bool(np.isfinite(gains["num_params"]).all())
    figure, axes = _small_multiples(rows, arms, title, notice, "gain (pp)",
                                    ["parameters" if by_params else "depth"] * len(rows),
                                    panel=(2.9, 2.6))
    wedges = []  # drawn once the data have set the shared y range, which they do not widen
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
                axis.plot([position], [0], "x", markersize=8, color="#b00020")
                axis.annotate("no baseline" if status == "missing baseline" else "no runs",
                              (position, 0), textcoords="offset points", xytext=(0, 6),
                              ha="center", fontsize=7, color="#b00020")
            axis.text(0.98, 0.03, f"n={_n_range(measured['n'])}", transform=axis.transAxes,
                      ha="right", fontsize=7, color="#444444")
            axis.set_xscale("log" if by_params else "linear")
            # one tick per cell, so that the trend reads against the cells actually measured
            axis.set_xticks(cells, [f"{v / 1e3:.0f}k" if by_params else f"{v:g}" for v in cells],
                            rotation=45, fontsize=7)
            axis.set_xticks([], minor=True)
            axis.margins(x=0.08)
    limits = axes[0, 0].get_ylim()
    for wedge in wedges:
        _fit_wedges(*wedge, drop)
    for axis in axes.ravel():
        axis.set_ylim(limits)
    _legend_below(figure, [
        Line2D([], [], marker="o", color="black", linestyle="none", markersize=4,
               label=f"cell mean gain, {confidence} % t interval"),
        Line2D([], [], color="black", label="fitted line (collapse test, cell means)"),
        Patch(color="black", alpha=0.2, label=f"its slope's {confidence} % interval"),
        Patch(facecolor="none", edgecolor=BASELINE_COLOR, hatch="////",
              label=f"drop over the range within ±{number_text(drop, 1)} pp (equivalence)"),
        Line2D([], [], marker="x", color="#b00020", linestyle="none", label="missing cell")])
    return Plot(figure, rows, arms)


def _fit_wedges(axis, x: np.ndarray, mean: np.ndarray, fit: dict, by_params: bool,
                color: str, drop: float) -> None:
    """The collapse test's line through the centroid of the cell means (an unweighted least-squares
    line passes through it), the wedge of lines whose slope lies in its interval, and the wedge
    whose drop over the capacity range stays within +-drop pp (inside it: 'no trend')."""
    coordinate = np.log2(x) if by_params else x
    centre, level = coordinate.mean(), mean.mean()
    grid = np.linspace(coordinate.min(), coordinate.max(), 50)
    shown = 2 ** grid if by_params else grid
    span = np.ptp(coordinate)
    line = lambda slope: level + 100 * slope * (grid - centre)
    bound = drop / span / 100 if span > 0 else 0.0
    axis.fill_between(shown, line(-bound), line(bound), facecolor="none",
                      edgecolor=BASELINE_COLOR, hatch="////", linewidth=0)
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
        return _empty(title, "no epochs rows in these results", notice)
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
                        axis.text(0.03, 0.05, f"{name}: no completed runs", fontsize=7,
                                  color="#b00020", transform=axis.transAxes)
                    continue
                _band(axis, part["epoch"], 100 * part["low"], 100 * part["high"], colors[name])
                axis.plot(part["epoch"], 100 * part["mean"], color=colors[name], linewidth=1.2)
            shown = [parts[cell + (name,)]["n"] for name in (arm,) if cell + (name,) in parts]
            if shown:
                axis.text(0.98, 0.05, f"n={_n_range(shown[0])}", transform=axis.transAxes,
                          ha="right", fontsize=7, color="#444444")
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
        return _empty(title, "no robustness rows in these results", notice)
    family_keys = list(entries.FAMILY)
    clean = profile[profile["kind"] == "clean"]
    shifted = profile[profile["kind"] != "clean"]
    if shifted.empty:
        return _empty(title, "only clean accuracy in these results: no corruption or attack",
                      notice)
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
        return _empty(title, f"no {x} / {y} values in these results", notice)
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
    figure.suptitle(_heading(title, notice, width), fontsize=11)
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
        axis.set_title(f"{name}\nSpearman {text}", fontsize=8)
        axis.tick_params(labelsize=7)
    for index, axis in enumerate(axes[:len(cells)]):
        if index + columns >= len(cells):  # no panel below: this one carries the x axis
            axis.xaxis.set_tick_params(labelbottom=True)
            axis.set_xlabel(x, fontsize=8)
        if axis.get_subplotspec().is_first_col():
            axis.set_ylabel(y, fontsize=8)
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
