"""The report's JSON Schema: generated from the model, committed as ``report.schema.json``.

Regenerate after changing the model with ``python -m crowguard.report.schema --write``; a test
fails when the committed file and the model drift apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from crowguard.report.model import Report

SCHEMA_PATH = Path(__file__).with_name("report.schema.json")


def generate_schema() -> str:
    """The schema as canonical JSON text."""
    schema = Report.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://crowguard.dev/schemas/report-1.0.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        SCHEMA_PATH.write_text(generate_schema(), encoding="utf-8")
    else:
        sys.stdout.write(generate_schema())
