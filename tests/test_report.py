"""Leaderboard files: written, schema-valid, labelled synthetic, missing cells visible, and the HTML
renders in headless Chromium without console errors."""
import glob
import html
import json
import math
import os
import re
import shutil
import subprocess

import pytest

from korth_bench import cli
from korth_bench.report import documents as report
from korth_bench.report.formatting import gain_text, number_text
from test_analysis import make_tables

PLOTS = ("gain_vs_capacity", "learning_curves", "robustness", "orthogonality_vs_similarity")


def schema_errors(document, schema):
    """Validation errors of document against schema: jsonschema when installed, else a tiny
    validator for the keywords leaderboard.schema.json uses."""
    try:
        import jsonschema
    except ImportError:
        return _tiny_errors(document, schema, schema, "$")
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def _tiny_errors(value, schema, root, where):
    if "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        return _tiny_errors(value, node, root, where)
    if "anyOf" in schema:
        options = [_tiny_errors(value, option, root, where) for option in schema["anyOf"]]
        return [] if any(not errors for errors in options) else [f"{where}: no anyOf matches"]
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
             "integer": int, "number": (int, float)}
    allowed = schema.get("type")
    allowed = [allowed] if isinstance(allowed, str) else allowed
    if allowed and not any(isinstance(value, kinds[k]) and not (
            k in ("integer", "number") and isinstance(value, bool)) for k in allowed):
        return [f"{where}: {value!r} is not {allowed}"]
    if "const" in schema and value != schema["const"]:
        return [f"{where}: {value!r} != {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    errors = []
    if isinstance(value, dict):
        errors += [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
        for key, item in value.items():
            sub = schema.get("properties", {}).get(key, schema.get("additionalProperties", {}))
            if isinstance(sub, dict):
                errors += _tiny_errors(item, sub, root, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += _tiny_errors(item, schema["items"], root, f"{where}[{index}]")
    return errors


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    """A report of planted synthetic tables with one missing regularizer cell and one missing
    baseline cell."""
    frames = make_tables(depths=(8, 14, 20))
    trials = frames["trials"]
    missing = (((trials["depth"] == 14) & (trials["regularizer"] == "so"))
               | ((trials["depth"] == 20) & (trials["regularizer"] == "none")))
    frames["trials"] = trials[~missing]
    out = tmp_path_factory.mktemp("report")
    return report.build_report_from_frames(frames, str(out))


def test_every_file_is_written(synthetic_report):
    assert set(synthetic_report) == {"html", "markdown", "json", *PLOTS}
    for path in synthetic_report.values():
        assert os.path.getsize(path) > 0
    for name in PLOTS:
        assert synthetic_report[name].endswith(f"{name}.svg")
        with open(synthetic_report[name]) as handle:
            assert handle.read(4) == "<svg"


def test_json_validates_and_has_one_entry_per_regularizer_per_cell(synthetic_report):
    with open(synthetic_report["json"]) as handle:
        document = json.load(handle)
    schema = _schema()
    assert schema_errors(document, schema) == []
    entries = document["entries"]
    assert len(entries) == 3 * 4  # 3 cells x 4 regularizers, missing ones included
    measured = [e for e in entries if e["status"] == "measured"]
    assert all(e["devices"] == ["cpu (synthetic)"] and e["epochs"] == [4] and
               e["seeds"] == [0, 1, 2, 3, 4, 5] and len(e["config_hashes"]) == 6
               for e in measured)
    assert document["synthetic"] and document["notice"] == report.NOTICE
    assert document["hardware"] == [{"device": "cpu (synthetic)", "precision": "unknown", "n_trials": 60}]
    dn = next(e for e in measured if e["regularizer"] == "dn" and e["depth"] == 8)
    assert dn["gains"]["test_acc"]["pairing"] == "paired" and dn["gains"]["test_acc"]["n"] == 6
    # a broken document is caught by the same check
    assert schema_errors({**document, "entries": [{"depth": "eight"}]}, schema)


def test_missing_cells_are_shown_as_missing(synthetic_report):
    with open(synthetic_report["json"]) as handle:
        entries = json.load(handle)["entries"]
    so14 = next(e for e in entries if e["regularizer"] == "so" and e["depth"] == 14)
    assert so14["status"] == "missing: no completed runs" and so14["seeds"] == []
    dn20 = next(e for e in entries if e["regularizer"] == "dn" and e["depth"] == 20)
    assert dn20["gains"]["test_acc"]["status"] == "missing baseline"
    with open(synthetic_report["markdown"]) as handle:
        markdown = handle.read()
    row = next(line for line in markdown.splitlines()
               if line.startswith("| resnet-14x1 (synthetic) | ") and "| so |" in line)
    assert "missing: no completed runs" in row
    assert re.search(r"\| resnet-20x1 \(synthetic\) \| [^|]+ \| dn \|.*missing baseline", markdown)
    with open(synthetic_report["html"]) as handle:
        assert '<td class="missing">missing baseline</td>' in handle.read()


def test_synthetic_notice_on_every_header(synthetic_report):
    with open(synthetic_report["markdown"]) as handle:
        headers = [line for line in handle if line.startswith("#")]
    assert len(headers) >= 10 and all(report.NOTICE in line for line in headers)
    with open(synthetic_report["html"]) as handle:
        page = handle.read()
    sections = re.findall(r"<h[12]>.*?</h[12]>", page)
    assert len(sections) >= 10 and all(report.NOTICE in h for h in sections)
    assert report.NOTICE.upper() in page.split("<h1>")[0]  # the banner comes first


def test_headers_state_hardware_seeds_and_statistic_and_no_notice_for_real_data(tmp_path):
    written = report.build_report_from_frames(make_tables(depths=(8, 14), dataset="cifar10"),
                                              str(tmp_path), selection="test")
    with open(written["markdown"]) as handle:
        markdown = handle.read()
    assert report.NOTICE not in markdown
    assert "Hardware (device, precision_resolved): cpu (synthetic), unknown (48 trials)" in markdown
    assert "Seeds per entry: 6 to 6 found, 6 to 6 expected" in markdown
    assert "Student-t interval" in markdown and "test (optimistic)" in markdown
    with open(written["json"]) as handle:
        document = json.load(handle)
    assert document["notice"] is None and document["settings"]["selection"] == "test"


def test_trials_at_two_precisions_are_named_at_the_top_and_one_precision_is_not(tmp_path):
    tables = make_tables(depths=(8, 14), dataset="cifar10")
    trials = tables["trials"]
    one = {**tables, "trials": trials.assign(precision_resolved="bf16")}
    written = report.build_report_from_frames(one, str(tmp_path / "one"), selection="test")
    with open(written["markdown"]) as handle:
        markdown = handle.read()
    assert "cpu (synthetic), bf16 (48 trials)" in markdown
    assert "more than one precision" not in markdown
    mixed = trials.assign(precision_resolved=["fp32" if seed == 0 else "bf16"
                                              for seed in trials["seed"]])
    written = report.build_report_from_frames({**tables, "trials": mixed}, str(tmp_path / "mixed"),
                                              selection="test")
    with open(written["markdown"]) as handle:
        markdown = handle.read()
    limit = ("completed trials ran at more than one precision (bf16 40, fp32 8 trials, "
             "precision_resolved)")
    assert limit in markdown and markdown.index(limit) < markdown.index("## Verdicts, one per claim")
    with open(written["json"]) as handle:
        hardware = json.load(handle)["hardware"]
    assert sorted((h["precision"], h["n_trials"]) for h in hardware) == [("bf16", 40), ("fp32", 8)]


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("document", sorted(os.path.relpath(path, ROOT) for path in glob.glob(
    os.path.join(ROOT, "results", "*", "report", "leaderboard.json"))))
def test_a_committed_reports_entry_means_are_its_tables_recomputed_by_duckdb(document):
    """Each measured entry of a committed leaderboard.json: the mean and count of test_acc over
    the trial_ids it lists, recomputed by DuckDB from the trials files of its study's sources, are
    the report's; a joined arm's entry is the mean of the join's completed trials of that cell
    and arm (a join's directory, with its join.json, holds a re-run baseline under the study's
    trial ids, so the study's entries never read it)."""
    duckdb = pytest.importorskip("duckdb")
    with open(os.path.join(ROOT, document)) as handle:
        report_json = json.load(handle)
    joins = [s for s in report_json["sources"] if os.path.exists(os.path.join(ROOT, s, "join.json"))]
    files = [os.path.join(ROOT, source, "trials", "*.parquet")
             for source in report_json["sources"] if source not in joins]
    connection = duckdb.connect()
    measured = [e for e in report_json["entries"] if e["status"] == "measured"]
    assert measured
    for entry in measured:
        mean, count = connection.execute(
            "SELECT avg(test_acc), count(*) FROM read_parquet(?, union_by_name = true) "
            "WHERE trial_id IN (SELECT unnest(?))", [files, entry["trial_ids"]]).fetchone()
        expected = entry["metrics"]["test_acc"]
        assert count == expected["n"] == len(entry["trial_ids"]), entry["regularizer"]
        assert mean == pytest.approx(expected["mean"], abs=1e-12), entry["regularizer"]
    assert len(joins) == len(report_json.get("joined", []))
    for source, found in zip(joins, report_json.get("joined", [])):
        for entry in found["entries"]:
            mean, count = connection.execute(
                "SELECT avg(test_acc), count(*) FROM read_parquet(?) WHERE status = 'completed' "
                "AND depth = ? AND width = ? AND regularizer = ?",
                [os.path.join(ROOT, source, "trials", "*.parquet"), entry["depth"],
                 entry["width"], entry["regularizer"]]).fetchone()
            assert count == entry["n_seeds"] and mean == pytest.approx(entry["mean"], abs=1e-12)


def _report_arguments(report_json: dict) -> list:
    """The `korth-bench report` flags a committed leaderboard.json was made with, from its own
    settings: its arms, and the space whose analysis section declared its primary contrast."""
    settings = report_json["settings"]
    flags = [flag for arm in settings["arms"] for flag in ("--arm", arm)]
    primary = settings.get("primary") or {}
    if primary.get("source"):
        flags += ["--space", primary["source"]]
    return flags


def _differences(committed, regenerated, path="") -> list:
    """Where two JSON values differ: numbers beyond 1e-9 (absolute or relative), anything else
    not equal; generated_at is the one key left out."""
    if isinstance(committed, dict) and isinstance(regenerated, dict):
        keys = (set(committed) | set(regenerated)) - {"generated_at"}
        return [d for k in sorted(keys) for d in _differences(
            committed.get(k, "<absent>"), regenerated.get(k, "<absent>"), f"{path}.{k}")]
    if isinstance(committed, list) and isinstance(regenerated, list):
        if len(committed) != len(regenerated):
            return [f"{path}: {len(committed)} items committed, {len(regenerated)} now"]
        return [d for i, (a, b) in enumerate(zip(committed, regenerated))
                for d in _differences(a, b, f"{path}[{i}]")]
    numbers = (int, float)
    if (isinstance(committed, numbers) and isinstance(regenerated, numbers)
            and not isinstance(committed, bool) and not isinstance(regenerated, bool)):
        if committed == regenerated or math.isclose(committed, regenerated, rel_tol=1e-9,
                                                    abs_tol=1e-9):
            return []
    elif committed == regenerated:
        return []
    return [f"{path}: committed {committed!r}, now {regenerated!r}"]


@pytest.mark.parametrize("document", sorted(os.path.relpath(path, ROOT) for path in glob.glob(
    os.path.join(ROOT, "results", "*", "report", "leaderboard.json"))))
def test_every_committed_report_is_what_the_current_code_computes(document, tmp_path,
                                                                   monkeypatch):
    """The published numbers guarded: the committed study's report, regenerated from its
    committed tables with the current code and the flags it was made with, equals its committed
    leaderboard.json (verdicts, every entry's means and gains with their intervals, the collapse
    rows, everything but generated_at) to 1e-9. A change that moves a published number fails
    here unless the same commit regenerates the committed report."""
    with open(os.path.join(ROOT, document)) as handle:
        committed = json.load(handle)
    monkeypatch.chdir(ROOT)  # the sources and the space are recorded relative to the checkout
    out = str(tmp_path / "report")
    assert cli.main(["report", *committed["sources"], *_report_arguments(committed),
                     "--out", out]) == 0
    with open(os.path.join(out, "leaderboard.json")) as handle:
        regenerated = json.load(handle)
    differences = _differences(committed, regenerated)
    assert not differences, (f"{len(differences)} published figures moved; regenerate "
                             f"{os.path.dirname(document)} and the README sentences quoting it:\n"
                             + "\n".join(differences[:20]))


def test_html_is_self_contained(synthetic_report):
    with open(synthetic_report["html"]) as handle:
        page = handle.read()
    assert page.count('<figure id="figure-') == page.count("<svg ") == len(PLOTS)
    # one inline script (the table sorter) and no external resource of any kind (an SVG's
    # url(#id) and xlink:href="#id" point inside the page; the SVG namespace is a name, not a fetch)
    page = page.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', "")
    assert page.count("<script>") == 1 and "<script " not in page
    assert not re.search(r"<link|src=|url\((?!#)|href=\"(?!#)|https?://|import\(|fetch\(", page)


def test_the_verdict_summary_comes_first_one_line_per_claim_with_its_rules(synthetic_report):
    with open(synthetic_report["markdown"]) as handle:
        markdown = handle.read()
    summary = markdown.index("## Verdicts, one per claim")
    assert summary < markdown.index("Hardware (device, precision_resolved)") < markdown.index("## Leaderboard")
    for rule in ("Rule, 'supported'", "Rule, 'contradicted'", "Rule, 'inconclusive'"):
        assert rule in markdown[summary:markdown.index("Hardware (device, precision_resolved)")]
    with open(synthetic_report["json"]) as handle:
        verdicts = {v["claim"]: v for v in json.load(handle)["verdicts"]}
    assert list(verdicts) == ["1", "1, tuned settings", "2", "2, relaxed", "3", "4, cs",
                              "4, orthogonality"]
    # make_tables plants: dn the most orthogonal and feature-map similarity rising with the
    # cosines; the fixture's largest cell has no baseline, which leaves 2 cells: no slope test
    assert verdicts["1"]["verdict"] == "supported"
    assert verdicts["1, tuned settings"]["verdict"] == "descriptive"
    assert verdicts["1"]["seeds_min"] >= 2 and "seeds per side" in markdown[summary:]
    assert verdicts["2"]["verdict"] == "not tested" and verdicts["2"]["n_rows"] == 0
    assert verdicts["4, cs"]["verdict"] == "not tested" and verdicts["4, cs"]["n_rows"] == 0
    assert verdicts["4, orthogonality"]["verdict"] == "contradicted"
    # one bold sentence per decided claim above the table; none for a claim not tested
    above = markdown[summary:markdown.index("| claim |")]
    assert "**Claim 1 (dn reaches better near-orthogonality than so at matched strength): " \
           "supported: " in above
    assert "**Claim 4, orthogonality (" in above and "**Claim 2:" not in above
    assert "**Claim 4, cs" not in above and "Rule, 'not tested'" in markdown


def test_build_report_merges_result_directories_by_trial_id(tmp_path):
    results = pytest.importorskip("korth_bench.results")
    frames = make_tables(depths=(8, 14), seeds=(0, 1, 2))
    first, second = str(tmp_path / "sweep_a"), str(tmp_path / "sweep_b")
    trial_ids = list(frames["trials"]["trial_id"])
    for index, trial_id in enumerate(trial_ids):
        tables = {name: frame[frame["trial_id"] == trial_id].to_dict("records")
                  for name, frame in frames.items()}
        # the first half goes to sweep_a, the second to sweep_b, a quarter to both
        targets = [first] * (index < len(trial_ids) // 2) + [second] * (
            index >= len(trial_ids) // 4)
        for target in targets:
            results.write_trial(target, tables)
    written = report.build_report([first, second], str(tmp_path / "out"))
    with open(written["json"]) as handle:
        document = json.load(handle)
    assert document["sources"] == [first, second]
    assert sum(e["trial_counts"]["completed"] for e in document["entries"]) == len(trial_ids)
    assert all(e["n_seeds"] == 3 for e in document["entries"])


def test_report_command_passes_selection_alpha_and_claimed_drop_in_points(tmp_path, capsys):
    results = pytest.importorskip("korth_bench.results")
    frames = make_tables(depths=(8, 14), seeds=(0, 1, 2))
    for trial_id in frames["trials"]["trial_id"]:
        results.write_trial(str(tmp_path / "sweep"), {
            name: frame[frame["trial_id"] == trial_id].to_dict("records")
            for name, frame in frames.items()})
    code = cli.main(["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "out"),
                     "--claimed-drop", "2", "--alpha", "0.1", "--selection", "test",
                     "--collapse-metric", "test_acc", "--collapse-metric", "corruption_acc_mean"])
    assert code == 0, capsys.readouterr().err
    with open(tmp_path / "out" / "leaderboard.json") as handle:
        document = json.load(handle)
    settings = document["settings"]
    assert settings["claimed_drop"] == pytest.approx(0.02)  # 2 percentage points as a fraction
    assert settings["alpha"] == 0.1 and settings["selection"] == "test"
    assert settings["collapse_metrics"] == ["test_acc", "corruption_acc_mean"]
    assert document["collapse"] and all(row["equivalence_bound"] == pytest.approx(0.02)
                                        for row in document["collapse"])
    assert {row["metric"] for row in document["collapse"]} == {"test_acc", "corruption_acc_mean"}
    markdown = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "| gain in |" in markdown and "mean corruption accuracy" in markdown


def test_report_reads_the_declared_primary_contrast_and_says_what_the_flags_override(
        tmp_path, capsys):
    results = pytest.importorskip("korth_bench.results")
    frames = make_tables(depths=(8, 14, 20), seeds=(0, 1, 2))
    for trial_id in frames["trials"]["trial_id"]:
        results.write_trial(str(tmp_path / "sweep"), {
            name: frame[frame["trial_id"] == trial_id].to_dict("records")
            for name, frame in frames.items()})
    space = tmp_path / "space.yaml"
    space.write_text("name: synthetic-sweep\ndata: {dataset: synthetic}\n"
                     "regularizers: {none: {}, so: {coefficient: 1.0e-3}, dn: {coefficient: 1.0e-3}}\n"
                     "analysis:\n  primary: {arms: [so, dn], claimed_drop: 1.5, alpha: 0.1}\n"
                     "  declared: '2026-12-01'\n")
    code = cli.main(["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "out"),
                     "--space", str(space), "--alpha", "0.05"])
    assert code == 0, capsys.readouterr().err
    document = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert document["settings"]["alpha"] == 0.05  # the flag overrides the declared 0.1
    assert document["settings"]["claimed_drop"] == pytest.approx(0.015)  # the declared bound
    primary = [row for row in document["collapse"] if row["test_family"] == "primary"]
    assert primary and primary[0]["regularizer"] == "primary: mean of so, dn"
    markdown = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "Primary contrast (claim 2's verdict): the mean gain of so, dn in test_acc" in markdown
    drop = number_text(100 * primary[0]["drop"], 2, True)
    assert (f"Claim 2's test: the primary contrast (so, dn) on resnet (synthetic), the slope of "
            f"its cell means on log2 parameters, the cells random, tested alone at alpha 0.05"
            in markdown)
    assert f"the gain of the primary contrast (so, dn) drops by {drop} pt" in markdown
    assert "declared on 2026-12-01 in " in markdown and "before the data" in markdown
    assert "overridden on the command line: --alpha 0.05 (declared 0.1)" in markdown
    assert "Collapse families, Holm at alpha 0.05 within each: claim 2" in markdown
    code = cli.main(["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "out2"),
                     "--primary", "srip"])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1 and not (tmp_path / "out2").exists()
    assert "'srip' is not an entry of these trials; entries: dn, dn_relaxed, so" in error[0]


def test_report_refuses_a_collapse_metric_that_is_not_an_accuracy(tmp_path, capsys):
    results = pytest.importorskip("korth_bench.results")
    frames = make_tables(depths=(8, 14), seeds=(0, 1))
    for trial_id in frames["trials"]["trial_id"]:
        results.write_trial(str(tmp_path / "sweep"), {
            name: frame[frame["trial_id"] == trial_id].to_dict("records")
            for name, frame in frames.items()})
    code = cli.main(["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "out"),
                     "--collapse-metric", "epochs_to_90pct_best"])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1 and not (tmp_path / "out").exists()
    assert "'epochs_to_90pct_best'" in error[0] and "choose from: test_acc, best_test_acc" in error[0]


@pytest.mark.parametrize("flag, value, words", [
    ("--claimed-drop", "0", ["--claimed-drop", "got 0", "> 0", "percentage points"]),
    ("--alpha", "1.5", ["--alpha", "got 1.5", "(0, 1)"]),
    ("--selection", "best", ["--selection", "invalid choice: best", "val, test"]),
])
def test_report_command_refuses_a_bad_option_naming_flag_and_allowed_values(
        flag, value, words, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", str(tmp_path), flag, value])
    assert exit_info.value.code == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1, errors  # one line, no usage block
    error = errors[0]
    assert all(word in error for word in words), error
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("case", ["all diverged", "only the baseline", "no auxiliary tables"])
def test_degenerate_results_still_give_a_report(case, tmp_path):
    frames = make_tables(depths=(8, 14), seeds=(0, 1, 2))
    trials = frames["trials"]
    if case == "all diverged":
        frames["trials"] = trials.assign(status="diverged")
    elif case == "only the baseline":
        frames["trials"] = trials[trials["regularizer"] == "none"]
    else:
        frames = {name: frame.iloc[0:0] if name != "trials" else frame
                  for name, frame in frames.items()}
    written = report.build_report_from_frames(frames, str(tmp_path))
    with open(written["markdown"]) as handle:
        markdown = handle.read()
    with open(written["json"]) as handle:
        document = json.load(handle)
    assert schema_errors(document, _schema()) == []
    verdicts = {v["claim"]: v["verdict"] for v in document["verdicts"]}
    entries = {(e["depth"], e["regularizer"]): e for e in document["entries"]}
    if case == "all diverged":
        assert "0 completed, 24 diverged" in markdown and "missing: no completed runs" in markdown
        assert all(e["status"] != "measured" for e in entries.values())
        assert set(verdicts.values()) <= {"not tested", "inconclusive (strengths not matched)"}
    elif case == "only the baseline":
        # the baseline's own scores stand; nothing can be compared, so no claim is tested
        assert sorted(entries) == [(8, "none"), (14, "none")]
        assert all(e["metrics"]["test_acc"]["n"] == 3 for e in entries.values())
        assert set(verdicts.values()) == {"not tested"} and document["collapse"] == []
    else:
        # the trials table alone: every entry and gain, no curves, convergence not checked
        assert len(entries) == 8 and all(e["status"] == "measured" for e in entries.values())
        assert all(e["gains"]["test_acc"]["n"] == 3 for e in entries.values()
                   if e["regularizer"] != "none")
        assert document["convergence_check"]["message"].startswith("convergence not checked")
        assert verdicts["2"] == "not tested" and verdicts["1"] == "supported"


def _schema():
    with open(report.SCHEMA_PATH) as handle:
        return json.load(handle)


def test_no_trials_is_a_clear_error(tmp_path):
    frames = {name: frame.iloc[0:0] for name, frame in make_tables(depths=(8,)).items()}
    with pytest.raises(ValueError, match="no trials rows"):
        report.build_report_from_frames(frames, str(tmp_path))


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_renders_in_headless_chromium_without_console_errors(synthetic_report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed: make chromium / apt-get install chromium")
    url = "file://" + os.path.abspath(synthetic_report["html"])
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    shot = tmp_path / "shot.png"
    render = subprocess.run(base + [f"--screenshot={shot}", "--window-size=1280,2000", url],
                            capture_output=True, text=True, timeout=180)
    assert shot.exists() and shot.stat().st_size > 10_000, render.stderr[-2000:]
    dump = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=180)
    for log in (render.stderr, dump.stderr):
        # Messages the page itself logs name it as their source; Chromium's own notes (such as
        # "[Intervention] Slow network is detected" on a loaded machine) are not the page's.
        console = [line for line in log.splitlines()
                   if ("CONSOLE" in line and "source: file://" in line) or "Uncaught" in line]
        assert console == []
    dom = dump.stdout
    assert report.NOTICE.upper() in dom and dom.count("<figure ") == len(PLOTS)
    page_structure(dom, ["none", "so", "dn", "dn_relaxed"])  # as the browser built it
    tables = dom.count("<table")
    assert tables > 5 and dom.count('data-sortable="ready"') == tables  # the sorter ran
    # the sorter itself: the verdicts sorted by rows tested, ascending and descending
    first_claims = []
    for view in ("#sort=0.3", "#sort=0.3.desc"):
        sorted_dom = subprocess.run(base + ["--dump-dom", url + view], capture_output=True,
                                    text=True, timeout=180).stdout
        body = sorted_dom[sorted_dom.index("<tbody>"):]
        rows = [int(n) for n in re.findall(r"<tr><td>[^<]*</td><td>[^<]*</td><td[^>]*>[^<]*</td>"
                                           r"<td>(\d+) \(", body[:body.index("</tbody>")])]
        assert len(rows) == 7
        first_claims.append(rows)
    assert first_claims[0] == sorted(first_claims[0]) and first_claims[1] == sorted(
        first_claims[1], reverse=True) and first_claims[0][0] < first_claims[0][-1]


def page_structure(page: str, regularizers, baseline="none") -> None:
    """The page's table of contents links every section and figure, each link lands on an id of
    the page, and every figure has one panel per arm (one column per regularizer other than the
    baseline, one row per family, cell or corruption; the similarity figure one panel per cell),
    counted from the panels the SVG draws."""
    nav = re.search(r'<nav class="toc" id="contents">(.*?)</nav>', page, flags=re.S)
    assert nav, "no table of contents"
    links = re.findall(r'href="#([^"]+)"', nav.group(1))
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    assert links and set(links) <= ids
    sections = re.findall(r'<section id="([^"]+)"', page)
    assert len(sections) >= 10 and set(sections) <= set(links)
    figures = re.findall(r'<figure id="figure-(\w+)"(?: class="headline")? data-panels="(\d+)" '
                         r'data-arms="([^"]*)" data-rows="([^"]*)">(.*?)</figure>', page,
                         flags=re.S)
    assert [name for name, *_ in figures] == [
        "gain_vs_capacity", "orthogonality_vs_similarity", "learning_curves", "robustness"]
    assert {f"figure-{name}" for name, *_ in figures} <= set(links)
    arms = sorted(set(regularizers) - {baseline})
    for name, panels, arm_text, row_text, svg in figures:
        drawn = len(re.findall(rf'id="{name}-axes_\d+"', svg))
        rows = row_text.split("|")
        assert int(panels) == drawn > 0, name
        if name == "orthogonality_vs_similarity":
            assert arm_text == "" and drawn == len(rows)
        else:
            assert arm_text.split() == arms and drawn == len(arms) * len(rows), name


def test_the_page_has_contents_and_one_panel_per_arm_in_every_figure(synthetic_report):
    with open(synthetic_report["html"]) as handle:
        page = handle.read()
    page_structure(page, ["none", "so", "dn", "dn_relaxed"])
    # the figures come right after the verdicts and their sentences, the long tables collapsed
    assert page.index('id="verdicts"') < page.index('id="figures"') < page.index('id="setup"')
    assert "Show the table (" in page


def test_sentences_under_the_verdicts_are_the_results_own_numbers(tmp_path):
    """A planted capacity trend (dn's gain falls 1 pp per doubling over 3 capacities): the
    largest gain, claim 2's drop with its interval and detectable drop, as in leaderboard.json."""
    written = report.build_report_from_frames(make_tables(depths=(8, 16, 32)), str(tmp_path))
    with open(written["json"]) as handle:
        document = json.load(handle)
    with open(written["markdown"]) as handle:
        markdown = handle.read()
    summary = markdown[markdown.index("## Verdicts"):markdown.index("## Figures")]
    gains = [e["gains"]["test_acc"] | {"regularizer": e["regularizer"], "depth": e["depth"]}
             for e in document["entries"] if e["gains"].get("test_acc", {}).get("status") ==
             "measured"]
    best = max(gains, key=lambda g: g["mean"])
    assert (f"Largest gain in final test accuracy: {best['regularizer']} at resnet-"
            f"{best['depth']}x1 (synthetic), {gain_text(best, 'test_acc')}") in summary
    assert f"the largest of {len(gains)} gains" in summary
    strict = [r for r in document["collapse"] if r["regularizer"] in ("so", "dn")
              and r["axis"] == "log2_params"]
    row = min(strict, key=lambda r: r["p_holm"])  # the row the verdict table prints
    assert (f"{row['regularizer']} (the most significant strict arm, Holm over "
            f"{row['family_size']}) on resnet (synthetic)") in summary
    assert (f"the drop over the range {100 * row['drop']:+.2f} pt [{100 * row['drop_low']:+.2f}, "
            f"{100 * row['drop_high']:+.2f}]") in summary
    assert f"detects a drop of {100 * row['detectable_drop']:.2f} pt with 80 % power" in summary
    dn = next(r for r in strict if r["regularizer"] == "dn")
    assert 1.0 < 100 * dn["drop"] < 3.0  # planted: 1 pp per doubling over 2 doublings


@pytest.mark.parametrize("case, said", [
    ("no baseline", "no 'none' (the baseline) in this design: the report can show no gains"),
    ("one seed", "one seed per cell: the report can show no seed spread"),
])
def test_the_top_of_the_report_says_what_the_design_cannot_show(case, said, tmp_path):
    frames = make_tables(depths=(8, 14), seeds=(0,) if case == "one seed" else (0, 1, 2))
    if case == "no baseline":
        frames["trials"] = frames["trials"][frames["trials"]["regularizer"] != "none"]
    written = report.build_report_from_frames(frames, str(tmp_path))
    with open(written["markdown"]) as handle:
        markdown = handle.read()
    assert markdown.index(said) < markdown.index("## Verdicts")
    with open(written["html"]) as handle:
        page = handle.read()
    assert (page.index('<div class="limits">') < page.index(html.escape(said))
            < page.index('id="contents"'))


def test_gain_without_seed_spread_prints_no_interval():
    row = {"status": "measured", "mean": -0.0039, "low": -0.0039, "high": -0.0039,
           "pairing": "paired", "n": 2}
    assert gain_text(row, "test_acc") == (
        "-0.39 pt [no seed spread: interval undefined], paired, n=2")
    spread = {**row, "low": -0.02, "high": 0.0122}
    assert gain_text(spread, "test_acc") == "-0.39 pt [-2.00, +1.22], paired, n=2"


def test_a_value_that_rounds_to_zero_prints_unsigned():
    assert [number_text(v, 2, True) for v in (-0.004, 0.0, -0.0, 0.004, -0.006)] == [
        "0.00", "0.00", "0.00", "0.00", "-0.01"]
    assert number_text(-0.00001, 4) == "0.0000" and number_text(0.5, 0) == "0"


# ---------------------------------------------------------------- the answer on the first screen

def primary_frames(noise=0.001):
    """Four cells, so and dn with flat planted gains (a primary contrast with no trend), the
    baseline also at twice the epochs in every cell (reference runs for the convergence check),
    train accuracies in the epochs table (for the decomposition), no robustness rows."""
    pd = pytest.importorskip("pandas")
    frames = make_tables(depths=(8, 14, 20, 32), planted={
        "none": (0.0, 0.0), "so": (0.01, 0.0), "dn": (0.012, 0.0)}, noise=noise,
        dataset="cifar10")
    trials = frames["trials"]
    base = trials[trials["regularizer"] == "none"]
    reference = base.assign(epochs=8, trial_id=base["trial_id"] + "-e8",
                            test_acc=base["test_acc"] + 0.01,
                            config_hash=base["config_hash"].str[:60] + "e8e8")
    curves = pd.DataFrame([{"trial_id": trial_id, "epoch": epoch,
                            "test_acc": accuracy * (epoch + 1) / 8}
                           for trial_id, accuracy in zip(reference["trial_id"],
                                                         reference["test_acc"])
                           for epoch in range(8)])
    epochs = pd.concat([frames["epochs"], curves], ignore_index=True)
    return {"trials": pd.concat([trials, reference], ignore_index=True),
            "epochs": epochs.assign(train_acc=epochs["test_acc"] + 0.05),
            "layers": frames["layers"], "robustness": frames["robustness"].iloc[0:0]}


PRIMARY = {"arms": ["so", "dn"], "metric": "test_acc", "cells": "fixed",
           "declared": "2020-01-01", "source": "space.yaml", "overrides": []}


@pytest.fixture(scope="module")
def primary_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("primary")
    (out / "robustness.svg").write_text("<svg>an earlier run's</svg>")
    written = report.build_report_from_frames(primary_frames(), str(out), primary=PRIMARY)
    with open(written["json"]) as handle:
        document = json.load(handle)
    with open(written["markdown"]) as handle:
        markdown = handle.read()
    with open(written["html"]) as handle:
        page = handle.read()
    return {"written": written, "json": document, "markdown": markdown, "html": page,
            "out": out}


def test_claim_2_is_answered_first_in_bold_in_points_over_the_tested_range(primary_report):
    document, markdown = primary_report["json"], primary_report["markdown"]
    row = next(r for r in document["collapse"] if r["test_family"] == "primary"
               and r["axis"] == "log2_params")
    claim = next(v for v in document["verdicts"] if v["claim"] == "2")
    regime = document["regime"]
    assert claim["reach"] == regime["text"] and regime["text"].startswith("136 k-544 k parameters")
    drop = (f"{number_text(100 * row['drop'], 2, True)} pt "
            f"[{number_text(100 * row['drop_low'], 2, True)}, "
            f"{number_text(100 * row['drop_high'], 2, True)}]")
    inside = -0.01 < row["drop_low"] and row["drop_high"] < 0.01
    sentence = (f"Claim 2: {claim['verdict']}: the gain of the primary contrast (so, dn) drops by "
                f"{drop} (95 %) over 136 k-544 k parameters (4x), "
                f"{'inside' if inside else 'not inside'} the ±1 pt bound.")
    verdicts = markdown.index("## Verdicts, one per claim")
    # the first thing under the heading, bold, then the regime; above the table
    assert markdown[verdicts:].split("\n")[2] == f"**{sentence}** Tested regime: {regime['text']}."
    assert markdown.index(sentence) < markdown.index("| claim |")
    assert document["answers"][0] == {"sentence": sentence,
                                      "then": f"Tested regime: {regime['text']}."}
    assert "per doubling" not in markdown[verdicts:markdown.index("| claim |")]
    page = primary_report["html"]
    assert (f'<p class="answer"><strong>{html.escape(sentence)}</strong>'
            in page[page.index('id="verdicts"'):page.index("<table")])
    # no sentence for a claim not tested; every claim keeps its row in the table
    tested = [v for v in document["verdicts"]
              if v["verdict"] not in ("not tested", "descriptive") and v["n_rows"]]
    assert len(document["answers"]) == len(tested)
    assert all(not a["sentence"].startswith(("Claim 2, relaxed", "Claim 4, cs"))
               for a in document["answers"])
    assert "| 2, relaxed | " in markdown and "| not tested |" in markdown


def test_no_trend_reads_as_the_analysis_names_it_with_its_reach_and_drop(primary_report):
    """With a small spread the flat gains are an equivalence: the verdict is the analysis's
    'no trend in the tested range' (never 'contradicted'), its cell names the range, and the
    deciding effect is the drop over that range in pt."""
    document, markdown = primary_report["json"], primary_report["markdown"]
    claim = next(v for v in document["verdicts"] if v["claim"] == "2")
    assert claim["verdict"] == "no trend in the tested range"
    line = next(line for line in markdown.splitlines() if line.startswith("| 2 | "))
    cells = [c.strip() for c in line.split(" | ")]
    assert cells[2].startswith(f"no trend in the tested range: {claim['reach']}; 6 seeds per side")
    assert re.search(r"primary: mean of so, dn, resnet, test_acc: drop [-+]?\d\.\d\d pt "
                     r"\[[-+]?\d\.\d\d, [-+]?\d\.\d\d\] over 136 k-544 k parameters \(4x\), "
                     r"bound ±1 pt, p \d\.\d{3} \(tested alone\)", cells[4]), cells[4]
    page = primary_report["html"]
    assert '<td class="verdict-no-trend-in-the-tested-range">no trend in the tested range: ' in page


def _svg(path):
    with open(path) as handle:
        return handle.read()


def _smallest_font_px(svg: str, shown_px: float) -> float:
    """The smallest text of an SVG drawn `shown_px` wide, in screen pixels."""
    width = float(re.search(r'viewBox="0 0 ([\d.]+) ', svg).group(1))
    sizes = [float(s) for s in re.findall(r"font-size: ([\d.]+)px", svg)]
    assert sizes
    return min(sizes) * shown_px / width


def test_the_headline_figure_is_the_primary_contrast_readable_at_the_readmes_width(
        primary_report):
    from korth_bench.analysis import claims
    from korth_bench.analysis.collapse import fixed_cell_gains
    from korth_bench.report import plots

    written = primary_report["written"]
    headline, by_arm = _svg(written["gain_vs_capacity"]), _svg(written["gain_by_arm"])
    assert len(re.findall(r'id="gain_vs_capacity-axes_\d+"', headline)) == 1
    assert len(re.findall(r'id="gain_by_arm-axes_\d+"', by_arm)) == 2  # so and dn
    for label in ("resnet-8x1", "resnet-32x1", "136 k", "544 k", "gain over none (pt)",
                  "±1 pt around the line", "fitted line (cell means)"):
        assert label in headline, label
    assert _smallest_font_px(headline, 800) >= 11
    # legends list only what is drawn: no cell is missing here
    assert "missing cell" not in by_arm and "missing cell" not in headline
    # the cell means are the collapse test's own, the line is its slope through the centroid
    result = claims.analyze(primary_frames(), primary=PRIMARY)
    (fit,) = plots.primary_fits(result)
    cells = fixed_cell_gains(result["runs"], ["so", "dn"])
    assert list(fit["cells"]["gain"]) == pytest.approx(list(cells["gain"]))
    row = plots.primary_rows(result).iloc[0]
    assert fit["slope"] == pytest.approx(row["slope"])
    x = fit["x"]
    assert fit["intercept"] + fit["slope"] * x.mean() == pytest.approx(cells["gain"].mean())
    low, high = fit["band"](x)
    line = fit["intercept"] + fit["slope"] * x
    assert ((low < line) & (line < high)).all()
    assert (fit["cells"]["low"] < fit["cells"]["gain"]).all()
    page = primary_report["html"]
    names = re.findall(r'<figure id="figure-(\w+)"', page)
    assert names[:2] == ["gain_vs_capacity", "gain_by_arm"]
    assert '<figure id="figure-gain_vs_capacity" class="headline"' in page


def test_the_missing_cell_legend_only_where_a_cell_is_missing(synthetic_report):
    assert "missing cell" in _svg(synthetic_report["gain_vs_capacity"])


def test_an_empty_figure_is_one_line_of_text_and_no_image(primary_report):
    written, out = primary_report["written"], primary_report["out"]
    assert "robustness" not in written and not (out / "robustness.svg").exists()
    markdown, page = primary_report["markdown"], primary_report["html"]
    line = "_Robustness: no robustness rows in these results"
    assert line in markdown and "robustness.svg" not in markdown
    assert ('<p class="no-figure" id="figure-robustness">Robustness: no robustness rows in these '
            'results') in page
    assert '<figure id="figure-robustness"' not in page
    assert 'href="#figure-robustness"' in page  # the contents still lead to it


def test_the_convergence_section_shows_the_doubling_check_and_weak_last_epoch_columns(
        primary_report):
    document, markdown = primary_report["json"], primary_report["markdown"]
    check = document["convergence_check"]
    assert check["checked"] and not check["flagged"]
    section = markdown[markdown.index("## Training length by cell"):]
    section = section[:section.index("\n## ", 1)]
    assert f"Convergence check: {check['message']}." in section
    header = next(line for line in section.splitlines() if line.startswith("| model cell"))
    assert "doubling gain [CI]" in header
    assert "baseline gain, last epoch (weak under a decaying schedule)" in header
    rows = [line for line in section.splitlines() if line.startswith("| resnet-")]
    assert len(rows) == 4 == len(document["convergence"])
    first = document["convergence"][0]
    assert first["reference_epochs"] == 8 and first["epochs"] == 4
    assert (f"{number_text(100 * first['doubling_gain'], 2, True)} pt "
            f"[{number_text(100 * first['doubling_gain_low'], 2, True)}, "
            f"{number_text(100 * first['doubling_gain_high'], 2, True)}]") in rows[0]
    assert "at 8 epochs, n=6" in rows[0]


def test_the_decomposition_section_shows_train_test_and_gap_with_the_analysis_sentence(
        primary_report):
    document, markdown = primary_report["json"], primary_report["markdown"]
    rows = document["decomposition"]
    assert len(rows) == 8 and {r["regularizer"] for r in rows} == {"so", "dn"}
    section = markdown[markdown.index("## Optimisation aid or regularization?"):]
    section = section[:section.index("\n## ", 1)]
    assert document["decomposition_sentence"] and document["decomposition_sentence"] in section
    first = rows[0]
    line = next(line for line in section.splitlines()
                if line.startswith(f"| resnet-8x1 (cifar10) | 0.14 M | {first['regularizer']} |"))
    for name, low, high in (("test_gain", "test_low", "test_high"),
                            ("train_gain", "train_low", "train_high"),
                            ("gap_change", "gap_low", "gap_high")):
        assert (f"{number_text(100 * first[name], 2, True)} pt "
                f"[{number_text(100 * first[low], 2, True)}, "
                f"{number_text(100 * first[high], 2, True)}]") in line
    assert f"| {first['reading']} |" in line


def test_the_new_pieces_validate_against_the_schema(primary_report):
    document, schema = primary_report["json"], _schema()
    assert schema_errors(document, schema) == []
    for key in ("answers", "regime", "convergence_check", "convergence", "decomposition",
                "decomposition_sentence"):
        assert key in schema["required"] and key in document
    assert all("reach" in v for v in document["verdicts"])
    bad = {**document, "verdicts": [{**document["verdicts"][0], "verdict": "no effect"}]}
    assert schema_errors(bad, schema)


def test_sections_format_the_convergence_and_decomposition_frames_they_are_given():
    """The tables from small frames of the analysis's interface: a cell without reference runs
    says 'not checked'; without any, the doubling columns are left out."""
    pd = pytest.importorskip("pandas")
    from korth_bench.report import sections

    cell = {"dataset": "cifar10", "model": "resnet", "depth": 8, "width": 1,
            "num_params": 75290.0, "epochs": 20, "n_baseline": 12, "last_epoch_gain": 0.0008,
            "last_two_epoch_gain": 0.0028, "final_train_acc": 0.7222, "n_trials": 36,
            "best_is_last_share": 0.5, "reference_epochs": 40.0, "n_reference": 2,
            "baseline_test_acc": 0.675, "reference_test_acc": 0.724, "doubling_gain": 0.049,
            "doubling_gain_low": 0.03, "doubling_gain_high": 0.068}
    unmeasured = {**cell, "depth": 20, "width": 2, "reference_epochs": math.nan,
                  "n_reference": 0, "reference_test_acc": math.nan,
                  "doubling_gain": math.nan, "doubling_gain_low": math.nan,
                  "doubling_gain_high": math.nan}
    result = {"convergence": pd.DataFrame([cell, unmeasured]),
              "settings": {"confidence": 0.95, "claimed_drop": 0.01},
              "undertraining": {"checked": True, "flagged": False, "least_trained": None,
                                "message": "not flagged: ..."}}
    table = sections.convergence_table(result)
    assert list(table["doubling gain [CI]"]) == ["+4.90 pt [+3.00, +6.80]", "not checked"]
    assert list(table["at twice the epochs (reference runs)"]) == [
        "72.40 % at 40 epochs, n=2", "no reference runs"]
    assert sections.convergence_lead(result).startswith("Convergence check: not flagged: ...")
    result["convergence"] = pd.DataFrame([unmeasured])
    assert "doubling gain [CI]" not in sections.convergence_table(result)
    decomposition = pd.DataFrame([{
        "dataset": "cifar10", "model": "resnet", "depth": 8, "width": 1, "num_params": 75290.0,
        "regularizer": "so [penalty_reduction=sum]", "n_treated": 8, "n_control": 12,
        "test_gain": 0.0094, "test_low": 0.0052, "test_high": 0.0137, "train_gain": 0.0115,
        "train_low": 0.0066, "train_high": 0.0165, "gap_change": 0.0021, "gap_low": -0.0043,
        "gap_high": 0.0085, "reading": "optimisation aid"}])
    result.update(decomposition=decomposition, decomposition_sentence="Claim 2's gains ...")
    row = sections.decomposition_table(result).iloc[0]
    assert row["train gain [CI]"] == "+1.15 pt [+0.66, +1.65]"
    assert row["gap change [CI] (negative: narrows)"] == "+0.21 pt [-0.43, +0.85]"
    assert row["reading"] == "optimisation aid" and row["seeds"] == "8 vs 12 baseline"
    assert sections.decomposition_lead(result).endswith(" Claim 2's gains ...")


def test_units_and_ranges_print_as_the_readmes_write_them():
    from korth_bench.report.formatting import arms_text, bound_text, params_range

    assert params_range(75290, 1073962) == "75 k-1.07 M parameters (14x)"
    assert bound_text(0.01) == "±1 pt" and bound_text(0.015) == "±1.5 pt"
    assert arms_text(["so [penalty_reduction=sum]", "dn [penalty_reduction=sum]",
                      "srip [penalty_reduction=sum]"]) == "so, dn, srip [sum]"
    assert arms_text(["so [penalty_reduction=sum]", "dn [penalty_reduction=mean]"]) == (
        "so [sum], dn [mean]")
    assert arms_text(["so", "dn"]) == "so, dn"


def test_the_collapse_studys_report_says_its_answer_first(tmp_path, capsys):
    """The committed collapse study, regenerated: the first sentence under the verdicts heading
    is the README's answer, and its leaderboard.json validates."""
    study = os.path.join(ROOT, "results", "cifar10_cpu_collapse")
    space = os.path.join(ROOT, "search_spaces", "cifar10_cpu_collapse.yaml")
    if not (os.path.isdir(os.path.join(study, "trials")) and os.path.exists(space)):
        pytest.skip("the collapse study's tables are not in this checkout")
    code = cli.main(["report", study, "--arm", "penalty_reduction", "--space", space,
                     "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    markdown = (tmp_path / "leaderboard.md").read_text()
    first = markdown[markdown.index("## Verdicts, one per claim"):].split("\n")[2]
    assert first.startswith(
        "**Claim 2: no trend in the tested range: the gain of the primary contrast (so, dn, srip "
        "[sum]) drops by 0.00 pt [-0.40, +0.39] (95 %) over 75 k-1.07 M parameters (14x), inside "
        "the ±1 pt bound.** Tested regime: 75 k-1.07 M parameters"), first
    assert not (tmp_path / "robustness.svg").exists()
    document = json.loads((tmp_path / "leaderboard.json").read_text())
    assert schema_errors(document, _schema()) == []
