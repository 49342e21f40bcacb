"""Markdown: fits a CI job summary or a pull-request comment; leads with the answer."""

from __future__ import annotations

from crowguard.report.formats import summary
from crowguard.report.formats.interface import ReportFormat
from crowguard.report.model import Report, Severity, StageResult


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


class MarkdownFormat(ReportFormat):
    """Verdict, before/after table, why, findings grouped by stage, then each stage's outcome and metrics."""

    name = "markdown"
    suffix = ".md"

    def render(self, report: Report) -> str:
        lines = [f"# crowguard {report.command}: {summary.headline(report)}", ""]
        if report.verdict is not None:
            lines += [f"**Policy:** `{report.verdict.policy}` (fails at `{report.verdict.fail_on.value}` and above)",
                      ""]
        if report.source is not None:
            rev = f" @ `{report.source.revision}`" if report.source.revision else ""
            lines += [f"**Model:** `{report.source.reference}`{rev} ({len(report.source.files)} files)", ""]
        table = summary.comparison(report)
        if table is not None:
            lines += ["| | " + " | ".join(table.columns) + " |", "| --- |" + " --- |" * len(table.columns)]
            lines += [f"| {_cell(label)} | " + " | ".join(_cell(c) for c in cells) + " |"
                      for label, cells in table.rows]
            lines.append("")
        if report.verdict is not None:
            lines += ["**Why:**", ""] + [f"- {_cell(r)}" for r in summary.why(report)] + [""]
            counts = ", ".join(f"{s.value}: {report.verdict.counts.get(s, 0)}" for s in reversed(list(Severity)))
            lines += [f"**Findings by severity (counted for the verdict):** {counts}", ""]
        lines += self._findings(report)
        for stage in report.stages:
            lines += self._stage(stage)
        if report.output:
            lines += [f"**Output:** `{report.output}`", ""]
        return "\n".join(lines).rstrip() + "\n"

    @staticmethod
    def _findings(report: Report) -> list[str]:
        """One sub-section per stage with findings, in pipeline order, each finding with its stage's advice."""
        lines = ["## Findings by stage", ""]
        groups = summary.finding_groups(report)
        if not groups:
            return [*lines, "No stage reported a finding.", ""]
        for group in groups:
            stage = group.stage
            lines += [f"### {_cell(group.title)} (`{_cell(stage.name)}`): {group.count}", ""]
            if group.note is not None:
                lines += [group.note, ""]
            lines += ["| severity | rule | file | location | finding | remediation |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for f in sorted(stage.findings, key=lambda f: -f.severity.rank):
                lines.append(f"| {f.severity.value} | `{f.rule_id}` | {_cell(f.file or '')} | "
                             f"{_cell(f.location or '')} | {_cell(f.title)}: {_cell(f.evidence)} | "
                             f"{_cell(f.remediation)} |")
            lines.append("")
        return lines

    @staticmethod
    def _stage(stage: StageResult) -> list[str]:
        lines = [f"## {stage.name} ({stage.status}, {stage.seconds:.1f} s)", ""]
        if (sentence := summary.findings_sentence(stage)) is not None:
            lines += [sentence, ""]
        if (sentence := summary.no_findings_sentence(stage)) is not None:
            lines += [sentence, ""]
        if (reason := summary.skipped_reason(stage)) is not None:
            lines += [f"Skipped: {_cell(reason)}", ""]
        lines += [f"- error: {_cell(e)}" for e in stage.errors]
        lines += [f"- skipped `{s.path}`: {_cell(s.reason)}" for s in stage.skipped]
        scalars = {k: v for k, v in stage.metrics.items()
                   if isinstance(v, (int, float, str, bool)) and not (k == "reason" and stage.status == "skipped")}
        if scalars:
            lines += ([""] if lines[-1] else []) + ["| metric | value |", "| --- | --- |"]
            lines += [f"| {_cell(k)} | {_fmt(v)} |" for k, v in scalars.items()]
        lines.append("")
        return lines


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _cell(value)
