"""The interface every report format implements: render a Report to text, nothing else."""

from __future__ import annotations

from abc import ABC, abstractmethod

from crowguard.report.model import Report


class ReportFormat(ABC):
    """A report renderer. Formats read only the report model; they never print or touch files."""

    name: str
    suffix: str

    @abstractmethod
    def render(self, report: Report) -> str:
        """Return the whole document."""
