"""Evaluation reports as Markdown or HTML, and the plain-text table for the terminal.

One report holds what a reader needs to judge a model without rerunning it: which models
and heads, which test sets (and how many of their videos were actually scored), the
cross-dataset tables of SROCC and mapped PLCC, every metric with its bootstrap interval,
and the scatter plots.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from pathlib import Path

from . import __version__
from .errors import OutputError
from .evaluate import EvaluationReport
from .metrics import METRICS
from .plots import safe_name, scatter_plot

_LABELS = {"srocc": "SROCC", "krcc": "KRCC", "plcc": "PLCC", "rmse": "RMSE",
           "plcc_mapped": "PLCC (mapped)", "rmse_mapped": "RMSE (mapped)"}


def _fmt(value: float, metric: str = "srocc") -> str:
    if value != value:  # nan
        return "n/a"
    return f"{value:.2f}" if metric.startswith("rmse") else f"{value:.3f}"


def write_plots(report: EvaluationReport, directory: str | os.PathLike[str]) -> dict[tuple[str, str], str]:
    """One scatter PNG per (row, test set) cell; paths recorded in `report.plots`."""
    for (row, column), cell in report.cells.items():
        path = Path(directory) / f"{safe_name(row)}__{safe_name(column)}.png"
        try:
            report.plots[(row, column)] = scatter_plot(cell.pred, cell.target, path, f"{row} on {column}",
                                                       cell.agreement)
        except OSError as exc:
            raise OutputError(f"cannot write plot {path}: {exc.strerror or exc}", str(path)) from None
    return report.plots


def text_table(report: EvaluationReport, metric: str = "srocc") -> str:
    """The cross-dataset table as aligned plain text (rows: model heads, columns: test sets)."""
    header = ["", *report.columns]
    body = [[r.label, *(_fmt(v, metric) for v in values)] for r, values in zip(report.rows, report.table(metric))]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [f"{_LABELS[metric]} (rows: model:head, columns: test sets)"]
    for line in [header, *body]:
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))))
    return "\n".join(lines)


def _with_ci(report: EvaluationReport, row: str, column: str, metric: str) -> str:
    cell = report.cells.get((row, column))
    if cell is None or cell.agreement is None:
        return "n/a"
    low, high = cell.agreement.intervals.get(metric, (float("nan"), float("nan")))
    return f"{_fmt(getattr(cell.agreement, metric), metric)} [{_fmt(low, metric)}, {_fmt(high, metric)}]"


def _sections(report: EvaluationReport) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table in the report, shared by both formats."""
    tables = []
    tables.append(("Models", ["row", "model", "head", "trained on"],
                   [[r.label, r.model, r.head or "matched (test set's own head)", r.trained_on or "-"]
                    for r in report.rows]))
    tables.append(("Test sets", ["name", "spec", "MOS scale", "labelled on disk", "missing", "scored"],
                   [[t["name"], t["spec"], f"{t['scale'][0]:g}-{t['scale'][1]:g}", str(t["found"]),
                     str(t["missing"]), ", ".join(f"{k}: {v}" for k, v in t["scored"].items())]
                    for t in report.test_sets]))
    for metric in ("srocc", "plcc_mapped", "krcc", "rmse_mapped"):
        tables.append((f"Cross-dataset {_LABELS[metric]} with {int(report.settings['ci_level'] * 100)}% interval",
                       ["model:head \\ test set", *report.columns],
                       [[r.label, *(_with_ci(report, r.label, c, metric) for c in report.columns)]
                        for r in report.rows]))
    return tables


def _details(report: EvaluationReport) -> list[tuple[str, str, list[list[str]], str | None]]:
    out = []
    for (row, column), cell in report.cells.items():
        title = f"{row} on {column}"
        if cell.agreement is None:
            out.append((title, cell.note, [], report.plots.get((row, column))))
            continue
        a = cell.agreement
        rows = [[_LABELS[m], _with_ci(report, row, column, m)] for m in METRICS]
        mapping = a.mapping.to_dict()
        note = f"n = {a.n} videos; mapping: {mapping['method']} {mapping['params']}" + (f"; {cell.note}" if cell.note else "")
        out.append((title, note, rows, report.plots.get((row, column))))
    return out


def _intro(report: EvaluationReport) -> list[str]:
    s = report.settings
    return [
        f"vqscope {__version__}, {dt.datetime.now().isoformat(timespec='seconds')}.",
        f"Prediction: {s['prediction']}. Target: {s['target']}. Intervals: percentile bootstrap over videos, "
        f"{s['bootstrap']} resamples, seed {s['seed']} (logistic mapping fitted once on all videos). "
        f"`matched` rows score each test set with the head of the same name; `pooled` puts all test sets together.",
    ]


def render_markdown(report: EvaluationReport, base: str | os.PathLike[str] = ".") -> str:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|")

    lines = ["# vqscope evaluation", "", *_intro(report), ""]
    for title, header, rows in _sections(report):
        lines += [f"## {title}", "", "| " + " | ".join(esc(h) for h in header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
        lines.append("")
    lines += ["## Details", ""]
    for title, note, rows, plot in _details(report):
        lines += [f"### {title}", "", note, ""]
        if rows:
            lines += ["| metric | value [interval] |", "|---|---|"] + [f"| {m} | {v} |" for m, v in rows] + [""]
        if plot:
            lines += [f"![{title}]({os.path.relpath(plot, base)})", ""]
    return "\n".join(lines)


def render_html(report: EvaluationReport, base: str | os.PathLike[str] = ".") -> str:
    e = html.escape
    parts = ["<!doctype html>", "<html><head><meta charset=\"utf-8\"><title>vqscope evaluation</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;"
             "font-size:14px}th{background:#f3f3f3}td{font-variant-numeric:tabular-nums}"
             "img{max-width:480px;border:1px solid #ddd}</style></head><body>",
             "<h1>vqscope evaluation</h1>"]
    parts += [f"<p>{e(p)}</p>" for p in _intro(report)]

    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    for title, header, rows in _sections(report):
        parts += [f"<h2>{e(title)}</h2>", table(header, rows)]
    parts.append("<h2>Details</h2>")
    for title, note, rows, plot in _details(report):
        parts += [f"<h3>{e(title)}</h3>", f"<p>{e(note)}</p>"]
        if rows:
            parts.append(table(["metric", "value [interval]"], rows))
        if plot:
            parts.append(f"<img src=\"{e(os.path.relpath(plot, base))}\" alt=\"{e(title)}\">")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: EvaluationReport, path: str | os.PathLike[str]) -> str:
    """Markdown for .md (and anything else), HTML for .html/.htm; plot paths made relative."""
    path = Path(path)
    base = path.parent.resolve()
    text = render_html(report, base) if path.suffix.lower() in (".html", ".htm") else render_markdown(report, base)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write report {path}: {exc.strerror or exc}", str(path)) from None
    return str(path)
