"""Read a JSON file of the model folder strictly: bounded size, UTF-8, no duplicate keys.

Duplicate keys are refused because parsers disagree on which value wins, which is a known way to
show a scanner one configuration and a loader another.
"""

from __future__ import annotations

import json
from typing import Any

from crowguard.scan.files.inventory import open_nofollow
from crowguard.scan.interface import InventoryFile

MAX_JSON_BYTES = 64 * 1024 * 1024


class JsonFileError(ValueError):
    """The file is not one valid JSON document (the message says why)."""


class JsonTooLarge(JsonFileError):
    """The file is above ``MAX_JSON_BYTES``; it was not read."""


def load_json_file(file: InventoryFile) -> Any:
    """Parse one file; raise JsonFileError with a reason, or OSError when it cannot be read."""
    if file.size > MAX_JSON_BYTES:
        raise JsonTooLarge(f"{file.size} bytes, above the {MAX_JSON_BYTES}-byte cap for JSON files")
    with open_nofollow(file.absolute) as handle:
        raw = handle.read(MAX_JSON_BYTES + 1)
    try:
        return json.loads(raw.decode("utf-8-sig"), object_pairs_hook=reject_duplicate_keys)
    except UnicodeDecodeError as exc:
        raise JsonFileError(f"not UTF-8 at byte {exc.start}") from None
    except RecursionError:
        raise JsonFileError("nested too deeply") from None
    except ValueError as exc:
        raise JsonFileError(str(exc)[:200]) from None


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads`` that refuses a key given twice."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:80]!r}: parsers disagree on which value counts")
        result[key] = value
    return result
