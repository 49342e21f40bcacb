"""Reading a saved ``report.json`` back into the report model, for re-rendering.

The file is read bounded, parsed as JSON, its ``schema_version`` checked (same major version as
this crowguard writes), then validated by the model itself; every failure is a ``UsageError``
naming the file and what is wrong (exit 2), never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from crowguard.errors import UsageError
from crowguard.report.model import SCHEMA_VERSION, Report

MAX_REPORT_BYTES = 256 * 1024 * 1024
_HINT = "pass a report.json written by crowguard (scan --report, or report.json in a gate's output folder)"


def load_report(path: Path) -> Report:
    """The report saved at ``path``, or a UsageError saying why it is not one."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the report {path}: {exc.strerror or exc}", hint=_HINT) from None
    if len(data) > MAX_REPORT_BYTES:
        raise UsageError(f"{path} is over {MAX_REPORT_BYTES // 2**20} MiB: not a crowguard report", hint=_HINT)
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not JSON: {exc}", hint=_HINT) from None
    if not isinstance(document, dict) or "schema_version" not in document:
        raise UsageError(f"{path} is not a crowguard report (no schema_version)", hint=_HINT)
    version = document["schema_version"]
    if not isinstance(version, str) or version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise UsageError(f"{path} has report schema version {version!r}; this crowguard reads {SCHEMA_VERSION}",
                         hint="re-render it with the crowguard version that wrote it, or re-run the scan")
    try:
        return Report.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise UsageError(f"{path} does not match the report schema {SCHEMA_VERSION}: {problems}", hint=_HINT) from None
