"""Remote code: ``auto_map`` in any ``*.json`` config, and Python source or bytecode in the folder.

``auto_map`` is searched for at every depth (``text_config.auto_map`` in a multimodal config is read
by transformers as well), walking the parsed document without recursion; the document itself is
bounded by the JSON size cap and the parser's nesting limit.

``trust_remote_code=True`` makes transformers import the classes ``auto_map`` names, from this
folder or from another repository (``owner/repo--module.Class``). crowguard never runs them; the
policy decides whether their presence fails the gate (``allow_remote_code``). Every JSON file is
parsed strictly here, so a malformed or ambiguous one is reported once, by this scanner.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from crowguard.report.model import Finding, Severity, SkippedFile
from crowguard.scan.files.json_files import JsonFileError, JsonTooLarge, load_json_file
from crowguard.scan.interface import FileScanner, Inventory, InventoryFile, ScanOutcome

if TYPE_CHECKING:
    from crowguard.policy import Policy

CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyw", ".pyx")
_NEVER_RUN = "crowguard never runs it; transformers imports it only with trust_remote_code=True."


class RemoteCodeScanner(FileScanner):
    """``auto_map`` entries and code files, at the policy's severity."""

    name = "remote-code"

    def scan(self, folder: Path, inventory: Inventory, policy: Policy) -> ScanOutcome:
        severity = Severity.INFO if policy.allow_remote_code else policy.violation_severity
        findings: list[Finding] = []
        skipped: list[SkippedFile] = []
        errors: list[str] = []
        for file in inventory.files:
            if file.path.lower().endswith(CODE_SUFFIXES):
                findings.append(_code_file(file, severity, policy.allow_remote_code))
            if not file.path.lower().endswith(".json"):
                continue
            try:
                data = load_json_file(file)
            except JsonTooLarge as exc:
                skipped.append(SkippedFile(path=file.path, reason=f"not parsed for auto_map: {exc}"))
                continue
            except JsonFileError as exc:
                findings.append(_invalid_json(file, str(exc)))
                continue
            except OSError as exc:
                errors.append(f"cannot read {file.path}: {exc.strerror or exc}")
                continue
            found = find_auto_maps(data)
            if found:
                findings.append(_auto_map(file, found, severity, policy.allow_remote_code))
        return ScanOutcome(findings=tuple(findings), skipped=tuple(skipped), errors=tuple(errors))


def find_auto_maps(data: Any) -> dict[str, Any]:
    """Every ``auto_map`` value in a parsed JSON document, by its key path (``text_config.auto_map``)."""
    found: dict[str, Any] = {}
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                path = f"{where}.{key}" if where else str(key)
                if key == "auto_map":
                    found[path] = item
                stack.append((path, item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    return dict(sorted(found.items()))


def _auto_map(file: InventoryFile, auto_maps: dict[str, Any], severity: Severity, allowed: bool) -> Finding:
    targets = sorted({str(v) for v in _flatten(list(auto_maps.values()))})
    foreign = sorted({t.split("--", 1)[0] for t in targets if "--" in t})
    evidence = f"auto_map names {', '.join(targets[:6]) or 'nothing'}" + (" ..." if len(targets) > 6 else "")
    if foreign:
        evidence += f"; code from other repositories: {', '.join(foreign)}"
    return Finding(
        rule_id="CG-REMOTE-CODE-AUTOMAP", severity=severity,
        title="config asks loaders to run the model's own Python code", file=file.path,
        location=", ".join(auto_maps),
        evidence=f"{evidence}. {_NEVER_RUN}",
        remediation=("Allowed by the policy: review the named code before any trust_remote_code=True load."
                     if allowed else "Use a model whose architecture transformers implements, or review the "
                     "code and set allow_remote_code: true in your policy."),
        details={"targets": list(targets), "other_repositories": list(foreign),  # list(): a JSON list to the checker
                 "keys": list(auto_maps)})


def _code_file(file: InventoryFile, severity: Severity, allowed: bool) -> Finding:
    return Finding(
        rule_id="CG-REMOTE-CODE-FILE", severity=severity, title="Python code in the model folder", file=file.path,
        evidence=f"{file.size} bytes of Python ({file.format}). {_NEVER_RUN}",
        remediation=("Allowed by the policy: review it before any trust_remote_code=True load." if allowed
                     else "Delete it if the model does not need it, or review it and set allow_remote_code: true."),
        details={"sha256": file.sha256})


def _invalid_json(file: InventoryFile, reason: str) -> Finding:
    return Finding(
        rule_id="CG-JSON-INVALID", severity=Severity.MEDIUM, title="JSON file that does not parse strictly",
        file=file.path, evidence=f"{reason}; loaders fail on it or read it differently from this scan",
        remediation="Download the file again, or fix it so that it is one valid JSON document without "
                    "duplicate keys.")


def _flatten(value: Any) -> list[Any]:
    """The leaves of a nested value, without recursion (a hostile config may nest deeply)."""
    leaves, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif item is not None:
            leaves.append(item)
    return leaves
