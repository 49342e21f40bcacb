"""Writing rendered reports to files: each whole or not at all; an unwritable path is a UsageError."""

from __future__ import annotations

from pathlib import Path

from crowguard.atomic import write_text_atomic
from crowguard.errors import UsageError
from crowguard.report.formats import FORMATS, get_format
from crowguard.report.model import Report


def write_report_dir(report: Report, directory: Path, formats: tuple[str, ...] = tuple(FORMATS)) -> list[Path]:
    """Write ``report.<suffix>`` in every format into ``directory``, each file whole or not at all."""
    written = []
    for name in formats:
        fmt = get_format(name)
        path = directory / f"report{fmt.suffix}"
        write_report_file(path, fmt.render(report))
        written.append(path)
    return written


def write_report_file(path: Path, text: str) -> None:
    """Write one rendered report whole or not at all; an unwritable path is a UsageError."""
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {path}: {exc.strerror or exc}",
                         hint="choose a writable --report / --report-dir path") from None
