"""``crowguard report render``: re-render a saved report.json in another format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crowguard.cli.guard import guarded, stderr
from crowguard.cli.options import format_option, out_option
from crowguard.cli.output import STDOUT, format_for_path, is_stdout
from crowguard.report.formats import get_format
from crowguard.report.load import load_report
from crowguard.report.write import write_report_file

app = typer.Typer(help="Work with saved reports.", no_args_is_help=True)


@app.command("render")
@guarded
def render(
    report: Annotated[Path, typer.Argument(help="A report.json written by crowguard (scan --report, gate "
                                           "output).")],
    fmt: Annotated[str | None, format_option("html, markdown, sarif, cyclonedx or json. Default: the one --out's "
                                             "suffix names (.html, .md, .sarif, .cdx.json), else html.")] = None,
    out: Annotated[Path | None, out_option(f"Write here instead of stdout ({STDOUT}: stdout).")] = None,
) -> int:
    """Render REPORT again (the formats read only the report model); exit 0, or 2 for a file that is no report."""
    fmt = fmt or format_for_path(None if out is None or is_stdout(out) else out, default="html")
    text = get_format(fmt).render(load_report(report))
    if out is None or is_stdout(out):
        typer.echo(text, nl=False)
    else:
        write_report_file(out, text)
        stderr.print(f"{fmt} report written to {out}")
    return 0
