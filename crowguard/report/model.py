"""The versioned, frozen report model.

Stages return ``StageResult`` values; the pipeline assembles them into one ``Report``; output
formats read only these types. The JSON form of ``Report`` is the canonical output, and its JSON
Schema is committed beside this module (``report.schema.json``) and checked for drift by a test.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from crowguard import __version__
from crowguard.secrets import REDACTED

SCHEMA_VERSION: Final = "1.0"
_RULE_ID = re.compile(r"^CG-[A-Z0-9]+(-[A-Z0-9]+)*$")
# a secret-looking key names a token (``hub_token``, ``token_value``), not a count of tokens (``max_new_tokens``)
_SECRET_KEY = re.compile(r"token$|token[_-]|secret|password|passwd|private|api[_-]?key|credential", re.I)


class Severity(str, Enum):
    """Finding severity, ordered INFO < LOW < MEDIUM < HIGH < CRITICAL."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank


_SEVERITY_ORDER = [Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


def displayable(text: str) -> str:
    """``text`` with undecodable bytes of a file name (surrogate escapes) shown as ``\\xNN``.

    A name that is not valid UTF-8 reaches Python as lone surrogates, which no UTF-8 output can
    hold; every report format shows it escaped instead (``b"\\xff.bin"`` -> ``\\xff.bin``).
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name decoding produces
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _displayable_tree(value: Any) -> Any:
    if isinstance(value, str):
        return displayable(value)
    if isinstance(value, dict):
        return {displayable(k) if isinstance(k, str) else k: _displayable_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_displayable_tree(v) for v in value)
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _displayable_text(cls, data: Any) -> Any:
        """Every string a report holds can be written as UTF-8 (file names may not be)."""
        return _displayable_tree(data) if isinstance(data, dict) else data


class Finding(_Frozen):
    """One thing a stage found: stable rule id, severity, where, why, and what to do."""

    rule_id: str = Field(description="Stable identifier, e.g. CG-PICKLE-GLOBAL.")
    severity: Severity
    title: str
    file: str | None = Field(default=None, description="Path relative to the model folder.")
    location: str | None = Field(default=None, description="Where in the file (offset, key, layer).")
    evidence: str = Field(description="What was observed, in one or two sentences.")
    remediation: str
    details: dict[str, JsonValue] = Field(default_factory=dict, description="Structured evidence.")

    @field_validator("rule_id")
    @classmethod
    def _rule_id_form(cls, value: str) -> str:
        if not _RULE_ID.match(value):
            raise ValueError(f"rule_id {value!r} must look like CG-WORD-WORD (upper case)")
        return value


class SkippedFile(_Frozen):
    """A file a stage did not examine, and why (skipping is a result, not an omission)."""

    path: str
    reason: str


StageStatus = Literal["completed", "failed", "skipped"]


class StageName(str, Enum):
    """Every stage a report can hold, by the name it carries in the JSON."""

    PULL = "pull"
    FILE_SCAN = "file-scan"
    BEHAVIOUR_SCAN = "behaviour-scan"
    BEHAVIOUR_RESCAN = "behaviour-rescan"  # a fresh scan of the sanitized model
    BEHAVIOUR_RECHECK = "behaviour-recheck"  # the input's candidates measured on the sanitized model
    EVAL = "eval"
    EVAL_BEFORE = "eval-before"
    EVAL_AFTER = "eval-after"
    SANITIZE = "sanitize"
    ATTACK_SUCCESS = "attack-success"
    UTILITY = "utility"
    SIGN = "sign"
    VERIFY = "verify"

    def __str__(self) -> str:
        return self.value


class StageResult(_Frozen):
    """What one stage (pull, file-scan, behaviour-scan, sanitize, eval, sign, ...) produced."""

    name: str = Field(description="A StageName value.")
    status: StageStatus = "completed"
    findings: tuple[Finding, ...] = ()
    errors: tuple[str, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()
    metrics: dict[str, JsonValue] = Field(default_factory=dict)
    seconds: float = 0.0

    @field_validator("name", mode="before")
    @classmethod
    def _plain_name(cls, value: Any) -> Any:
        return value.value if isinstance(value, StageName) else value


class FileEntry(_Frozen):
    """One file of the model as received: path relative to the folder, size, sha256, format."""

    path: str
    size: int
    sha256: str
    format: str = Field(description="Told by content: safetensors, pickle, zip-pickle, gguf, json, text, ...")


class Source(_Frozen):
    """Where the model came from, pinned."""

    reference: str = Field(description="Hub repo id or local path as given.")
    kind: Literal["local", "hub"] = "local"
    revision: str | None = Field(default=None, description="Resolved commit sha for hub models.")
    files: tuple[FileEntry, ...] = ()


class Verdict(_Frozen):
    """The policy's decision over all findings and stage outcomes."""

    passed: bool
    exit_code: int
    policy: str
    fail_on: Severity
    counts: dict[Severity, int]
    reasons: tuple[str, ...] = ()


class Report(_Frozen):
    """Everything one crowguard run found and did."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    tool: str = "crowguard"
    tool_version: str = __version__
    command: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    source: Source | None = None
    stages: tuple[StageResult, ...] = ()
    settings: dict[str, JsonValue] = Field(default_factory=dict)
    verdict: Verdict | None = None
    output: str | None = Field(default=None, description="Folder of the emitted model, if any.")

    @field_validator("settings")
    @classmethod
    def _redact(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        return redact(value)

    @property
    def findings(self) -> tuple[Finding, ...]:
        """All findings of all stages, in stage order."""
        return tuple(f for stage in self.stages for f in stage.findings)

    @property
    def staged_findings(self) -> tuple[tuple[str, Finding], ...]:
        """Each finding with the name of the stage that found it, in stage order (for formats that list flat)."""
        return tuple((stage.name, f) for stage in self.stages for f in stage.findings)

    def stage(self, name: StageName | str) -> StageResult | None:
        """The last stage result of that name, or None."""
        found = [s for s in self.stages if s.name == name]
        return found[-1] if found else None


def redact(value: Any) -> Any:
    """Replace the values of secret-looking keys, at any depth, so reports never carry secrets."""
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def severity_counts(findings: tuple[Finding, ...] | list[Finding]) -> dict[Severity, int]:
    """Count findings per severity, every severity present (zeros included)."""
    counts = {s: 0 for s in _SEVERITY_ORDER}
    for finding in findings:
        counts[finding.severity] += 1
    return counts
