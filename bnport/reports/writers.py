"""Render a verify report: a terminal table, JSON (schema in ``schemas/``), JUnit XML, and HTML with a chart."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from xml.etree import ElementTree as ET

from bnport.core.wording import count
from bnport.io.atomic import atomic_path
from bnport.reports import chart

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "verify-report.schema.json"


def _ratio(row) -> float:
    c = row.comparison
    if c.detail or c.max_abs != c.max_abs:
        return float("inf")
    return c.max_abs / row.tolerance if row.tolerance else float("inf")


def table(report) -> str:
    """A fixed-width table: one line per pair, then the outputs, then the verdict and first divergence."""
    head = f"{'PyTorch':<28} {'Keras':<28} {'kind':<14} {'max abs':>9} {'max rel':>9} {'tolerance':>9}  result"
    lines = [head, "-" * len(head)]
    for row in report.rows + report.final:
        c = row.comparison
        verdict = "ok" if row.passed else ("FAIL " + (c.detail or ", ".join(f.code for f in row.findings))).strip()
        lines.append(f"{row.torch_name[:28]:<28} {row.keras_name[:28]:<28} {row.kind:<14} {c.max_abs:>9.2e} "
                     f"{c.max_rel:>9.2e} {row.tolerance:>9.2e}  {verdict}")
    lines += [f"not compared: {entry}" for entry in report.not_compared]
    lines += [f"not paired: {entry}" for entry in report.unpaired]
    lines += [f"note: {entry}" for entry in report.notes]
    lines += [f"WARNING: {entry}" for entry in report.warnings]
    if report.ok and report.rows:
        lines.append(f"ok: {count(len(report.rows), 'layer')} and {count(len(report.final), 'output')} within "
                     "tolerance")
    elif report.ok:
        lines.append(f"ok: {count(len(report.final), 'output')} within tolerance (outputs only: no layer compared "
                     "one by one)")
    elif report.first_divergence is None:
        lines.append(f"NOT OK: {count(len(report.not_compared), 'requested comparison')} not made (above); "
                     f"{count(len(report.rows), 'layer')} and {count(len(report.final), 'output')} compared within "
                     "tolerance")
    else:
        first = report.first_divergence
        lines.append(f"DRIFT: first divergence at {first.torch_name} <-> {first.keras_name} ({first.kind})")
        lines += [f"  {f}" for f in report.findings]
        others = [r for r in report.faults if r is not first]
        if others:
            lines.append(f"{count(len(others), 'other faulty layer')} (each with a cause of its own; the other "
                         "failing layers agree in themselves and fail on their inputs):")
            for row in others:
                lines.append(f"  {row.torch_name} <-> {row.keras_name} ({row.kind})")
                lines += [f"    {f}" for f in row.findings]
    return "\n".join(lines)


def write_json(report, path: str | Path) -> None:
    """The report as JSON, atomically."""
    with atomic_path(Path(path), ".json") as tmp:
        tmp.write_text(json.dumps(report.as_dict(), indent=2), encoding="utf-8")


def write_junit(report, path: str | Path) -> None:
    """JUnit XML: one test case per compared pair and per output; failures carry the numbers and findings."""
    rows = report.rows + report.final
    suite = ET.Element("testsuite", name="bnport.verification", tests=str(len(rows) + len(report.not_compared)),
                       failures=str(sum(not r.passed for r in rows)), errors=str(len(report.not_compared)),
                       skipped="0", time=f"{report.seconds.get('total', sum(report.seconds.values())):.3f}")
    for row in rows:
        case = ET.SubElement(suite, "testcase", classname=f"bnport.{row.kind}",
                             name=f"{row.torch_name} <-> {row.keras_name}")
        c = row.comparison
        if not row.passed:
            found = report.findings if row is report.first_divergence else row.findings
            text = str(c) + "".join(f"\n{f}" for f in found)
            ET.SubElement(case, "failure", message=f"max abs {c.max_abs:.3g} > tolerance {row.tolerance:.3g}"
                          if not c.detail else c.detail, type="drift").text = text
    for entry in report.not_compared:  # a requested comparison that could not run: an error, not a pass
        pair, _, reason = entry.partition(": ")
        case = ET.SubElement(suite, "testcase", classname="bnport.not_compared", name=pair)
        ET.SubElement(case, "error", message=reason or entry, type="not-compared").text = entry
    with atomic_path(Path(path), ".xml") as tmp:
        ET.ElementTree(suite).write(tmp, encoding="utf-8", xml_declaration=True)


def chart_png(report) -> bytes:
    """The error/tolerance chart of every pair and output, as PNG bytes."""
    return chart.png(chart.draw([_ratio(r) for r in report.rows + report.final]))


def write_html(report, path: str | Path) -> None:
    """A self-contained HTML page: verdict, the chart, and the table with one row per pair."""
    image = base64.b64encode(chart_png(report)).decode()
    rows = []
    for row in report.rows + report.final:
        c = row.comparison
        rows.append(
            f"<tr class=\"{'ok' if row.passed else 'fail'}\"><td>{html.escape(row.torch_name)}</td>"
            f"<td>{html.escape(row.keras_name)}</td><td>{row.kind}</td><td>{c.max_abs:.3g}</td>"
            f"<td>{c.max_rel:.3g}</td><td>{row.tolerance:.3g}</td><td>{'ok' if row.passed else 'FAIL'}</td></tr>"
        )
    first = report.first_divergence
    verdict = "ok" if report.ok else (
        f"NOT OK: {len(report.not_compared)} requested comparisons were not made" if first is None else
        f"DRIFT: first divergence at {html.escape(first.torch_name)} &harr; {html.escape(first.keras_name)}")
    findings = "".join(f"<li><b>{f.code}</b> {html.escape(f.message)}</li>" for f in report.findings)
    findings += "".join(f"<li><b>not compared</b> {html.escape(e)}</li>" for e in report.not_compared)
    findings += "".join(f"<li><b>not paired</b> {html.escape(e)}</li>" for e in report.unpaired)
    findings += "".join(f"<li><b>note</b> {html.escape(e)}</li>" for e in report.notes)
    warned = "".join(f"<li class=\"warning\"><b>warning</b> {html.escape(e)}</li>" for e in report.warnings)
    findings = warned + findings
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bnport verify</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{padding:2px 8px;border-bottom:1px solid #ddd;font-family:monospace}} tr.fail{{background:#fde2e1}}
.verdict{{font-size:1.3em;font-weight:bold}}</style></head>
<body><h1>bnport verify</h1><p class="verdict" id="verdict">{verdict}</p><ul>{findings}</ul>
<p>Each bar is one ported layer in execution order (then the outputs): log10 of max |error| / tolerance.
The black line is the tolerance; red bars are above it.</p>
<img id="chart" alt="error over tolerance per layer" src="data:image/png;base64,{image}">
<table><tr><th>PyTorch</th><th>Keras</th><th>kind</th><th>max abs</th><th>max rel</th><th>tolerance</th>
<th>result</th></tr>{''.join(rows)}</table></body></html>
"""
    with atomic_path(Path(path), ".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
