"""Render a verify report: a terminal table, JSON (schema in ``schemas/``), JUnit XML, and HTML with a chart."""

from __future__ import annotations

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
    properties = ET.SubElement(suite, "properties")  # what was compared, as CI systems show suite properties
    for name, value in compared_lines(report):
        ET.SubElement(properties, "property", name=name, value=value)
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


def chart_svg(report) -> str:
    """The error/tolerance chart of every pair and output, as an inline SVG element."""
    return chart.svg([chart.Bar(f"{r.torch_name} / {r.keras_name}" if r.torch_name != r.keras_name else r.torch_name,
                                _ratio(r), r.passed) for r in report.rows + report.final])


def compared_lines(report) -> list[tuple[str, str]]:
    """What was compared, as (what, value) lines for the HTML and the JUnit properties."""
    c = report.compared
    lines = [(key.replace("_", " "), str(c[key])) for key in ("torch_model", "keras_model", "keras_backend")
             if c.get(key)]
    if c.get("input_shapes"):
        lines.append(("input shapes", ", ".join(str(s) for s in c["input_shapes"]) + " (channels-first)"))
    lines += [(f"file {option}", path) for option, path in c.get("files", {}).items()]
    lines += [(f"version {name}", version or "not installed") for name, version in c.get("versions", {}).items()]
    return lines


def write_html(report, path: str | Path) -> None:
    """A self-contained HTML page: verdict, what was compared, the chart, and the table with one row per pair."""
    rows = []
    for row in report.rows + report.final:
        c = row.comparison
        codes = ", ".join(f.code for f in row.findings)
        rows.append(
            f"<tr class=\"{'ok' if row.passed else 'fail'}\"><td>{html.escape(row.torch_name)}</td>"
            f"<td>{html.escape(row.keras_name)}</td><td>{row.kind}</td><td>{c.max_abs:.3g}</td>"
            f"<td>{c.max_rel:.3g}</td><td>{row.tolerance:.3g}</td>"
            f"<td>{'ok' if row.passed else 'FAIL'} {html.escape(codes or c.detail or '')}</td></tr>"
        )
    first = report.first_divergence
    verdict = "ok" if report.ok else (
        f"NOT OK: {count(len(report.not_compared), 'requested comparison')} not made" if first is None else
        f"DRIFT: first divergence at {html.escape(first.torch_name)} &harr; {html.escape(first.keras_name)}")
    items = "".join(f"<li class=\"warning\"><b>warning</b> {html.escape(e)}</li>" for e in report.warnings)
    items += "".join(f"<li><b>{f.code}</b> {html.escape(f.message)}</li>" for f in report.findings)
    others = [r for r in report.faults if r is not first]
    if others:  # folded past three: a model whose every layer differs would bury the headline
        listed = "".join(f"<li><b>{f.code}</b> at {html.escape(row.torch_name)} &harr; {html.escape(row.keras_name)}: "
                         f"{html.escape(f.message)}</li>" for row in others for f in row.findings)
        items += (f"<li><details{' open' if len(others) <= 3 else ''}><summary>"
                  f"{count(len(others), 'other faulty layer')}, each with a cause of its own</summary>"
                  f"<ul>{listed}</ul></details></li>")
    items += "".join(f"<li><b>not compared</b> {html.escape(e)}</li>" for e in report.not_compared)
    items += "".join(f"<li><b>not paired</b> {html.escape(e)}</li>" for e in report.unpaired)
    items += "".join(f"<li><b>note</b> {html.escape(e)}</li>" for e in report.notes)
    what = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in compared_lines(report))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bnport verify: {'ok' if report.ok else 'not ok'}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:80em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{padding:2px 8px;border-bottom:1px solid #ddd;font-family:monospace;text-align:left}}
tr.fail{{background:#fde2e1}} .verdict{{font-size:1.4em;font-weight:bold}} .verdict.ok{{color:#2e7d32}}
.verdict.bad{{color:#c62828}} li.warning{{color:#8a4b00}} #chart{{display:block;margin:1em 0}}</style></head>
<body><h1>bnport verify</h1><p class="verdict {'ok' if report.ok else 'bad'}" id="verdict">{verdict}</p>
<ul>{items}</ul>
<h2>Compared</h2><table id="compared">{what}</table>
<h2>Error over tolerance, per layer</h2>
<p>One bar per ported layer in execution order, then the outputs: max |error| / tolerance on a log axis; the dashed
line is the tolerance, red bars are above it.</p>
{chart_svg(report)}
<h2>Layers</h2>
<table id="layers"><tr><th>PyTorch</th><th>Keras</th><th>kind</th><th>max abs</th><th>max rel</th><th>tolerance</th>
<th>result</th></tr>{''.join(rows)}</table></body></html>
"""
    with atomic_path(Path(path), ".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
