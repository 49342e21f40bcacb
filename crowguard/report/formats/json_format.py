"""Canonical JSON: the report model as it is, validated by ``report.schema.json``."""

from __future__ import annotations

from crowguard.report.formats.interface import ReportFormat
from crowguard.report.model import Report


class JsonFormat(ReportFormat):
    """The report model serialised with pydantic, indented, keys in model order."""

    name = "json"
    suffix = ".json"

    def render(self, report: Report) -> str:
        return report.model_dump_json(indent=2) + "\n"
