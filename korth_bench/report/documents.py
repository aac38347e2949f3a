"""Leaderboard files from result tables: Markdown, one self-contained HTML page, JSON and PNGs.

`build_report(result_dirs, out_dir)` reads the four tables of one or more result directories
(merged and de-duplicated by `korth_bench.results.read_frame`), runs
`korth_bench.analysis.claims.analyze` and writes what it returns; this module only formats: the
header lines, the Markdown and JSON documents (the sections and their tables come from
`korth_bench.report.sections`, the page from `korth_bench.report.html`, the figures from
`korth_bench.report.plots`). Every printed number says what it is and over how many seeds; cells
without completed runs are printed as missing; results from the synthetic data set carry
"synthetic data: not a result" in every header.
"""
from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence

import pandas as pd

from korth_bench.analysis import claims
from korth_bench.analysis.entries import CELL
from korth_bench.results import STATUSES, TABLES, plain
from korth_bench.report.formatting import keyed_rows
from korth_bench.report.html import to_html
from korth_bench.report.plots import figures, png_bytes
from korth_bench.report.sections import Section, report_sections
from korth_bench.report.summary import summary_rules, verdict_table
from korth_bench.errors import ConfigError

NOTICE = "synthetic data: not a result"
TITLE = "korth-bench leaderboard"
SCHEMA_VERSION = "3"  # 3: the verdict summary; 2: collapse rows carry the equivalence rule; gains the exact p; efficiency
SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "leaderboard.schema.json")


# ---------------------------------------------------------------- entry points

def build_report(result_dirs: Sequence[str], out_dir: str, endpoint: Optional[str] = None,
                 **options) -> Dict[str, str]:
    """Leaderboard of one or more result directories (sweep or train outputs), merged by trial_id.

    Args:
        result_dirs: directories (or URIs) holding `trials/`, `epochs/`, `layers/`, `robustness/`,
            or folders of such directories (`results/train`, one per trial: ``results.result_roots``).
        out_dir: where leaderboard.md, leaderboard.html, leaderboard.json and the PNGs go.
        endpoint: an S3-compatible server for ``s3://`` directories (default ``AWS_ENDPOINT_URL``).
        **options: passed to korth_bench.analysis.analyze (selection='val'|'test',
            claimed_drop, alpha, confidence, n_permutations, n_bootstrap, seed, ...).
    Returns:
        {'html', 'markdown', 'json', <plot name>: path} of every file written.
    """
    from korth_bench.results import read_frame

    dirs = [result_dirs] if isinstance(result_dirs, str) else list(result_dirs)
    frames = {table: read_frame(dirs, table, endpoint=endpoint) for table in TABLES}
    return build_report_from_frames(frames, out_dir, sources=dirs, **options)


def build_report_from_frames(frames: Dict[str, pd.DataFrame], out_dir: str,
                             sources: Sequence[str] = (), **options) -> Dict[str, str]:
    """The same as build_report, from already-loaded tables ({table name: DataFrame})."""
    if frames.get("trials") is None or frames["trials"].empty:
        where = list(sources) or "the given frames"
        raise ConfigError(f"no trials rows in {where}: nothing to report")
    result = claims.analyze(frames, **options)
    os.makedirs(out_dir, exist_ok=True)
    notice = NOTICE if result["synthetic"] else None
    images = {name: png_bytes(figure) for name, figure in figures(result, notice).items()}
    written = {}
    for name, data in images.items():
        written[name] = _write(out_dir, f"{name}.png", data)
    header = header_lines(result, sources)
    sections = report_sections(result)
    summary, rules = verdict_table(result["verdicts"]), summary_rules(result["settings"])
    written["markdown"] = _write(out_dir, "leaderboard.md",
                                 to_markdown(header, summary, rules, sections, notice).encode())
    written["html"] = _write(out_dir, "leaderboard.html", to_html(
        TITLE, header, summary, rules, sections, images, notice).encode())
    document = leaderboard_json(result, sources)
    written["json"] = _write(out_dir, "leaderboard.json",
                             json.dumps(document, indent=1, allow_nan=False).encode())
    return written


def _write(out_dir: str, name: str, data: bytes) -> str:
    path = os.path.join(out_dir, name)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


# ---------------------------------------------------------------- header

def header_lines(result: dict, sources: Sequence[str]) -> List[str]:
    """Hardware, trial and seed counts, the statistic and the selection rule, one line each."""
    grid, settings = result["grid"], result["settings"]
    hardware = ", ".join(f"{row.device} ({row.n_trials} trials)"
                         for row in result["hardware"].itertuples())
    counts = ", ".join(f"{int(grid[f'n_{s}'].sum())} {s}" for s in STATUSES)
    seeds = result["provenance"]["seeds"].map(len)
    expected = grid["n_seeds_expected"]
    confidence = round(100 * settings["confidence"])
    lines = [
        f"Hardware (device column): {hardware}.",
        f"Trials: {counts}; only completed trials enter the statistics.",
        f"Seeds per entry: {seeds.min() if len(seeds) else 0} to {seeds.max() if len(seeds) else 0}"
        f" found, {expected.min()} to {expected.max()} expected (every number below prints its n).",
        f"Statistic: {statistic_text(settings)}",
        f"Entries: per cell, each regularizer's configuration with the best mean "
        f"{'validation' if settings['selection'] == 'val' else 'test (optimistic)'} accuracy "
        f"(the column 'entry' names it, what selected it and K, the settings compared).",
        "Rule, selection: cross-fitted, each seed's run is the setting that scored best on the "
        "other seeds, so no test accuracy chose its own entry; with one seed or settings on "
        "different seeds the best mean over all seeds, marked 'not cross-fitted'; a diverged "
        "run scores chance accuracy; a setting is every config key that varies within the "
        "cell and regularizer.",
        f"Collapse test: alpha {settings['alpha']}, equivalence bound (claimed drop) "
        f"{100 * settings['claimed_drop']:.1f} pp over the capacity range; {confidence} % "
        f"intervals for gains; seed {settings['seed']} for the exact tests' Monte Carlo draws.",
        *rule_lines(settings),
    ]
    if sources:
        lines.append("Sources: " + ", ".join(sources) + ".")
    return lines


def rule_lines(settings: dict) -> List[str]:
    """The rule behind each verdict, one sentence each (the same text in Markdown and HTML)."""
    alpha = settings["alpha"]
    drop = f"{100 * settings['claimed_drop']:.1f} pp"
    return [
        "Rule, gain p: the two-sided t test that goes with the printed interval (it is below "
        f"{alpha} exactly when the {round(100 * (1 - alpha))} % interval excludes 0), with the exact "
        "sign-flip or permutation p beside it and that test's smallest attainable p wherever it "
        f"exceeds {alpha}.",
        "Rule, collapse slope: the mean gain of each cell regressed on log2 of the parameter count, "
        f"t test on n_cells - 2 degrees of freedom, Holm over regularizers x metrics at alpha {alpha}"
        "; depth and width rows are descriptive.",
        f"Rule, 'no trend': only when the slope is not significant, its test could reach its Holm "
        f"threshold, and the {round(100 * (1 - alpha))} % interval of the drop over the capacity "
        f"range lies inside ±{drop} (an equivalence test); otherwise 'inconclusive'.",
        "Rule, lack of fit: an F test of the cell means about the line against the within-cell "
        "seed spread; a small p says the cells differ by more than a line and seed noise.",
        "Rule, capacity efficiency: a small regularized model matches a larger baseline only "
        "when it is shown no more than M below it and that baseline is shown more than M above "
        f"the small baseline, both one-sided Welch tests at {alpha} (an intersection-union test).",
    ]


def statistic_text(settings: dict) -> str:
    """What a gain is, in one sentence."""
    confidence = round(100 * settings["confidence"])
    return (f"gain = regularizer minus {settings['baseline']} in the same cell, paired by seed "
            f"where seeds match (else unpaired), mean over seeds with a {confidence} % Student-t "
            f"interval; p = the t test of that interval, exact sign-flip (paired) or permutation "
            f"(unpaired) p beside it.")


# ---------------------------------------------------------------- documents

def _title(text: str, notice: Optional[str]) -> str:
    return f"{text} ({notice})" if notice else text


def _markdown_table(table: pd.DataFrame) -> str:
    if table is None or table.empty:
        return "_no rows_"
    cell = lambda value: str(value).replace("|", "\\|")
    lines = ["| " + " | ".join(map(cell, table.columns)) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def to_markdown(header: List[str], summary: pd.DataFrame, rules: List[str],
                sections: List[Section], notice: Optional[str]) -> str:
    """leaderboard.md: the verdict summary and its rules, the header lines, then each section
    (plots linked as PNG files)."""
    parts = [f"# {_title(TITLE, notice)}", ""]
    if notice:
        parts += [f"> **{notice.upper()}**: every number below comes from the synthetic data set.",
                  ""]
    parts += [f"## {_title('Verdicts, one per claim', notice)}", "", _markdown_table(summary), ""]
    parts += [f"- {rule}" for rule in rules] + [""]
    parts += [f"- {line}" for line in header]
    for section in sections:
        parts += ["", f"## {_title(section.title, notice)}", "", section.lead, ""]
        parts += [f"![{name}]({name}.png)" for name in section.plots]
        if section.table is not None:
            parts += ["", _markdown_table(section.table)]
    return "\n".join(parts) + "\n"


def _json_value(value):
    """A JSON value: ``results.plain``, then NaN, infinities and pandas' missing values as null."""
    value = plain(value)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return value


def _record(row: dict, fields: Sequence[str]) -> dict:
    return {name: _json_value(row.get(name)) for name in fields}


def leaderboard_json(result: dict, sources: Sequence[str]) -> dict:
    """The leaderboard.json document (see leaderboard.schema.json)."""
    keys = list(CELL) + ["regularizer"]
    entry_rows = keyed_rows(result["entries"], keys)
    provenance = keyed_rows(result["provenance"], keys)
    scores, gains = {}, {}
    for row in result["scores"].to_dict("records"):
        scores.setdefault(tuple(row[k] for k in keys), {})[row["metric"]] = _record(
            row, ("mean", "sd", "low", "high", "n"))
    for row in result["gains"].to_dict("records"):
        gains.setdefault(tuple(row[k] for k in keys), {})[row["metric"]] = {
            **_record(row, ("status", "mean", "sd", "low", "high", "n", "pairing", "p_value",
                            "p_exact", "min_attainable_p")),
            "n_treated": int(row["n_treated"]), "n_control": int(row["n_control"])}
    documents = []
    for row in result["grid"].to_dict("records"):
        key = tuple(row[k] for k in keys)
        entry, made_of = entry_rows.get(key, {}), provenance.get(key, {})
        documents.append({
            **_record(row, ("dataset", "model", "depth", "width", "num_params", "regularizer")),
            "status": "measured" if entry else "missing: no completed runs",
            "setting": entry.get("setting"), "selected_by": entry.get("selected_by"),
            "n_settings": int(entry.get("n_settings", 0)),
            "cross_fitted": None if pd.isna(entry.get("cross_fitted")) else bool(entry["cross_fitted"]),
            "n_diverged": int(entry.get("n_diverged", 0)),
            **{name: _json_value(made_of.get(name, [])) for name in
               ("seeds", "epochs", "devices", "config_hashes", "sweeps", "trial_ids")},
            "n_seeds": len(made_of.get("seeds", [])),
            "n_seeds_expected": int(row["n_seeds_expected"]),
            "trial_counts": {s: int(row[f"n_{s}"]) for s in STATUSES},
            "metrics": scores.get(key, {}), "gains": gains.get(key, {})})
    provenance_frame = result["provenance"]
    settings = result["settings"]
    return {
        "schema_version": SCHEMA_VERSION, "title": TITLE, "synthetic": result["synthetic"],
        "notice": NOTICE if result["synthetic"] else None,
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "statistic": statistic_text(settings),
        "settings": {name: _json_value(value) for name, value in settings.items()},
        "hardware": [_record(row, ("device", "n_trials"))
                     for row in result["hardware"].to_dict("records")],
        "sources": list(sources),
        "sweeps": sorted({s for names in provenance_frame["sweeps"] for s in names}),
        "config_hashes": sorted({h for hashes in provenance_frame["config_hashes"]
                                 for h in hashes}),
        "verdicts": [_record(row, ("claim", "statement", "verdict", "n_rows", "n_supporting",
                                   "n_opposing", "n_equivalent", "label", "unit", "effect", "low",
                                   "high", "p_holm"))
                     for row in result["verdicts"].to_dict("records")],
        "entries": documents,
        "collapse": [{**_record(row, ("dataset", "model", "regularizer", "metric", "axis",
                                      "n_units", "n_cells", "slope", "low", "high", "p_value",
                                      "p_holm", "min_attainable_p", "lack_of_fit_p", "drop",
                                      "drop_low", "drop_high", "detectable_drop", "alpha",
                                      "verdict")),
                      "equivalence_bound": _json_value(row["claimed_drop"])}
                     for row in result["collapse"].to_dict("records")],
        "strict_vs_relaxed": [
            _record(row, ("dataset", "model", "depth", "width", "arm", "metric", "status", "mean",
                          "low", "high", "p_value", "p_holm"))
            for row in result["strict_vs_relaxed"].to_dict("records")],
        "efficiency": [
            {**_record(row, ("dataset", "model", "regularizer", "metric", "status", "margin",
                             "num_params", "mean", "base_params", "base_mean", "p_noninferior",
                             "p_gap", "params_ratio")),
             **{name: None if pd.isna(row[name]) else int(row[name]) for name in (
                 "depth", "width", "n", "base_depth", "base_width", "base_n", "n_pairs",
                 "n_gap_pairs", "n_control_passes")}}
            for row in result["efficiency"].to_dict("records")],
    }
