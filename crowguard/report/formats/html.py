"""Self-contained HTML: one file, inline CSS and SVG, no script, no external resource.

A Content-Security-Policy meta tag forbids any load the page might be tricked into (every model-
supplied string is escaped as well). Charts come from ``svg``: findings by severity, the largest
files of the inventory, and every chart a stage put in ``metrics["charts"]``.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from crowguard.report.charts import CHARTS_KEY
from crowguard.report.formats import summary
from crowguard.report.formats.interface import ReportFormat
from crowguard.report.formats.svg import format_value, render_bar_chart, render_line_chart
from crowguard.report.model import Finding, Report, Severity, StageResult

SEVERITY_COLORS = {"critical": "#991b1b", "high": "#dc2626", "medium": "#d97706", "low": "#0891b2", "info": "#6b7280"}
LARGEST_FILES = 20
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#111827}
h1{font-size:1.5rem}h2{border-bottom:1px solid #e5e7eb;padding-bottom:.3rem;margin-top:2rem}
.verdict{padding:.8rem 1rem;border-radius:6px;color:#fff;font-weight:bold;font-size:1.2rem}
.pass{background:#15803d}.fail{background:#b91c1c}.none{background:#4b5563}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #e5e7eb;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f9fafb}code,.mono{font-family:ui-monospace,monospace;font-size:.85em;word-break:break-all}
.sev{color:#fff;border-radius:4px;padding:0 .4rem;font-size:.8rem;text-transform:uppercase}
.num{text-align:right;white-space:nowrap}.muted{color:#6b7280}figure{margin:1rem 0}
table.compare{width:auto;min-width:50%;font-size:1rem}table.compare td:first-child{font-weight:600}
"""


class HtmlFormat(ReportFormat):
    """Verdict, before/after table and why first; then findings grouped by stage, the stages with their charts,
    and the file inventory."""

    name = "html"
    suffix = ".html"

    def render(self, report: Report) -> str:
        body = [self._header(report), self._comparison(report), self._why(report), self._severity_chart(report),
                self._findings(report)]
        body += [self._stage(stage) for stage in report.stages]
        body.append(self._inventory(report))
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">"
                f"<title>crowguard {escape(report.command)} report</title><style>{_CSS}</style></head>"
                f"<body>{''.join(body)}<p class=\"muted\">{escape(report.tool)} {escape(report.tool_version)}, "
                f"report schema {escape(report.schema_version)}, {escape(report.created_at.isoformat())}</p>"
                "</body></html>\n")

    def _header(self, report: Report) -> str:
        parts = [f"<h1>crowguard {escape(report.command)}</h1>"]
        verdict = report.verdict
        if verdict is None:
            parts.append('<div class="verdict none">no verdict</div>')
        else:
            state = summary.headline(report)
            parts.append(f'<div class="verdict {"pass" if verdict.passed else "fail"}" id="verdict">{state} under '
                         f'policy <code>{escape(verdict.policy)}</code>, failing at {escape(verdict.fail_on.value)} '
                         "and above</div>")
        if report.source is not None:
            revision = f" @ <code>{escape(report.source.revision)}</code>" if report.source.revision else ""
            parts.append(f"<p>Model: <code>{escape(report.source.reference)}</code>{revision} "
                         f"({len(report.source.files)} files)</p>")
        if report.output:
            parts.append(f"<p>Output: <code>{escape(report.output)}</code></p>")
        return "".join(parts)

    @staticmethod
    def _comparison(report: Report) -> str:
        table = summary.comparison(report)
        if table is None:
            return ""
        head = "".join(f"<th class=\"num\">{escape(c)}</th>" for c in table.columns)
        rows = "".join(f"<tr><td>{escape(label)}</td>" + "".join(f"<td class=\"num\">{escape(c)}</td>" for c in cells)
                       + "</tr>" for label, cells in table.rows)
        return f'<table class="compare" id="before-after"><tr><th></th>{head}</tr>{rows}</table>'

    @staticmethod
    def _why(report: Report) -> str:
        reasons = summary.why(report)
        if not reasons:
            return ""
        return '<h2>Why</h2><ul id="why">' + "".join(f"<li>{escape(r)}</li>" for r in reasons) + "</ul>"

    def _severity_chart(self, report: Report) -> str:
        order = list(reversed(list(Severity)))
        counts = report.verdict.counts if report.verdict else {}
        values = [float(counts.get(s, sum(1 for f in report.findings if f.severity is s))) for s in order]
        chart = render_bar_chart("Findings by severity", [s.value for s in order], values,
                                 colors=[SEVERITY_COLORS[s.value] for s in order])
        return f"<figure>{chart}</figure>"

    def _findings(self, report: Report) -> str:
        """One sub-section per stage with findings, in pipeline order, each finding with its stage's advice."""
        parts = ['<h2 id="findings">Findings by stage</h2>']
        groups = summary.finding_groups(report)
        if not groups:
            parts.append("<p>No stage reported a finding.</p>")
        for group in groups:
            stage = group.stage
            parts.append(f'<section class="findings" data-stage="{escape(stage.name)}"><h3>{escape(group.title)} '
                         f'<code>{escape(stage.name)}</code>: {escape(group.count)}</h3>')
            if group.note is not None:
                parts.append(f"<p>{escape(group.note)}</p>")
            rows = "".join(self._finding(f) for f in sorted(stage.findings, key=lambda f: -f.severity.rank))
            parts.append("<table><tr><th>severity</th><th>rule</th><th>file</th><th>location</th><th>finding</th>"
                         f"<th>remediation</th></tr>{rows}</table></section>")
        return "".join(parts)

    def _stage(self, stage: StageResult) -> str:
        parts = [f"<h2>{escape(stage.name)} <span class=\"muted\">({escape(stage.status)}, {stage.seconds:.1f} s)"
                 "</span></h2>"]
        if (sentence := summary.findings_sentence(stage)) is not None:
            parts.append(f"<p>{escape(sentence)}</p>")
        if (sentence := summary.no_findings_sentence(stage)) is not None:
            parts.append(f"<p>{escape(sentence)}</p>")
        if (reason := summary.skipped_reason(stage)) is not None:
            parts.append(f"<p>Skipped: {escape(reason)}</p>")
        parts += [f'<p class="fail verdict">error: {escape(e)}</p>' for e in stage.errors]
        if stage.skipped:
            parts.append("<p>Skipped:</p><ul>" + "".join(
                f"<li><code>{escape(s.path)}</code>: {escape(s.reason)}</li>" for s in stage.skipped) + "</ul>")
        scalars = {k: v for k, v in stage.metrics.items()
                   if isinstance(v, (int, float, str, bool)) and not (k == "reason" and stage.status == "skipped")}
        if scalars:
            parts.append("<table><tr><th>metric</th><th>value</th></tr>" + "".join(
                f"<tr><td>{escape(k)}</td><td class=\"num\">{escape(_scalar(v))}</td></tr>"
                for k, v in scalars.items()) + "</table>")
        parts += [f"<figure>{chart}</figure>" for chart in _stage_charts(stage.metrics.get(CHARTS_KEY))]
        return "".join(parts)

    @staticmethod
    def _finding(f: Finding) -> str:
        details = (f"<details><summary>details</summary><pre class=\"mono\">"
                   f"{escape(json.dumps(f.details, indent=1)[:4000])}</pre></details>" if f.details else "")
        return (f"<tr><td><span class=\"sev\" style=\"background:{SEVERITY_COLORS[f.severity.value]}\">"
                f"{escape(f.severity.value)}</span></td>"
                f"<td style=\"white-space:nowrap\"><code>{escape(f.rule_id)}</code></td>"
                f"<td class=\"mono\">{escape(f.file or '')}</td><td class=\"mono\">{escape(f.location or '')}</td>"
                f"<td><b>{escape(f.title)}</b><br>{escape(f.evidence)}{details}</td>"
                f"<td>{escape(f.remediation)}</td></tr>")

    def _inventory(self, report: Report) -> str:
        if report.source is None or not report.source.files:
            return ""
        files = report.source.files
        largest = sorted(files, key=lambda f: -f.size)[:LARGEST_FILES]
        chart = render_bar_chart(f"Largest files ({len(largest)} of {len(files)})", [f.path for f in largest],
                                 [float(f.size) for f in largest], unit="bytes")
        rows = "".join(f"<tr><td class=\"mono\">{escape(f.path)}</td><td>{escape(f.format)}</td>"
                       f"<td class=\"num\">{escape(format_value(f.size, 'bytes'))}</td>"
                       f"<td class=\"mono\">{escape(f.sha256)}</td></tr>" for f in files)
        return (f"<h2>File inventory</h2><figure>{chart}</figure><table><tr><th>path</th>"
                f"<th>format (by content)</th><th>size</th><th>sha256</th></tr>{rows}</table>")


def _stage_charts(specs: Any) -> list[str]:
    charts = []
    for spec in specs if isinstance(specs, list) else []:
        try:
            if spec["kind"] == "bar":
                charts.append(render_bar_chart(str(spec["title"]), [str(v) for v in spec["labels"]], spec["values"],
                                               unit=str(spec.get("unit", ""))))
            elif spec["kind"] == "line":
                charts.append(render_line_chart(str(spec["title"]), spec["x"], spec["series"],
                                                x_label=str(spec.get("x_label", "")),
                                                y_label=str(spec.get("y_label", ""))))
        except (KeyError, TypeError, ValueError):
            charts.append(f"<p class=\"muted\">chart {escape(str(spec)[:80])} could not be drawn</p>")
    return charts


def _scalar(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
