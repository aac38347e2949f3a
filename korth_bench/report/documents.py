"""Leaderboard files from result tables: Markdown, one self-contained HTML page, JSON and PNGs.

`build_report(result_dirs, out_dir)` reads the four tables of one or more result directories
(merged and de-duplicated by `korth_bench.results.read_frame`), runs `korth_bench.claims.analyze`
and writes what it returns; this module only formats: the section tables, the Markdown, HTML and
JSON documents (numbers as text come from `korth_bench.report.formatting`, the figures from
`korth_bench.report.plots`). Every printed number says what it is and over how many seeds; cells without
completed runs are printed as missing; results from the synthetic data set carry "synthetic data:
not a result" in every header.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence

import pandas as pd

from korth_bench.analysis import claims
from korth_bench.analysis.entries import CELL, higher_is_better
from korth_bench.results import STATUSES, TABLES, plain
from korth_bench.report.formatting import (
    METRIC_NAMES, cell_name, gain_p_text, gain_text, keyed_rows, level_text, metric_name, metric_units,
    number_text, p_text, params_text)
from korth_bench.report.html import to_html
from korth_bench.report.plots import figures, png_bytes
from korth_bench.report.summary import summary_rules, verdict_table
from korth_bench.errors import ConfigError

NOTICE = "synthetic data: not a result"
TITLE = "korth-bench leaderboard"
SCHEMA_VERSION = "3"  # 3: the verdict summary; 2: collapse rows carry the equivalence rule; gains the exact p; efficiency
SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "leaderboard.schema.json")
AXIS_UNITS = {"log2_params": "per doubling of parameters", "depth": "per layer of depth",
              "width": "per unit of width"}


@dataclass
class Section:
    """One titled block of the report: a lead paragraph, then a table and/or a plot."""
    title: str
    lead: str
    table: Optional[pd.DataFrame] = None  # every cell already a string
    plots: List[str] = field(default_factory=list)


# ---------------------------------------------------------------- entry points

def build_report(result_dirs: Sequence[str], out_dir: str, endpoint: Optional[str] = None,
                 **options) -> Dict[str, str]:
    """Leaderboard of one or more result directories (sweep or train outputs), merged by trial_id.

    Args:
        result_dirs: directories (or URIs) holding `trials/`, `epochs/`, `layers/`, `robustness/`.
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


# ---------------------------------------------------------------- header and sections

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


def report_sections(result: dict) -> List[Section]:
    """Every section of the leaderboard, in reading order."""
    settings = result["settings"]
    confidence = f"{round(100 * settings['confidence'])} %"
    return [
        Section("Leaderboard: final test accuracy and gain over the baseline",
                f"One row per model cell and regularizer. Accuracy: mean ± sd over the seeds found"
                f" / expected. Gain: mean [{confidence} t interval] in percentage points, "
                f"with the pairing and n. p: two-sided, not adjusted for multiplicity.",
                leaderboard_table(result)),
        Section("Do the gains shrink with capacity? ([DN] claim 2)",
                f"Cell means of the per-seed gains in {collapse_metric_names(settings)} regressed "
                "on capacity. Slope and its t interval "
                f"({round(100 * (1 - settings['alpha']))} %, n_cells - 2 df) in pp per unit of "
                "the axis; p from the t test, Holm-adjusted over the log2-parameter rows "
                "(regularizers x metrics); 'drop over range': minus the slope times the capacity "
                "range, with its interval, against the equivalence bound. 'no trend' needs that "
                "interval inside the bound, else a non-significant slope is 'inconclusive'. "
                "Detectable drop: the drop over the range this design detects with 80 % power "
                "at the strictest Holm threshold, from the within-cell spread of the gains (a "
                "lower bound when cells carry offsets of their own). "
                "Lack-of-fit p: cell means about the line vs the within-cell spread. Plot: gain "
                "vs parameters with t-interval bands; x marks a missing cell.",
                collapse_table(result), ["gain_vs_capacity"]),
        Section("Regularization strength per cell",
                "Per entry, the selected coefficient(s) and the epoch-0 ratio coefficient x "
                "reg_loss / train_loss (the penalty relative to the cross-entropy), mean over its "
                "runs: a fixed coefficient whose ratio grows with capacity regularizes larger "
                "models harder, which 'gains shrink' alone cannot tell apart.",
                penalty_scale_table(result)),
        Section("Strict vs relaxed disentangled regularization at the largest capacity ([DN])",
                f"dn_relaxed minus dn in final test accuracy, at each family's largest cell: "
                f"mean [{confidence} t interval], pairing, n, p.", comparison_table(result)),
        Section("Which regularizer reaches the best near-orthogonality? ([DN] claim 1)",
                f"Per trial, the mean over conv/linear layers at the last measurement; then mean "
                f"± sd [{confidence} t interval] over seeds. Rank 1 = most orthogonal (lowest); "
                f"'tied' = interval overlaps the best's, so their order is not established.",
                ranking_table(result)),
        Section("Kernel orthogonality vs feature-map similarity ([CS] claim 4)",
                f"Spearman correlation across all completed trials of a cell (every regularizer "
                f"and coefficient) with a {confidence} Fisher-z interval (Bonett-Wright); n = "
                f"trials.", similarity_table(result), ["orthogonality_vs_similarity"]),
        Section("Capacity efficiency ([CS])",
                f"The smallest model with each regularizer that matches the baseline at a larger "
                f"model in final test accuracy, by an intersection-union test at alpha "
                f"{settings['alpha']} with margin M = "
                f"{number_text(100 * settings['efficiency_margin'])} pp: (a) regularized small "
                f"minus larger baseline > -M and (b) larger baseline minus small baseline > M, "
                f"both one-sided Welch tests rejecting. 'no match': a gap (b) the regularizer did "
                f"not close; 'inconclusive': no gap shown. The last column is the control: how "
                f"often the baseline itself passes (a).", efficiency_table(result)),
        Section("Learning curves",
                f"Mean test accuracy per epoch over each entry's seeds with {confidence} t bands.",
                None, ["learning_curves"]),
        Section("Robustness ([DN] claim 3)",
                f"Accuracy per corruption and attack, mean over the entry runs of all cells of a "
                f"family with {confidence} t bands; the gains per model cell are in the next "
                f"section. JPEG on JPEG-stored data compresses twice.", None, ["robustness"]),
        Section("All gains by metric",
                f"Every metric, cell and regularizer: gain = regularizer minus baseline, mean "
                f"[{confidence} t interval], pairing, n; 'better' says which sign is an "
                f"improvement (epochs_to_*: a negative gain is faster convergence).",
                gains_table(result)),
        Section("Runs per cell",
                "Trials per cell, regularizer and status, every status counted; a row of zeros "
                "is a cell the sweep never completed.", status_table(result)),
    ]


def leaderboard_table(result: dict) -> pd.DataFrame:
    keys = list(CELL) + ["regularizer"]
    scores = result["scores"]
    level = keyed_rows(scores[scores["metric"] == "test_acc"], keys)
    gains = result["gains"]
    gain = keyed_rows(gains[gains["metric"] == "test_acc"], keys)
    best = keyed_rows(gains[gains["metric"] == "best_test_acc"], keys)
    entry = keyed_rows(result["entries"], keys)
    rows = []
    for row in result["grid"].to_dict("records"):
        key = tuple(row[k] for k in keys)
        found = key in entry
        failed = ", ".join(f"{row[f'n_{s}']} {s}" for s in STATUSES[1:] if row[f"n_{s}"])
        rows.append({
            "model cell": cell_name(row), "params": params_text(row["num_params"]),
            "regularizer": row["regularizer"],
            "entry (selected by)": entry_text(entry[key]) if found
            else "missing: no completed runs",
            "final test accuracy": level_text({**level[key], **row}, "test_acc") if found
            else "missing",
            "gain in final test accuracy": "baseline" if row["regularizer"] ==
            result["settings"]["baseline"] else gain_text(gain[key], "test_acc"),
            "p (gain)": gain_p_text(gain[key], result["settings"]["alpha"])
            if key in gain and found and gain[key]["status"] == "measured" else "n/a",
            "gain in best test accuracy (secondary)": gain_text(best[key], "best_test_acc")
            if key in best else "n/a",
            "runs not completed": failed or "none"})
    return pd.DataFrame(rows)


def entry_text(entry: dict) -> str:
    """'coefficient=0.01 (val_acc, K=4, cross-fitted, 0 diverged)' from an entries row (a single
    setting, K=1, has nothing to cross-fit and says only K)."""
    fitted = ("" if pd.isna(entry["cross_fitted"]) else
              "cross-fitted, " if entry["cross_fitted"] else "not cross-fitted, ")
    return (f"{entry['setting']} ({entry['selected_by']}, K={int(entry['n_settings'])}, {fitted}"
            f"{int(entry['n_diverged'])} diverged)")


def collapse_metric_names(settings: dict) -> str:
    return ", ".join(METRIC_NAMES.get(m, m) for m in settings.get("collapse_metrics", ["test_acc"]))


def collapse_table(result: dict) -> pd.DataFrame:
    collapse = result["collapse"]
    settings = result["settings"]
    primary = collapse[collapse["axis"] == claims.PRIMARY_AXIS] if len(collapse) else collapse
    tests = int(primary["p_value"].notna().sum()) if len(primary) else 0
    rows = []
    several = len(collapse) and collapse["metric"].nunique() > 1
    for row in collapse.to_dict("records"):
        per = AXIS_UNITS[row["axis"]]
        verdict = (row["verdict"] if row["verdict"] == "descriptive" else
                   f"{row['verdict']} (alpha {settings['alpha']}, Holm over {tests})")
        floor = row.get("min_attainable_p", math.nan)
        if math.isfinite(floor) and floor > settings["alpha"]:
            verdict += f"; smallest attainable p {p_text(floor)}"
        rows.append({
            "family": f"{row['model']} ({row['dataset']})", "regularizer": row["regularizer"],
            **({"gain in": METRIC_NAMES.get(row["metric"], row["metric"])} if several else {}),
            "axis": row["axis"],
            "slope of gain [CI]": f"{number_text(100 * row['slope'], 3, True)} pp {per} "
            f"[{number_text(100 * row['low'], 3, True)}, "
            f"{number_text(100 * row['high'], 3, True)}]",
            "n": f"{row['n_units']} seeds in {row['n_cells']} cells",
            "p / p Holm": f"{p_text(row['p_value'])} / {p_text(row['p_holm'])}",
            "verdict": verdict + (f": {row['note']}" if isinstance(row.get("note"), str) else ""),
            "drop over range [CI] vs bound": f"{number_text(100 * row['drop'], 2, True)} pp "
            f"[{number_text(100 * row['drop_low'], 2, True)}, "
            f"{number_text(100 * row['drop_high'], 2, True)}] vs ±"
            f"{number_text(100 * row['claimed_drop'])} pp",
            "detectable drop (80 % power)": f"{number_text(100 * row['detectable_drop'], 2)} pp",
            "lack-of-fit p": p_text(row["lack_of_fit_p"])})
    return pd.DataFrame(rows)


def penalty_scale_table(result: dict) -> pd.DataFrame:
    return pd.DataFrame([
        {"model cell": cell_name(row), "params": params_text(row["num_params"]),
         "regularizer": row["regularizer"],
         "coefficient": ", ".join(f"{c:g}" for c in row["coefficients"]) or "n/a",
         "epoch-0 penalty / cross-entropy": number_text(row["ratio"], 4), "n runs": int(row["n"])}
        for row in result["penalty_scale"].to_dict("records")])


def comparison_table(result: dict) -> pd.DataFrame:
    return pd.DataFrame([
        {"model cell (largest)": cell_name(row), "params": params_text(row["num_params"]),
         **({"arm": row["arm"]} if row.get("arm") else {}),
         "dn_relaxed minus dn, final test accuracy": gain_text(row, row["metric"]),
         "p / p Holm": f"{p_text(row.get('p_value', math.nan))} / "
         f"{p_text(row.get('p_holm', math.nan))}"}
        for row in result["strict_vs_relaxed"].to_dict("records")])


def ranking_table(result: dict) -> pd.DataFrame:
    return pd.DataFrame([
        {"model cell": cell_name(row), "measure": row["measure"],
         "regularizer": row["regularizer"], "rank": number_text(row["rank"], 0),
         "mean ± sd [CI]": f"{number_text(row['mean'], 4)} ± {number_text(row['sd'], 4)} "
         f"[{number_text(row['low'], 4)}, {number_text(row['high'], 4)}]", "n seeds": int(row["n"]),
         "tied with best": "tied" if row["tied_with_best"] else ""}
        for row in result["ranking"].to_dict("records")])


def similarity_table(result: dict) -> pd.DataFrame:
    return pd.DataFrame([
        {"model cell": cell_name(row), "orthogonality": row["x"], "similarity": row["y"],
         "Spearman rho [CI]": f"{number_text(row['rho'], 2, True)} "
         f"[{number_text(row['low'], 2, True)}, {number_text(row['high'], 2, True)}]",
         "n trials": int(row["n"])}
        for row in result["similarity"].to_dict("records")])


def efficiency_table(result: dict) -> pd.DataFrame:
    rows = []
    for row in result["efficiency"].to_dict("records"):
        matched = row["status"] == "matched"
        rows.append({
            "family": f"{row['model']} ({row['dataset']})", "regularizer": row["regularizer"],
            "status": row["status"],
            "smallest matching model": f"depth {row['depth']} x{row['width']}, "
            f"{params_text(row['num_params'])}: {number_text(100 * row['mean'])} %, "
            f"n={int(row['n'])}" if matched else "",
            "matches baseline at": f"depth {row['base_depth']} x{row['base_width']}, "
            f"{params_text(row['base_params'])}: {number_text(100 * row['base_mean'])} %, "
            f"n={int(row['base_n'])}" if matched else "",
            "p (a) non-inferior / (b) gap": f"{p_text(row['p_noninferior'])} / "
            f"{p_text(row['p_gap'])}" if matched else "",
            "parameter ratio": f"{row['params_ratio']:.1f}x" if matched else "",
            "baseline's own small cell passes (a)": f"{int(row['n_control_passes'])} of "
            f"{int(row['n_gap_pairs'])} pairs with a gap"})
    return pd.DataFrame(rows)


def gains_table(result: dict) -> pd.DataFrame:
    return pd.DataFrame([
        {"model cell": cell_name(row), "regularizer": row["regularizer"],
         "metric": metric_name(row["metric"]),
         "better": "higher" if higher_is_better(row["metric"]) else "lower",
         "gain [CI], pairing, n": gain_text(row, row["metric"]),
         "sd of gain": number_text(metric_units(row["metric"])[0] * row.get("sd", math.nan)),
         "seeds found / expected": f"{int(row['n_treated'])} vs {int(row['n_control'])} "
         f"baseline / {int(row['n_seeds_expected'])}",
         "p": p_text(row.get("p_value", math.nan))}
        for row in result["gains"].to_dict("records")])


def status_table(result: dict) -> pd.DataFrame:
    return pd.DataFrame([
        {"model cell": cell_name(row), "regularizer": row["regularizer"],
         **{s: str(row[f"n_{s}"]) for s in STATUSES},
         "seeds expected": str(row["n_seeds_expected"])}
        for row in result["grid"].to_dict("records")])


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
