"""Leaderboard files: written, schema-valid, labelled synthetic, missing cells visible, and the HTML
renders in headless Chromium without console errors."""
import glob
import html
import json
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
    the trial_ids it lists, recomputed by DuckDB from the trials files of its sources, are the
    report's."""
    duckdb = pytest.importorskip("duckdb")
    with open(os.path.join(ROOT, document)) as handle:
        report_json = json.load(handle)
    files = [os.path.join(ROOT, source, "trials", "*.parquet") for source in report_json["sources"]]
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
    assert verdicts["2"]["verdict"] == "inconclusive" and verdicts["2"]["n_rows"] == 0
    assert verdicts["4, cs"]["verdict"] == "inconclusive" and verdicts["4, cs"]["n_rows"] == 0
    assert verdicts["4, orthogonality"]["verdict"] == "contradicted"


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
    assert f"Its primary contrast, the mean of so, dn, on resnet (synthetic): the gain drops by {drop} pp" in markdown
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
    ("--claimed-drop", "0", ["--claimed-drop", "'0'", "> 0", "percentage points"]),
    ("--alpha", "1.5", ["--alpha", "'1.5'", "(0, 1)"]),
    ("--selection", "best", ["--selection", "'best'", "'val', 'test'"]),
])
def test_report_command_refuses_a_bad_option_naming_flag_and_allowed_values(
        flag, value, words, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", str(tmp_path), flag, value])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
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
    if case == "all diverged":
        assert "0 completed, 24 diverged" in markdown and "missing: no completed runs" in markdown
    with open(written["json"]) as handle:
        assert schema_errors(json.load(handle), _schema()) == []


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
    figures = re.findall(r'<figure id="figure-(\w+)" data-panels="(\d+)" data-arms="([^"]*)" '
                         r'data-rows="([^"]*)">(.*?)</figure>', page, flags=re.S)
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
    assert (f"{row['regularizer']} on resnet (synthetic): the gain drops by "
            f"{100 * row['drop']:+.2f} pp [{100 * row['drop_low']:+.2f}, "
            f"{100 * row['drop_high']:+.2f}]") in summary
    assert f"detects a drop of {100 * row['detectable_drop']:.2f} pp with 80 % power" in summary
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
        "-0.39 pp [no seed spread: interval undefined], paired, n=2")
    spread = {**row, "low": -0.02, "high": 0.0122}
    assert gain_text(spread, "test_acc") == "-0.39 pp [-2.00, +1.22], paired, n=2"


def test_a_value_that_rounds_to_zero_prints_unsigned():
    assert [number_text(v, 2, True) for v in (-0.004, 0.0, -0.0, 0.004, -0.006)] == [
        "0.00", "0.00", "0.00", "0.00", "-0.01"]
    assert number_text(-0.00001, 4) == "0.0000" and number_text(0.5, 0) == "0"
