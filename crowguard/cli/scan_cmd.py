"""``crowguard scan MODEL``: the file scan under a policy, reported in any format; exit by verdict."""

from __future__ import annotations

from pathlib import Path

import typer

from crowguard.cli.guard import guarded, stderr
from crowguard.cli.output import emit_report, format_for_path, print_summary, write_report_dir
from crowguard.policy import builtin_policy, load_policy
from crowguard.report.formats import FORMATS, get_format

_FORMATS = "|".join(FORMATS)


@guarded
def scan(
    model: Path = typer.Argument(..., help="Local model folder to scan (nothing in it is loaded or run)."),
    policy: Path = typer.Option(None, "--policy", "-p", help="Policy YAML file. Default: the shipped "
                                "policies/default.yaml (fails on high, safetensors only, no remote code)."),
    fmt: str = typer.Option(None, "--format", "-f", help=f"Report format ({_FORMATS}). Default: json, or the "
                            "one --report's suffix names."),
    report: Path = typer.Option(None, "--report", "-o", help="Write the report to this file instead of stdout."),
    report_dir: Path = typer.Option(None, "--report-dir", help="Also write report.json, .md, .html and .sarif "
                                    "here; with it and without --format/--report, nothing goes to stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary on stderr."),
) -> int:
    """Scan MODEL's files for unsafe serialization, remote code, template tricks and path escapes.

    Exit 0: passed; 1: findings at or above the policy's fail_on; 2: usage error; 3: could not finish.
    """
    from crowguard.pipeline import run_scan

    if fmt is not None:
        get_format(fmt)  # an unknown format is a usage error before any work
    loaded = load_policy(policy if policy is not None else builtin_policy("default"))
    result = run_scan(model, loaded)
    if report_dir is not None:
        for path in write_report_dir(result, report_dir):
            if not quiet:
                stderr.print(f"report written to {path}", markup=False)
    if report_dir is not None and fmt is None and report is None:
        if not quiet:
            print_summary(result)
        return result.verdict.exit_code if result.verdict else 0
    return emit_report(result, fmt=fmt or format_for_path(report), report_path=report, quiet=quiet)
