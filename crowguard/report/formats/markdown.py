"""Markdown: fits a CI job summary or a pull-request comment."""

from __future__ import annotations

from crowguard.report.formats.interface import ReportFormat
from crowguard.report.model import Report, Severity


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


class MarkdownFormat(ReportFormat):
    """Verdict first, then per-stage findings in tables, then metrics."""

    name = "markdown"
    suffix = ".md"

    def render(self, report: Report) -> str:
        lines = [f"# crowguard {report.command}: {self._headline(report)}", ""]
        if report.source is not None:
            rev = f" @ `{report.source.revision}`" if report.source.revision else ""
            lines += [f"**Model:** `{report.source.reference}`{rev} ({len(report.source.files)} files)", ""]
        if report.verdict is not None:
            counts = ", ".join(f"{s.value}: {report.verdict.counts.get(s, 0)}" for s in reversed(list(Severity)))
            lines += [f"**Policy:** `{report.verdict.policy}` (fails at `{report.verdict.fail_on.value}` and above)",
                      "", f"**Findings by severity (counted for the verdict):** {counts}", ""]
            if report.verdict.reasons:
                lines += ["**Why it failed:**", ""] + [f"- {_cell(r)}" for r in report.verdict.reasons] + [""]
        for stage in report.stages:
            lines += [f"## {stage.name} ({stage.status}, {stage.seconds:.1f} s)", ""]
            if stage.findings:
                lines += ["| severity | rule | file | finding | remediation |", "| --- | --- | --- | --- | --- |"]
                for f in sorted(stage.findings, key=lambda f: -f.severity.rank):
                    lines.append(f"| {f.severity.value} | `{f.rule_id}` | {_cell(f.file or '')} | "
                                 f"{_cell(f.title)}: {_cell(f.evidence)} | {_cell(f.remediation)} |")
                lines.append("")
            else:
                lines += ["No findings.", ""] if stage.status == "completed" else []
            lines += [f"- error: {_cell(e)}" for e in stage.errors]
            lines += [f"- skipped `{s.path}`: {_cell(s.reason)}" for s in stage.skipped]
            scalars = {k: v for k, v in stage.metrics.items() if isinstance(v, (int, float, str, bool))}
            if scalars:
                lines += ["", "| metric | value |", "| --- | --- |"]
                lines += [f"| {_cell(k)} | {_fmt(v)} |" for k, v in scalars.items()]
            lines.append("")
        if report.output:
            lines += [f"**Output:** `{report.output}`", ""]
        return "\n".join(lines).rstrip() + "\n"

    @staticmethod
    def _headline(report: Report) -> str:
        if report.verdict is None:
            return "no verdict"
        return "PASS" if report.verdict.passed else f"FAIL (exit {report.verdict.exit_code})"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _cell(value)
