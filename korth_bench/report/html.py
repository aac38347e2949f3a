"""leaderboard.html: one self-contained page. Inline CSS, the figures as inline SVG, a table of
contents and one small inline script that sorts a table by the column whose header is clicked;
nothing is fetched from anywhere (no external script, style sheet, font or image)."""
from __future__ import annotations

import html
from typing import Dict, Optional

import pandas as pd

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em auto; padding: 0 1em; max-width: 1400px;
       color: #222; }
.scroll { overflow-x: auto; }
.notice { background: #b00020; color: white; font-weight: bold; font-size: 1.3em;
          padding: 0.5em 1em; border-radius: 4px; text-align: center; }
h2 .notice-tag { color: #b00020; font-size: 0.7em; }
ul.header li, ul.rules li { margin: 0.2em 0; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.missing { color: #b00020; font-style: italic; }
td.verdict-supported { background: #e3f4e3; font-weight: bold; }
td.verdict-contradicted { background: #fbe3e3; font-weight: bold; }
td.verdict-inconclusive { background: #f4f4f4; font-weight: bold; }
td.verdict-no-trend-in-the-tested-range { background: #e3ecf8; font-weight: bold; }
td.verdict-not-tested { color: #666; font-style: italic; }
p.answer { font-size: 1.1em; margin: 0.5em 0; max-width: 60em; }
p.no-figure { font-style: italic; color: #444; margin: 0.6em 0; }
figure.headline svg { max-width: 900px; }
nav.toc { font-size: 0.9em; background: #f7f7f7; padding: 0.3em 1em; border-radius: 4px; }
nav.toc h2 { font-size: 1em; margin: 0.3em 0; }
nav.toc ol { margin: 0.2em 0; padding-left: 1.4em; columns: 2; }
nav.toc ol.inline { columns: 1; padding-left: 0; }
nav.toc ol.inline li { display: inline; margin-right: 1em; list-style: none; }
.limits { background: #fff4d6; border: 1px solid #e0b000; padding: 0.4em 1em; border-radius: 4px; }
p.glance { font-size: 1.05em; margin: 0.5em 0; max-width: 60em; }
figure { margin: 1em 0 2em 0; }
figure svg { width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; max-width: 60em; }
details > summary { cursor: pointer; color: #0050a0; margin: 0.4em 0; }
"""

VERDICTS = ("no trend in the tested range", "not tested", "supported", "contradicted",
            "inconclusive")
"""Verdicts whose cells are coloured (the longest first: a cell is coloured by the one it
starts with)."""

HEADLINE = "gain_vs_capacity"
"""The figure the README shows; the page draws it no wider than the README does (900 px)."""

LONG_TABLE = 12
"""Tables with more rows than this are collapsed under their section's lead."""

SORT_SCRIPT = r"""
// Click a column header to sort its table by that column; click again to reverse. A cell sorts
// by the first number in its text when every cell of the column has one, else by its text.
(function () {
  function key(cell) {
    var match = cell.textContent.replace(/\u2212/g, "-").match(/[-+]?\d*\.?\d+(e[-+]?\d+)?/i);
    return match ? parseFloat(match[0]) : null;
  }
  function sortBy(header) {
    var table = header.closest("table"), body = table.tBodies[0];
    var column = Array.prototype.indexOf.call(header.parentNode.children, header);
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = rows.every(function (row) { return key(row.cells[column]) !== null; });
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    rows.sort(function (a, b) {
      var x = a.cells[column], y = b.cells[column];
      var order = numeric ? key(x) - key(y) : x.textContent.localeCompare(y.textContent);
      return ascending ? order : -order;
    });
    Array.prototype.forEach.call(header.parentNode.children, function (other) {
      other.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    rows.forEach(function (row) { body.appendChild(row); });
  }
  var tables = document.querySelectorAll("table.sortable");
  tables.forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header) {
      header.addEventListener("click", function () { sortBy(header); });
    });
    table.setAttribute("data-sortable", "ready");
  });
  // A link may carry a sorted view: #sort=T.C sorts table T (0 = the verdicts) by column C,
  // #sort=T.C.desc in reverse.
  var wanted = /^#sort=(\d+)\.(\d+)(\.desc)?$/.exec(location.hash);
  var header = wanted && tables[wanted[1]] && tables[wanted[1]].tHead.rows[0].cells[wanted[2]];
  if (header) {
    sortBy(header);
    if (wanted[3]) { sortBy(header); }
  }
})();
"""


def html_table(table: Optional[pd.DataFrame]) -> str:
    """A sortable table; a cell whose text starts with 'missing' is marked, a verdict cell is
    coloured by the verdict it starts with."""
    if table is None or table.empty:
        return "<p><em>no rows</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)

    def cell(column: str, value) -> str:
        text = str(value)
        verdict = next((v for v in VERDICTS if column == "verdict" and (
            text == v or text.startswith((f"{v};", f"{v} (", f"{v}:")))), None)
        css = ("missing" if text.startswith("missing") else
               "verdict-" + verdict.replace(" ", "-") if verdict else "")
        return f'<td class="{css}">{html.escape(text)}</td>' if css else f"<td>{html.escape(text)}</td>"

    body = "".join("<tr>" + "".join(cell(c, v) for c, v in zip(table.columns, row)) + "</tr>"
                   for row in table.itertuples(index=False))
    return (f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _figure(name: str, plot, svg: Optional[str], section) -> str:
    """One figure: the inline SVG, its layout as data attributes (data-panels: the panels drawn;
    data-arms: one column per arm; data-rows: one row of panels each) and its caption; a figure
    without data is one line of text instead."""
    if plot.figure is None or svg is None:
        return (f'<p class="no-figure" id="figure-{name}">'
                f'{html.escape(name.replace("_", " ").capitalize())}: '
                f"{html.escape(plot.message or 'no data')}.</p>")
    caption = (html.escape(section.lead) if section.table is None else
               f'Its numbers: <a href="#{section.anchor}">{html.escape(section.title)}</a>.')
    headline = ' class="headline"' if name == HEADLINE else ""
    return (f'<figure id="figure-{name}"{headline} data-panels="{plot.panels}" '
            f'data-arms="{html.escape(" ".join(plot.arms))}" '
            f'data-rows="{html.escape("|".join(plot.rows))}">{svg}'
            f"<figcaption>{caption}</figcaption></figure>")


def _contents(page, tag: str) -> str:
    """The table of contents: a link to every block of the page and to every figure."""
    figures = "".join(f'<li><a href="#figure-{name}">{html.escape(name.replace("_", " "))}</a></li>'
                      for name, _ in page.figures)
    sections = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>'
                       for s in page.sections if s.table is not None)
    return (f'<nav class="toc" id="contents"><h2>Contents{tag}</h2><ol>'
            '<li><a href="#verdicts">Verdicts, one per claim</a></li>'
            f'<li><a href="#figures">Figures</a><ol class="inline">{figures}</ol></li>'
            '<li><a href="#setup">What was run and how it is tested</a></li>'
            f"{sections}</ol></nav>")


def to_html(title: str, page, plots: dict, images: Dict[str, str],
            notice: Optional[str]) -> str:
    """The page, in the order of ``sections.Page``: the notice (synthetic data), the title, what
    the design cannot show, the verdict summary (the answer in bold, one sentence per decided
    claim, then the table, its sentences and rules), the table of contents, the figures (inline
    SVG, from ``plots.figures``; one line of text for a figure without data), the header lines,
    then every section's table, collapsed in <details> when longer than LONG_TABLE rows."""
    tag = f' <span class="notice-tag">({html.escape(notice)})</span>' if notice else ""
    page_title = f"{title} ({notice})" if notice else title
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(page_title)}</title>",
             f"<style>{STYLE}</style></head><body>"]
    if notice:
        parts.append(f'<div class="notice">{html.escape(notice.upper())}</div>')
    parts.append(f"<h1>{html.escape(title)}{tag}</h1>")
    if page.limits:
        parts.append('<div class="limits"><strong>What this report cannot show:</strong><ul>'
                     + "".join(f"<li>{html.escape(limit)}.</li>" for limit in page.limits)
                     + "</ul></div>")
    parts.append(f'<section id="verdicts"><h2>Verdicts, one per claim{tag}</h2>'
                 + "".join(f'<p class="answer"><strong>{html.escape(sentence)}</strong>'
                           + (f" {html.escape(after)}" if after else "") + "</p>"
                           for sentence, after in page.answers)
                 + html_table(page.summary)
                 + "".join(f'<p class="glance">{html.escape(s)}</p>' for s in page.sentences)
                 + '<details><summary>How a verdict is decided</summary><ul class="rules">'
                 + "".join(f"<li>{html.escape(rule)}</li>" for rule in page.rules)
                 + "</ul></details></section>")
    parts.append(_contents(page, tag))
    parts.append(f'<section id="figures"><h2>Figures{tag}</h2>')
    parts += [_figure(name, plots[name], images.get(name), section)
              for name, section in page.figures]
    parts.append("</section>")
    parts.append(f'<section id="setup"><h2>What was run and how it is tested{tag}</h2>'
                 '<ul class="header">' + "".join(f"<li>{html.escape(line)}</li>"
                                                  for line in page.header) + "</ul></section>")
    for section in page.sections:
        if section.table is None:
            continue
        table = html_table(section.table)
        if len(section.table) > LONG_TABLE:
            table = (f"<details><summary>Show the table ({len(section.table)} rows)</summary>"
                     f"{table}</details>")
        parts.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}{tag}</h2>'
                     f"<p>{html.escape(section.lead)}</p>{table}</section>")
    parts.append(f"<script>{SORT_SCRIPT}</script></body></html>")
    return "\n".join(parts)
