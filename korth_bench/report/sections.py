"""The sections of the leaderboard, in reading order: each a title, a lead paragraph saying what
its numbers are, and a table of strings (numbers as text from `korth_bench.report.formatting`)
and/or the names of its plots. Markdown and HTML (`korth_bench.report.documents`,
`korth_bench.report.html`) print the same sections.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import pandas as pd

from korth_bench.analysis.entries import CELL, higher_is_better
from korth_bench.results import STATUSES
from korth_bench.report.formatting import (
    METRIC_NAMES, cell_name, gain_p_text, gain_text, interval_text, keyed_rows,
    level_text, metric_name, metric_units, model_label, number_text, p_text, params_text,
    points_text)

AXIS_UNITS = {"log2_params": "per doubling of parameters", "depth": "per layer of depth",
              "width": "per unit of width"}


@dataclass
class Section:
    """One titled block of the report: a lead paragraph, then a table and/or a plot."""
    title: str
    lead: str
    table: Optional[pd.DataFrame] = None  # every cell already a string
    plots: List[str] = field(default_factory=list)

    @property
    def caption(self) -> str:
        """The caption of the section's figures: the lead where a figure is all the section has,
        else a pointer to the section's table."""
        return self.lead if self.table is None else f"Its numbers: '{self.title}'."

    @property
    def anchor(self) -> str:
        """The section's id in the HTML page, from its title ('do-the-gains-shrink-...')."""
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")[:60].rstrip("-")


@dataclass
class Page:
    """Everything a report document prints, in reading order: what the design cannot show, the
    answer (one bold sentence per decided claim, each with what follows it), the verdict
    summary with its sentences and rules, the figures (each named by the section that explains
    it; an empty one is its one-line message in ``empty``), the header lines, then the
    sections' tables."""
    limits: List[str]
    summary: pd.DataFrame
    sentences: List[str]
    rules: List[str]
    header: List[str]
    sections: List[Section]
    answers: List[Tuple[str, str]] = field(default_factory=list)
    empty: Dict[str, str] = field(default_factory=dict)

    @property
    def figures(self) -> List[tuple]:
        """(plot name, the section that names it), in the sections' order."""
        return [(name, section) for section in self.sections for name in section.plots]


def report_sections(result: dict) -> List[Section]:
    """Every section of the leaderboard, in reading order."""
    settings = result["settings"]
    confidence = f"{round(100 * settings['confidence'])} %"
    return [
        Section("Leaderboard: final test accuracy and gain over the baseline",
                f"One row per model cell and regularizer. Accuracy: mean ± sd over the seeds found"
                f" / expected. Gain: mean [{confidence} t interval] in accuracy points (pt), "
                f"with the pairing and n. p: two-sided, not adjusted for multiplicity.",
                leaderboard_table(result)),
        Section("Do the gains shrink with capacity? ([DN] claim 2)",
                f"Cell means of the per-seed gains in {collapse_metric_names(settings)} regressed "
                "on capacity. Slope and its t interval "
                f"({round(100 * (1 - settings['alpha']))} %) in pt per unit of "
                "the axis; p from the t test, Holm-adjusted within the row's family (the "
                "verdict column names it; the header states the families); 'drop over range': "
                "minus the slope times the capacity "
                "range, with its interval, against the equivalence bound. 'no trend' needs that "
                "interval inside the bound, else a non-significant slope is 'inconclusive'. "
                "Detectable drop: the drop over the range this design detects with 80 % power "
                "at its family's strictest Holm threshold, from the within-cell spread of the "
                "gains (a "
                "lower bound when cells carry offsets of their own). "
                "Lack-of-fit p: cell means about the line vs the within-cell spread. Figures: "
                + ("the primary contrast's cell means with their intervals on log2 parameters, "
                   "its fitted line with the line's confidence band, and in grey the "
                   "equivalence region (the fitted gain at the smallest cell ± the claimed "
                   "drop); then " if settings.get("primary") else "")
                + "one panel per regularizer, the cell means with t intervals, the arm's fitted "
                "line with its slope's interval and, dashed, the lines whose drop over the range "
                "is the claimed drop; x marks a missing cell.",
                collapse_table(result), ["gain_vs_capacity", "gain_by_arm"]),
        Section("Training length by cell: is capacity confounded with under-training? "
                "([DN] claim 2)", convergence_lead(result), convergence_table(result)),
        Section("Optimisation aid or regularization? Train gain, test gain and the "
                "generalization gap ([DN] claim 2)", decomposition_lead(result),
                decomposition_table(result)),
        Section("Claim 2's slopes without the least-trained cell",
                "The collapse slope of each arm on all cells and without the least-trained cell "
                "(the convergence check's: the baseline's largest doubling gain; no rows when "
                "convergence was not checked): pt per doubling of parameters [t interval], p "
                "(unadjusted), cells.",
                undertraining_slopes_table(result)),
        Section("Claim 1 at matched strength ([DN])",
                f"dn minus so in each layer-mean orthogonality measure, only where their "
                f"strengths match: the same coefficient or epoch-0 penalty ratios within "
                f"{settings['match_factor']:g}x, every completed trial of one cell, arm and sweep; "
                f"mean [{confidence} t interval], n, p (t) with the exact check's floor. "
                f"Negative: dn more orthogonal. No rows: 'inconclusive (strengths not matched)'.",
                matched_strength_table(result)),
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
        Section("Did each penalty change the kernels' shape, or only their scale? ([CS] claim 4)",
                f"Per cell, regularizer minus baseline in a scale-dependent measure of what the "
                f"penalty minimizes and in its scale-free counterpart (cs: cs_mean and "
                f"cs_normalized_mean; the others: ortho_gram_residual_mean and ortho_cos_mean): "
                f"mean [{confidence} t interval], n, p, and the change relative to the baseline. "
                f"Batch norm hides a kernel's scale, so a penalty that moves only the "
                f"scale-dependent measure shrank the filters without changing their directions; "
                f"its feature-map similarity verdict then says nothing about the claimed "
                f"mechanism.", penalty_targets_table(result)),
        Section("Capacity efficiency ([CS])",
                f"The smallest model with each regularizer that matches the baseline at a larger "
                f"model in final test accuracy, by an intersection-union test at alpha "
                f"{settings['alpha']} with margin M = "
                f"{number_text(100 * settings['efficiency_margin'])} pt: (a) regularized small "
                f"minus larger baseline > -M and (b) larger baseline minus small baseline > M, "
                f"both one-sided Welch tests rejecting, the pair's p (the larger of the two) "
                f"Holm-adjusted over every pair and regularizer tested, so that a match anywhere "
                f"by chance stays below alpha. 'no match': a gap (b) the regularizer did "
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
    rows = []
    several = len(collapse) and collapse["metric"].nunique() > 1
    for row in collapse.to_dict("records"):
        per = AXIS_UNITS[row["axis"]]
        verdict = (row["verdict"] if row["verdict"] == "descriptive" else
                   f"{row['verdict']} ({family_text(row, settings['alpha'])})")
        floor = row.get("min_attainable_p", math.nan)
        if math.isfinite(floor) and floor > settings["alpha"]:
            verdict += f"; smallest attainable p {p_text(floor)}"
        rows.append({
            "family": f"{row['model']} ({row['dataset']})", "regularizer": row["regularizer"],
            **({"gain in": METRIC_NAMES.get(row["metric"], row["metric"])} if several else {}),
            "axis": row["axis"],
            "slope of gain [CI]": f"{number_text(100 * row['slope'], 3, True)} pt {per} "
            f"[{number_text(100 * row['low'], 3, True)}, "
            f"{number_text(100 * row['high'], 3, True)}]",
            "n": f"{row['n_units']} seeds in {row['n_cells']} cells",
            "p / p Holm": f"{p_text(row['p_value'])} / {p_text(row['p_holm'])}",
            "verdict": verdict + (f": {row['note']}" if isinstance(row.get("note"), str) else ""),
            "drop over range [CI] vs bound": f"{number_text(100 * row['drop'], 2, True)} pt "
            f"[{number_text(100 * row['drop_low'], 2, True)}, "
            f"{number_text(100 * row['drop_high'], 2, True)}] vs ±"
            f"{number_text(100 * row['claimed_drop'])} pt",
            "detectable drop (80 % power)": f"{number_text(100 * row['detectable_drop'], 2)} pt",
            "lack-of-fit p": p_text(row["lack_of_fit_p"])})
    return pd.DataFrame(rows)


def family_text(row: dict, alpha: float) -> str:
    """'alpha 0.05, Holm over 5 (claim 2)' or 'alpha 0.05, alone (primary)': the family a
    collapse row is adjusted in."""
    size = int(row["family_size"])
    if row["test_family"] == "primary":
        return f"alpha {alpha}, alone (primary)"
    return f"alpha {alpha}, Holm over {size} ({row['test_family']})"


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


def penalty_targets_table(result: dict) -> pd.DataFrame:
    return pd.DataFrame([
        {"model cell": cell_name(row), "regularizer": row["regularizer"],
         "measure": row["measure"], "scale": row["scale"],
         "baseline mean": number_text(row["baseline_mean"], 4),
         "regularizer minus baseline [CI]": f"{number_text(row['mean'], 4, True)} "
         f"[{number_text(row['low'], 4, True)}, {number_text(row['high'], 4, True)}], n={row['n']}",
         "p": p_text(row["p_value"]), "relative change": f"{number_text(100 * row['relative'], 1, True)} %"}
        for row in result["penalty_targets"].to_dict("records")])


def efficiency_table(result: dict) -> pd.DataFrame:
    rows = []
    for row in result["efficiency"].to_dict("records"):
        matched = row["status"] == "matched"
        rows.append({
            "family": f"{row['model']} ({row['dataset']})", "regularizer": row["regularizer"],
            "status": row["status"],
            "smallest matching model": f"{model_label(row['model'], row['depth'], row['width'])}, "
            f"{params_text(row['num_params'])}: {number_text(100 * row['mean'])} %, "
            f"n={int(row['n'])}" if matched else "",
            "matches baseline at": f"{model_label(row['model'], row['base_depth'], row['base_width'])}, "
            f"{params_text(row['base_params'])}: {number_text(100 * row['base_mean'])} %, "
            f"n={int(row['base_n'])}" if matched else "",
            "p (a) non-inferior / (b) gap": f"{p_text(row['p_noninferior'])} / "
            f"{p_text(row['p_gap'])}" if matched else "",
            "parameter ratio": f"{row['params_ratio']:.1f}x" if matched else "",
            f"p Holm (over {int(row['n_tests'])} pair x regularizer tests)":
                p_text(row["p_holm"]),
            "baseline's own small cell passes (a)": f"{int(row['n_control_passes'])} of "
            f"{int(row['n_gap_pairs'])} pairs with a gap"})
    return pd.DataFrame(rows)


def undertraining_text(found: dict) -> str:
    """The convergence check's outcome in one sentence (analysis.convergence: its ``message``;
    for a result without one, the older last-two-epoch rule's outcome)."""
    if found.get("message"):
        return f"Convergence check: {found['message']}."
    if found["least_trained"] is None:
        return "Not measured (no epochs table or no baseline curves)."
    cell = dict(zip(CELL, found["least_trained"]))
    verdict = "flagged" if found["flagged"] else "not flagged"
    return (f"Here: {verdict}, the gains differ by up to {number_text(100 * found['spread'])} pt "
            f"(correlation with log2 parameters r = {number_text(found['correlation'], 2, True)}); "
            f"least trained: {cell_name(cell)}.")


WEAK = "weak under a decaying schedule"
"""The label of the last-epoch columns: near 0 at any budget when the learning rate decays to
0, so they cannot show under-training (analysis.convergence)."""


def _checked(result: dict) -> bool:
    convergence = result["convergence"]
    return "doubling_gain" in convergence and bool(convergence["doubling_gain"].notna().any())


def convergence_lead(result: dict) -> str:
    settings = result["settings"]
    confidence = round(100 * settings["confidence"])
    return (undertraining_text(result["undertraining"]) + " Per cell, the baseline's doubling "
            "gain: its mean final test accuracy at twice the study's epochs (reference runs, "
            "kept out of every entry and claim) minus at the study's budget, with its "
            f"{confidence} % Welch interval. Rule: when the doubling gains of two cells differ "
            f"by more than the claimed drop ({100 * settings['claimed_drop']:g} pt), a "
            "capacity trend of that size could be a trend in under-training, and claim 2's "
            "verdict says so; without reference runs nothing is checked. Descriptive, "
            f"{WEAK}: the baseline's gain over its last epoch and its last two epochs (near 0 "
            "at any budget when the learning rate decays to 0), its final train accuracy, and "
            "the share of all completed trials whose best test epoch is the last.")


def convergence_table(result: dict) -> pd.DataFrame:
    checked = _checked(result)
    rows = []
    for row in result["convergence"].to_dict("records"):
        entry = {"model cell": cell_name(row), "params": params_text(row["num_params"]),
                 "epochs": int(row["epochs"]), "baseline runs": int(row["n_baseline"])}
        if checked:
            reference = row.get("reference_epochs", math.nan)
            measured = reference is not None and math.isfinite(reference) and math.isfinite(
                row.get("doubling_gain", math.nan))
            entry.update({
                "baseline test accuracy": f"{number_text(100 * row['baseline_test_acc'])} %",
                "at twice the epochs (reference runs)":
                    f"{number_text(100 * row['reference_test_acc'])} % at {int(reference)} "
                    f"epochs, n={int(row['n_reference'])}" if measured else "no reference runs",
                "doubling gain [CI]":
                    f"{points_text(row['doubling_gain'])} pt "
                    f"{interval_text(row['doubling_gain_low'], row['doubling_gain_high'])}"
                    if measured else "not checked"})
        entry.update({
            f"baseline gain, last epoch ({WEAK})":
                f"{points_text(row['last_epoch_gain'])} pt",
            f"baseline gain, last two epochs ({WEAK})":
                f"{points_text(row['last_two_epoch_gain'])} pt",
            "baseline final train accuracy": f"{number_text(100 * row['final_train_acc'])} %",
            "trials whose best epoch is the last":
                f"{round(row['best_is_last_share'] * row['n_trials'])} of {int(row['n_trials'])}"})
        rows.append(entry)
    return pd.DataFrame(rows)


def decomposition_lead(result: dict) -> str:
    confidence = round(100 * result["settings"]["confidence"])
    sentence = result.get("decomposition_sentence")
    return ("Per cell and arm, regularizer minus baseline in final train accuracy beside the "
            "same in final test accuracy, and the change of the generalization gap (train "
            "minus test accuracy: the arm's gap minus the baseline's, negative = narrows), "
            f"each with its {confidence} % t interval (paired by seed where seeds match). "
            "Reading: 'regularization' when the gap narrows (its interval below 0); "
            "'optimisation aid' when the train gain's interval lies above 0 and the gap does "
            "not narrow (train gain about equal to test gain); else 'unclear'. Train accuracy "
            "is the running accuracy over the last epoch's augmented batches."
            + (f" {sentence}" if sentence else ""))


def decomposition_table(result: dict) -> Optional[pd.DataFrame]:
    table = result.get("decomposition")
    if table is None:
        return None
    interval = lambda row, name, low, high: (  # noqa: E731
        f"{points_text(row[name])} pt {interval_text(row[low], row[high])}")
    return pd.DataFrame([
        {"model cell": cell_name(row), "params": params_text(row["num_params"]),
         "regularizer": row["regularizer"],
         "test gain [CI]": interval(row, "test_gain", "test_low", "test_high"),
         "train gain [CI]": interval(row, "train_gain", "train_low", "train_high"),
         "gap change [CI] (negative: narrows)": interval(row, "gap_change", "gap_low",
                                                         "gap_high"),
         "reading": row["reading"],
         "seeds": f"{int(row['n_treated'])} vs {int(row['n_control'])} baseline"}
        for row in table.to_dict("records")])


def undertraining_slopes_table(result: dict) -> pd.DataFrame:
    slope = lambda row, end="": (  # noqa: E731
        f"{number_text(100 * row['slope' + end], 3, True)} "
        f"[{number_text(100 * row['low' + end], 3, True)}, "
        f"{number_text(100 * row['high' + end], 3, True)}], p {p_text(row['p_value' + end])}, "
        f"{int(row['n_cells' + end])} cells")
    return pd.DataFrame([
        {"family": f"{row['model']} ({row['dataset']})", "regularizer": row["regularizer"],
         "gain in": METRIC_NAMES.get(row["metric"], row["metric"]),
         "slope, all cells": slope(row), "slope without the least-trained cell":
             slope(row, "_without") if pd.notna(row["slope_without"]) else "n/a"}
        for row in result["undertraining_slopes"].to_dict("records")])


def matched_strength_table(result: dict) -> pd.DataFrame:
    alpha = result["settings"]["alpha"]
    return pd.DataFrame([
        {"model cell": cell_name(row), "sweep": row["sweep"],
         "dn (coefficient, epoch-0 ratio)": f"{row['treated']} ({row['treated_coefficient']:g}, "
         f"{number_text(row['treated_ratio'], 4)})",
         "so (coefficient, epoch-0 ratio)": f"{row['control']} ({row['control_coefficient']:g}, "
         f"{number_text(row['control_ratio'], 4)})",
         "matched by": row["matched_by"], "measure": row["measure"],
         "dn minus so [CI]": f"{number_text(row['mean'], 4, True)} "
         f"[{number_text(row['low'], 4, True)}, {number_text(row['high'], 4, True)}], "
         f"{row['pairing']}, n={int(row['n'])}",
         "p": gain_p_text(row, alpha)}
        for row in result["matched_strength"].to_dict("records")])


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


# ---------------------------------------------------------------- joined arms (korth_bench.join)
def joined_mark(manifest: dict) -> str:
    """'joined 2026-12-07, code 1a2b3c4d5e6f, re-baselined (4 seeds)': when, which code, which
    baseline."""
    return (f"joined {str(manifest.get('joined_at', ''))[:10]}, code "
            f"{str(manifest.get('code_fingerprint', ''))[:12]}, {manifest.get('mode')}")


def joined_leaderboard_rows(joined: List[dict]) -> pd.DataFrame:
    """The joined arms' rows of the leaderboard table, marked as joined."""
    rows = []
    for found in joined:
        mark = joined_mark(found["manifest"])
        for row in found["entries"].to_dict("records"):
            rows.append({
                "model cell": cell_name(row), "params": params_text(row["num_params"]),
                "regularizer": f"{row['regularizer']} (joined)",
                "entry (selected by)": f"coefficient={row['coefficient']:g} ({mark})",
                "final test accuracy": f"{number_text(100 * row['mean'])} % ± "
                f"{number_text(100 * row['sd'])} sd ({row['n_seeds']} seeds)",
                "gain in final test accuracy": f"{points_text(row['gain'])} pt "
                f"{interval_text(row['gain_low'], row['gain_high'])}, {row['pairing']}, against "
                f"the {row['baseline']} baseline",
                "p (gain)": f"{p_text(row['p_value'])} (added after the fact)",
                "gain in best test accuracy (secondary)": "n/a", "runs not completed": "n/a"})
    return pd.DataFrame(rows)


def joined_sections(joined: List[dict], confidence: float) -> List[Section]:
    """One section per join: its entries, its slope and, re-baselined, the baseline's drift."""
    level = f"{round(100 * confidence)} %"
    sections = []
    for found in joined:
        manifest = found["manifest"]
        rows = [{"row": f"{cell_name(r)}, {r['regularizer']} (coefficient {r['coefficient']:g})",
                 "what": "gain in final test accuracy over the baseline",
                 "estimate": f"{points_text(r['gain'])} pt {interval_text(r['gain_low'], r['gain_high'])}",
                 "n / pairing": f"{r['n_seeds']} seeds, {r['pairing']}, {r['baseline']} baseline",
                 "p (alone)": p_text(r["p_value"])} for r in found["entries"].to_dict("records")]
        rows += [{"row": f"{r['regularizer']} over {r['n_cells']} cells",
                  "what": "slope of the gain per doubling of parameters (fixed cells)",
                  "estimate": f"{points_text(r['slope'])} pt {interval_text(r['low'], r['high'])}",
                  "n / pairing": f"{r['n_cells']} cells", "p (alone)": p_text(r["p_value"])}
                 for r in found["slopes"].to_dict("records")]
        rows += [{"row": f"{cell_name(r)}, baseline re-run",
                  "what": "drift: re-run minus committed baseline (description only)",
                  "estimate": f"{points_text(r['mean'])} pt {interval_text(r['low'], r['high'])}",
                  "n / pairing": f"{r['n_rerun']} re-run, {r['n_committed']} committed seeds",
                  "p (alone)": "not tested"} for r in found["drift"].to_dict("records")]
        sections.append(Section(
            f"Joined after the fact: {', '.join(manifest.get('arms', []))} "
            f"({joined_mark(manifest)})",
            f"Arms added to the study {manifest.get('study')} by a join, with its cells, seeds "
            f"and recorded protocol; the study's pre-registered families and verdicts above do "
            f"not include them. Each row is tested on its own ({level} t intervals, p "
            f"unadjusted). Baseline: the study's committed runs paired by seed when the join's "
            f"first epoch repeated the committed one ('same arithmetic'), else the join's "
            f"re-run baseline seeds.", pd.DataFrame(rows, columns=["row", "what", "estimate",
                                                                 "n / pairing", "p (alone)"])))
    return sections
