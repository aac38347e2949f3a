"""Leaderboard files from result tables: Markdown, one self-contained HTML page, JSON and SVGs.

`build_report(result_dirs, out_dir)` reads the four tables of one or more result directories
(merged and de-duplicated by `korth_bench.results.read_frame`), runs
`korth_bench.analysis.claims.analyze` and writes what it returns; this module only formats: the
header lines, the Markdown and JSON documents (the sections and their tables come from
`korth_bench.report.sections`, the sentences under the verdicts and the design's limits from
`korth_bench.report.headline`, the page from `korth_bench.report.html`, the figures from
`korth_bench.report.plots`). Both documents read in the same order: what the design cannot
show, the verdicts with their sentences and rules, the figures, the header lines, the tables. Every printed number says what it is and over how many seeds; cells
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
from korth_bench.analysis.collapse import PRIMARY_AXIS
from korth_bench.analysis.entries import CELL
from korth_bench.results import STATUSES, TABLES, plain
from korth_bench.report.formatting import keyed_rows
from korth_bench.report.html import to_html
from korth_bench.report.headline import (
    claim_sentences, headline_sentences, report_limits, tested_span, trend_row)
from korth_bench.report.plots import figures, svg_text
from korth_bench.analysis.joined import joined_analysis
from korth_bench.report.sections import (Page, joined_leaderboard_rows, joined_mark,
                                         joined_sections, report_sections)
from korth_bench.report.summary import summary_rules, verdict_table
from korth_bench.errors import ConfigError

NOTICE = "synthetic data: not a result"
TITLE = "korth-bench leaderboard"
SCHEMA_VERSION = "6"  # 6 (and an optional "joined": arms a join added, korth_bench.join): the answer sentences, verdict reach, the convergence check, the gain decomposition, the regime; 5: hardware rows name the precision; 4: collapse rows name their Holm family; 3: the verdict summary; 2: collapse rows carry the equivalence rule; gains the exact p; efficiency
SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "leaderboard.schema.json")


# ---------------------------------------------------------------- entry points

def build_report(result_dirs: Sequence[str], out_dir: str, endpoint: Optional[str] = None,
                 **options) -> Dict[str, str]:
    """Leaderboard of one or more result directories (sweep or train outputs), merged by trial_id.

    Args:
        result_dirs: directories (or URIs) holding `trials/`, `epochs/`, `layers/`, `robustness/`,
            or folders of such directories (`results/train`, one per trial: ``results.result_roots``).
        out_dir: where leaderboard.md, leaderboard.html, leaderboard.json and the SVGs go.
        endpoint: an S3-compatible server for ``s3://`` directories (default ``AWS_ENDPOINT_URL``).
        **options: passed to korth_bench.analysis.analyze (selection='val'|'test',
            claimed_drop, alpha, confidence, n_permutations, n_bootstrap, seed, ...).
    Returns:
        {'html', 'markdown', 'json', <plot name>: path} of every file written.
    """
    from korth_bench.join import read_manifest
    from korth_bench.results import read_frame

    dirs = [result_dirs] if isinstance(result_dirs, str) else list(result_dirs)
    joins = {d: m for d in dirs if "://" not in d and (m := read_manifest(d)) is not None}
    study_dirs = [d for d in dirs if d not in joins]
    if joins and not study_dirs:
        raise ConfigError(f"{', '.join(joins)}: a join's directory reports with its study: "
                          f"korth-bench report <study dir> {' '.join(joins)}")
    frames = {table: read_frame(study_dirs, table, endpoint=endpoint) for table in TABLES}
    joined = [(manifest, read_frame(d, "trials")) for d, manifest in joins.items()]
    return build_report_from_frames(frames, out_dir, sources=dirs, joined=joined, **options)


def build_report_from_frames(frames: Dict[str, pd.DataFrame], out_dir: str,
                             sources: Sequence[str] = (),
                             joined: Sequence[tuple] = (), **options) -> Dict[str, str]:
    """The same as build_report, from already-loaded tables ({table name: DataFrame});
    ``joined``: (join.json document, the join's trials) of each join, reported beside the
    study (analysis.joined), never inside its analysis."""
    if frames.get("trials") is None or frames["trials"].empty:
        where = ", ".join(map(str, sources)) or "the given frames"
        raise ConfigError(f"no trials rows in {where}: nothing to report")
    result = claims.analyze(frames, **options)
    result["joined"] = [joined_analysis(frames["trials"], trials, manifest,
                                        result["settings"]["confidence"], result["settings"]["seed"])
                        for manifest, trials in joined]
    os.makedirs(out_dir, exist_ok=True)
    notice = NOTICE if result["synthetic"] else None
    plots = figures(result, notice)
    images = {name: svg_text(plot, name) for name, plot in plots.items() if plot.figure is not None}
    written = {}
    for name, plot in plots.items():
        if name in images:
            written[name] = _write(out_dir, f"{name}.svg", images[name].encode())
        elif os.path.exists(stale := os.path.join(out_dir, f"{name}.svg")):
            os.remove(stale)  # an earlier run's image of what has no data now
    sections = report_sections(result)
    if result["joined"]:
        board = sections[0]
        board.table = pd.concat([board.table, joined_leaderboard_rows(result["joined"])],
                                ignore_index=True)
        sections[1:1] = joined_sections(result["joined"], result["settings"]["confidence"])
    for section in sections:
        section.plots = [name for name in section.plots if name in plots]
    trend = trend_row(result)
    page = Page(limits=report_limits(result),
                summary=verdict_table(result["verdicts"], result["settings"]["alpha"], trend,
                                      tested_span(result, trend) if trend else None),
                sentences=headline_sentences(result), rules=summary_rules(result["settings"]),
                header=header_lines(result, sources), sections=sections,
                answers=claim_sentences(result) + joined_answers(result["joined"]),
                empty={name: plot.message for name, plot in plots.items() if plot.figure is None})
    written["markdown"] = _write(out_dir, "leaderboard.md", to_markdown(page, notice).encode())
    written["html"] = _write(out_dir, "leaderboard.html",
                             to_html(TITLE, page, plots, images, notice).encode())
    document = leaderboard_json(result, sources, page.answers)
    written["json"] = _write(out_dir, "leaderboard.json",
                             json.dumps(document, indent=1, allow_nan=False).encode())
    return written


def joined_answers(joined: Sequence[dict]) -> List[tuple]:
    """The first screen's line for each join: what was added after the fact, and that the
    study's verdicts do not include it."""
    return [(f"Joined after the fact: {', '.join(found['manifest'].get('arms', []))} at "
             f"{found['entries']['depth'].nunique()} cell(s) of {found['manifest'].get('study')} "
             f"({joined_mark(found['manifest'])}).",
             "Its rows are marked 'joined' and tested on their own; the pre-registered verdicts "
             "above are the study's alone.") for found in joined]


def _write(out_dir: str, name: str, data: bytes) -> str:
    path = os.path.join(out_dir, name)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


# ---------------------------------------------------------------- header

def header_lines(result: dict, sources: Sequence[str]) -> List[str]:
    """Hardware, trial and seed counts, the statistic and the selection rule, one line each."""
    grid, settings = result["grid"], result["settings"]
    # rows written before provenance said "1 thread" read "1 threads"
    hardware = ", ".join(f"{row.device.replace(' 1 threads)', ' 1 thread)')}, {row.precision} "
                         f"({row.n_trials} trials)" for row in result["hardware"].itertuples())
    counts = ", ".join(f"{int(grid[f'n_{s}'].sum())} {s}" for s in STATUSES)
    seeds = result["provenance"]["seeds"].map(len)
    expected = grid["n_seeds_expected"]
    confidence = round(100 * settings["confidence"])
    lines = [
        f"Hardware (device, precision_resolved): {hardware}.",
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
        f"{100 * settings['claimed_drop']:.1f} pt over the capacity range; {confidence} % "
        f"intervals for gains; seed {settings['seed']} for the exact tests' Monte Carlo draws.",
        *family_lines(result),
        *rule_lines(settings),
    ]
    if sources:
        lines.append("Sources: " + ", ".join(sources) + ".")
    return lines


def family_lines(result: dict) -> List[str]:
    """Claim 2's test families, stated once (the verdict, the collapse table and its detectable
    drop use them), and the primary contrast with when it was declared."""
    collapse, settings = result["collapse"], result["settings"]
    if not len(collapse):
        return []
    rows = collapse[collapse["axis"] == PRIMARY_AXIS]
    alpha, drop = settings["alpha"], f"{100 * settings['claimed_drop']:.1f} pt"
    parts = []
    for name, what in (("claim 2", "the strict-orthogonality arms"),
                       ("outside claim 2", "the other regularizers, their own family")):
        part = rows[rows["test_family"] == name]
        if len(part):
            parts.append(f"{name} ({what}): {', '.join(sorted(set(part['regularizer'])))} in "
                         f"{', '.join(sorted(set(part['metric'])))}, {len(part)} tests")
    lines = [f"Collapse families, Holm at alpha {alpha} within each: " + "; ".join(parts) + "."]
    primary = settings.get("primary")
    if not primary:
        return [lines[0][:-1] + "; claim 2's verdict decides on the claim 2 family."]
    column = result["completed"].get("started_at")
    started = (pd.to_datetime(column, utc=True, errors="coerce") if column is not None
               else pd.Series([], dtype="datetime64[ns, UTC]"))
    first = started.min() if len(started) else pd.NaT
    declared = primary.get("declared")
    if not declared:
        when = "named at report time (--primary), not declared before the data"
    elif pd.notna(first) and pd.Timestamp(declared, tz="UTC") > first.normalize():
        when = (f"declared on {declared} in {primary.get('source')}, AFTER the first trial "
                f"started ({first.date()}): not a pre-registration")
    else:
        when = (f"declared on {declared} in {primary.get('source')}, before the data" +
                (f" (the first trial started {first.date()})" if pd.notna(first) else ""))
    overrides = primary.get("overrides") or []
    lines.append(
        f"Primary contrast (claim 2's verdict): the mean gain of {', '.join(primary['arms'])} in "
        f"{primary['metric']}, per seed and cell; its slope on log2 parameters is tested alone "
        f"at alpha {alpha}, equivalence bound ±{drop}; {when}"
        + (f"; overridden on the command line: {', '.join(overrides)}" if overrides else "")
        + ". The per-arm rows are secondary.")
    return lines


def rule_lines(settings: dict) -> List[str]:
    """The rule behind each verdict, one sentence each (the same text in Markdown and HTML)."""
    alpha = settings["alpha"]
    drop = f"{100 * settings['claimed_drop']:.1f} pt"
    return [
        "Rule, gain p: the two-sided t test that goes with the printed interval (it is below "
        f"{alpha} exactly when the {round(100 * (1 - alpha))} % interval excludes 0), with the exact "
        "sign-flip or permutation p beside it and that test's smallest attainable p wherever it "
        f"exceeds {alpha}.",
        "Rule, collapse slope: the mean gain of each cell regressed on log2 of the parameter count, "
        f"t test on n_cells - 2 degrees of freedom, Holm at alpha {alpha} within the row's "
        "family (above; the primary contrast alone); depth and width rows are descriptive.",
        f"Rule, 'no trend': only when the slope is not significant, its test could reach its Holm "
        f"threshold, and the {round(100 * (1 - alpha))} % interval of the drop over the capacity "
        f"range lies inside ±{drop} (an equivalence test); otherwise 'inconclusive'.",
        "Rule, lack of fit: an F test of the cell means about the line against the within-cell "
        "seed spread; a small p says the cells differ by more than a line and seed noise.",
        "Rule, capacity efficiency: a small regularized model matches a larger baseline only "
        "when it is shown no more than M below it and that baseline is shown more than M above "
        "the small baseline, both one-sided Welch tests (an intersection-union test, p = the "
        f"larger of the two), Holm-adjusted over every pair and regularizer tested, at {alpha}.",
        f"Rule, claim 1 at matched strength: dn and so are compared only at the same "
        f"coefficient or at epoch-0 penalty ratios within {settings['match_factor']:g}x of each "
        "other (every completed trial of one cell, arm and sweep); without such a pair, "
        "'inconclusive (strengths not matched)'; the selected entries' comparison is descriptive.",
        "Rule, under-training: capacity is confounded with under-training when the baseline's "
        "doubling gain (its test accuracy at twice the epochs minus at the study's budget) "
        f"differs between the cells of a family by more than the claimed drop ({drop}); claim "
        "2's verdict then says so; without runs at a second budget convergence is not checked, "
        "and the report says so.",
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


def _figure_title(name: str) -> str:
    """'Robustness' for the figure 'robustness': how an empty figure's line starts."""
    return name.replace("_", " ").capitalize()


def _markdown_table(table: pd.DataFrame) -> str:
    if table is None or table.empty:
        return "_no rows_"
    cell = lambda value: str(value).replace("|", "\\|")
    lines = ["| " + " | ".join(map(cell, table.columns)) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def to_markdown(page: Page, notice: Optional[str]) -> str:
    """leaderboard.md, in the page's order (sections.Page); figures linked as SVG files."""
    parts = [f"# {_title(TITLE, notice)}", ""]
    if notice:
        parts += [f"> **{notice.upper()}**: every number below comes from the synthetic data set.",
                  ""]
    parts += [f"> **What this report cannot show**: {limit}." for limit in page.limits]
    parts += [""] if page.limits else []
    parts += [f"## {_title('Verdicts, one per claim', notice)}", ""]
    parts += [f"**{sentence}**" + (f" {after}" if after else "") + "\n"
              for sentence, after in page.answers]
    parts += [_markdown_table(page.summary), ""]
    parts += [" ".join(page.sentences), ""] if page.sentences else []
    parts += [f"- {rule}" for rule in page.rules] + [""]
    parts += [f"## {_title('Figures', notice)}", ""]
    parts += [f"_{_figure_title(name)}: {page.empty[name]}._\n" if name in page.empty else
              f"![{name}]({name}.svg)  \n_{section.caption}_\n" for name, section in page.figures]
    parts += [f"## {_title('What was run and how it is tested', notice)}", ""]
    parts += [f"- {line}" for line in page.header]
    for section in page.sections:
        if section.table is not None:
            parts += ["", f"## {_title(section.title, notice)}", "", section.lead, "",
                      _markdown_table(section.table)]
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


def _frame_records(frame: Optional[pd.DataFrame]) -> List[dict]:
    """A frame's rows as JSON objects (every column; tuples and arrays as lists)."""
    if frame is None or not len(frame):
        return []
    return [{name: _json_value(value) for name, value in row.items()}
            for row in frame.to_dict("records")]


def _plain_dict(found: Optional[dict]) -> Optional[dict]:
    """A dict of the analysis (the convergence check, the regime) as a JSON object."""
    if found is None:
        return None
    return {name: _json_value(value) for name, value in found.items()}


def leaderboard_json(result: dict, sources: Sequence[str],
                     answers: Sequence[tuple] = ()) -> dict:
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
        "hardware": [_record(row, ("device", "precision", "n_trials"))
                     for row in result["hardware"].to_dict("records")],
        "sources": list(sources),
        "sweeps": sorted({s for names in provenance_frame["sweeps"] for s in names}),
        "config_hashes": sorted({h for hashes in provenance_frame["config_hashes"]
                                 for h in hashes}),
        "verdicts": [_record(row, ("claim", "statement", "verdict", "n_rows", "n_supporting",
                                   "n_opposing", "n_equivalent", "label", "unit", "effect", "low",
                                   "high", "p_holm", "seeds_min", "seeds_max", "exact_floor",
                                   "caveat")) | {"reach": row.get("reach") or ""}
                     for row in result["verdicts"].to_dict("records")],
        "answers": [{"sentence": sentence, "then": after} for sentence, after in answers],
        "regime": _plain_dict(result.get("regime")),
        "convergence_check": _plain_dict(result.get("undertraining")),
        "convergence": _frame_records(result.get("convergence")),
        "decomposition": _frame_records(result.get("decomposition")),
        "decomposition_sentence": result.get("decomposition_sentence"),
        **({"joined": [{"manifest": _json_value({k: v for k, v in found["manifest"].items()
                                             if k != "first_epoch"}),
                    "first_epoch": _json_value(found["manifest"].get("first_epoch", [])),
                    "entries": _frame_records(found["entries"]),
                    "slopes": _frame_records(found["slopes"]),
                    "drift": _frame_records(found["drift"])} for found in result["joined"]]}
           if result.get("joined") else {}),
        "entries": documents,
        "collapse": [{**_record(row, ("dataset", "model", "regularizer", "metric", "axis",
                                      "test_family", "family_size", "n_units", "n_cells", "slope", "low", "high", "p_value",
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
                             "p_gap", "p_iut", "p_holm", "params_ratio")),
             **{name: None if pd.isna(row[name]) else int(row[name]) for name in (
                 "depth", "width", "n", "base_depth", "base_width", "base_n", "n_pairs",
                 "n_gap_pairs", "n_control_passes", "n_tests")}}
            for row in result["efficiency"].to_dict("records")],
    }
