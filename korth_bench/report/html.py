"""leaderboard.html: one self-contained page. Inline CSS, the plots as base64 PNGs and one small
inline script that sorts a table by the column whose header is clicked; nothing is fetched from
anywhere (no external script, style sheet, font or image)."""
from __future__ import annotations

import base64
import html
from typing import Dict, List, Optional

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
img { max-width: 100%; border: 1px solid #ddd; }
"""

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
    coloured by its verdict."""
    if table is None or table.empty:
        return "<p><em>no rows</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    verdicts = ("supported", "contradicted", "inconclusive")

    def cell(column: str, value) -> str:
        text = str(value)
        css = ("missing" if text.startswith("missing") else
               f"verdict-{text}" if column == "verdict" and text in verdicts else "")
        return f'<td class="{css}">{html.escape(text)}</td>' if css else f"<td>{html.escape(text)}</td>"

    body = "".join("<tr>" + "".join(cell(c, v) for c, v in zip(table.columns, row)) + "</tr>"
                   for row in table.itertuples(index=False))
    return (f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def to_html(title: str, header: List[str], summary: pd.DataFrame, rules: List[str],
            sections: list, images: Dict[str, bytes], notice: Optional[str]) -> str:
    """The page: the notice (synthetic data), the title, the verdict summary and its rules, the
    header lines, then every section (``sections.Section``) with its plots and table."""
    tag = f' <span class="notice-tag">({html.escape(notice)})</span>' if notice else ""
    page_title = f"{title} ({notice})" if notice else title
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(page_title)}</title>",
             f"<style>{STYLE}</style></head><body>"]
    if notice:
        parts.append(f'<div class="notice">{html.escape(notice.upper())}</div>')
    parts.append(f"<h1>{html.escape(title)}{tag}</h1>")
    parts.append(f"<section><h2>Verdicts, one per claim{tag}</h2>" + html_table(summary)
                 + '<ul class="rules">' + "".join(f"<li>{html.escape(rule)}</li>" for rule in rules)
                 + "</ul></section>")
    parts.append('<ul class="header">' + "".join(f"<li>{html.escape(line)}</li>"
                                                  for line in header) + "</ul>")
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}{tag}</h2>"
                     f"<p>{html.escape(section.lead)}</p>")
        for name in section.plots:
            data = base64.b64encode(images[name]).decode()
            parts.append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">')
        if section.table is not None:
            parts.append(html_table(section.table))
        parts.append("</section>")
    parts.append(f"<script>{SORT_SCRIPT}</script></body></html>")
    return "\n".join(parts)
