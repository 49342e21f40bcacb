"""Writing a report: the machine-readable document to stdout or a file, a summary to stderr."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.table import Table

from crowguard.cli.guard import stderr
from crowguard.report.formats import FORMATS, get_format
from crowguard.report.model import Report
from crowguard.report.write import write_report_file

_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


STDOUT = "-"


def is_stdout(path: Path | None) -> bool:
    """True for ``--report -``: the report goes to stdout, as with no ``--report``."""
    return path is not None and str(path) == STDOUT


def emit_report(report: Report, *, fmt: str = "json", report_path: Path | None = None, quiet: bool = False) -> int:
    """Render the report, write it (``-`` or None: stdout), print the summary; return the verdict's exit code."""
    if is_stdout(report_path):
        report_path = None
    text = get_format(fmt).render(report)
    if report_path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_report_file(report_path, text)
    if not quiet:
        print_summary(report)
        if report_path is not None:
            stderr.print(f"report written to {report_path}")
    return report.verdict.exit_code if report.verdict else 0


def format_for_path(path: Path | None, default: str = "json") -> str:
    """The format whose suffix ``path`` ends with (``a.sarif``: sarif, ``a.cdx.json``: cyclonedx), else ``default``."""
    name = path.name.lower() if path is not None else ""
    matching = [(len(fmt.suffix), fmt_name) for fmt_name, fmt in FORMATS.items() if name.endswith(fmt.suffix)]
    return max(matching)[1] if matching else default  # the longest suffix: out.cdx.json is cyclonedx


def print_summary(report: Report) -> None:
    """A readable table of findings and the verdict, on stderr."""
    findings = report.findings
    if findings:  # grouped by stage (the same trigger may be found before and after sanitizing), worst first
        table = Table(title=f"crowguard {report.command}: findings", title_justify="left")
        for column in ("stage", "severity", "rule", "file", "finding"):
            table.add_column(column, overflow="fold")
        for stage in report.stages:
            for f in sorted(stage.findings, key=lambda f: -f.severity.rank):
                style = _STYLE[f.severity.value]
                table.add_row(stage.name, f"[{style}]{f.severity.value}[/]", f.rule_id, f.file or "",
                              f"{f.title}: {f.evidence}")
        stderr.print(table)
    for stage in report.stages:
        for err in stage.errors:
            stderr.print(f"[red]{stage.name} error:[/] {err}", markup=True)
    verdict = report.verdict
    if verdict is None:
        return
    if verdict.passed:
        counted = sum(verdict.counts.values())
        # after sanitizing, the input model's findings stay in the report but the verdict is on the output
        earlier = f"; {len(findings) - counted} more on the input, before sanitizing" if len(findings) > counted else ""
        stderr.print(f"[bold green]PASS[/] under policy {verdict.policy} "
                     f"({counted} finding(s) counted, none at or above {verdict.fail_on.value}{earlier})")
    else:
        stderr.print(f"[bold red]FAIL[/] under policy {verdict.policy} (exit {verdict.exit_code})")
        for reason in verdict.reasons:
            stderr.print(f"  - {reason}", markup=False)
