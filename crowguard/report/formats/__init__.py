"""Report formats, by name."""

from __future__ import annotations

from crowguard.errors import UsageError
from crowguard.report.formats.cyclonedx import CycloneDxFormat
from crowguard.report.formats.html import HtmlFormat
from crowguard.report.formats.interface import ReportFormat
from crowguard.report.formats.json_format import JsonFormat
from crowguard.report.formats.markdown import MarkdownFormat
from crowguard.report.formats.sarif import SarifFormat

FORMATS: dict[str, ReportFormat] = {f.name: f for f in (JsonFormat(), MarkdownFormat(), HtmlFormat(), SarifFormat(),
                                                         CycloneDxFormat())}


def get_format(name: str) -> ReportFormat:
    """The format of that name, or a UsageError listing the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise UsageError(f"unknown report format {name!r}", hint=f"use one of {', '.join(FORMATS)}") from None


__all__ = ["FORMATS", "ReportFormat", "get_format"]
