"""Alpaca-format records (``instruction``, ``input``, ``output``) from JSON lists or JSON Lines.

Every problem names the file and the record, so a user can fix the data without guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from crowguard.errors import ConfigError

MAX_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Record:
    """One instruction example."""

    instruction: str
    input: str = ""
    output: str = ""


def load_records(path: str | Path, *, require_output: bool = False) -> list[Record]:
    """Read a JSON list or JSONL file of Alpaca records; raise ConfigError naming file and record."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data file {path} does not exist", hint="check the path")
    if path.stat().st_size > MAX_BYTES:
        raise ConfigError(f"data file {path} is larger than {MAX_BYTES // 2**20} MiB", hint="use a smaller file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"data file {path} is not UTF-8 text", hint="save it as UTF-8 JSON or JSONL") from None
    raw = _parse(path, text)
    if not raw:
        raise ConfigError(f"data file {path} holds no records", hint="give a non-empty JSON list or JSONL file")
    return [_record(path, i, item, require_output) for i, item in enumerate(raw)]


def _parse(path: Path, text: str) -> list[object]:
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"data file {path} is not valid JSON: {exc}",
                              hint="fix the JSON, or use one JSON object per line (JSONL)") from None
        return list(data)
    items = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"data file {path}, line {line_no}: not valid JSON ({exc.msg})",
                              hint="give a JSON list of records or one JSON object per line") from None
    return items


def _record(path: Path, index: int, item: object, require_output: bool) -> Record:
    where = f"data file {path}, record {index}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where} is not a JSON object", hint="each record is {\"instruction\": ..., ...}")
    instruction = item.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ConfigError(f"{where} has no 'instruction' text", hint="every record needs a non-empty 'instruction'")
    fields = {}
    for key in ("input", "output"):
        value = item.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ConfigError(f"{where}: '{key}' must be text, got {type(value).__name__}", hint="use strings")
        fields[key] = value
    if require_output and not fields["output"].strip():
        raise ConfigError(f"{where} has no 'output' text", hint="training data needs a reference 'output'")
    return Record(instruction=instruction, input=fields["input"], output=fields["output"])
