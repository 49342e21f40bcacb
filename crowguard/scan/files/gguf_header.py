"""GGUF files: the header must parse within crowguard's caps, and its chat templates are read out.

The header (metadata and tensor table) is read with ``crowguard.gguf_metadata``, which streams it
with bounded memory and checks every declared count and tensor range against the file. A header it
cannot examine (malformed, truncated, nested or sized beyond the caps) is a HIGH finding: the file
cannot be vouched for. The chat templates in the metadata (``tokenizer.chat_template`` and
``tokenizer.chat_template.NAME``) go through the same checks as ``chat_template.jinja``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from crowguard.gguf_metadata import GgufError, GgufHeader, read_gguf_header_from
from crowguard.report.model import Finding, Severity
from crowguard.scan.files.inventory import open_nofollow
from crowguard.scan.interface import FileScanner, Inventory, InventoryFile, ScanOutcome

if TYPE_CHECKING:
    from crowguard.policy import Policy

TEMPLATE_KEY = "tokenizer.chat_template"
_BUFFER_BYTES = 1 << 16


class GgufHeaderScanner(FileScanner):
    """One finding per GGUF file whose header cannot be examined."""

    name = "gguf-header"

    def scan(self, folder: Path, inventory: Inventory, policy: Policy) -> ScanOutcome:
        findings, errors = [], []
        for file in inventory.files:
            if file.format != "gguf":
                continue
            try:
                read_header(file)
            except GgufError as exc:
                findings.append(Finding(
                    rule_id="CG-GGUF-HEADER", severity=Severity.HIGH, title="GGUF header cannot be examined",
                    file=file.path, evidence=str(exc),
                    remediation="Do not load this file; get the model from its publisher again, or as safetensors."))
            except OSError as exc:
                errors.append(f"cannot read {file.path}: {exc.strerror or exc}")
        return ScanOutcome(findings=tuple(findings), errors=tuple(errors))


def read_header(file: InventoryFile) -> GgufHeader:
    """The header of an inventoried GGUF file, opened without following links; GgufError if malformed."""
    with open_nofollow(file.absolute) as raw, io.BufferedReader(raw, _BUFFER_BYTES) as handle:
        return read_gguf_header_from(handle, file.size)


def gguf_chat_templates(file: InventoryFile) -> list[tuple[str, str]]:
    """``(metadata key, template)`` for each chat template in the file; none if the header is malformed."""
    try:
        header = read_header(file)
    except (GgufError, OSError):
        return []  # reported by GgufHeaderScanner
    return [(key, value) for key, value in header.metadata.items() if isinstance(value, str)
            and (key == TEMPLATE_KEY or key.startswith(TEMPLATE_KEY + "."))]
