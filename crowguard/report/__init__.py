"""The report model (what every stage produces) and the formats that render it."""

from crowguard.report.model import (
    SCHEMA_VERSION,
    FileEntry,
    Finding,
    Report,
    Severity,
    SkippedFile,
    Source,
    StageResult,
    StageStatus,
    Verdict,
)

__all__ = [
    "SCHEMA_VERSION",
    "FileEntry",
    "Finding",
    "Report",
    "Severity",
    "SkippedFile",
    "Source",
    "StageResult",
    "StageStatus",
    "Verdict",
]
