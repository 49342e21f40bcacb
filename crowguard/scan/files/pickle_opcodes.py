"""Opcode-level scan of pickle-based files with two maintained scanners, never unpickling.

Every stream a loader could unpickle (see ``containers``: raw pickles, zip and tar members,
compressed wrappers, object ``.npy`` arrays) goes through picklescan (its dangerous-globals list)
and fickling (symbolic interpretation and its unsafe-import analyses). Allow-list semantics: an
import either library calls dangerous is CRITICAL (CG-PICKLE-DANGEROUS-IMPORT), and so is every
import not on crowguard's own allow-list (``pickle_allowlist``, torch's ``weights_only`` set), under
any policy: ``allow_pickle`` accepts pickles that only rebuild tensors, nothing else. A stream that
cannot be parsed or is too large to parse, and a container that cannot be examined in full, is
CRITICAL too, since nothing vouches for it (fail closed). Other fickling warnings keep fickling's
severity; its notes about ordinary torch calls are not repeated. A file that holds a pickle only
inside a wrapper is refused by a policy without ``allow_pickle`` here (CG-POLICY-PICKLE), since
the weight-format scanner sees only its outer format.
"""

from __future__ import annotations

import ast
import io
import logging
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crowguard.file_formats import CONTAINER_FORMATS
from crowguard.models.folder import PICKLE_SUFFIXES
from crowguard.report.model import Finding, Severity
from crowguard.scan.files.containers import ContainerProblem, file_streams
from crowguard.scan.files.pickle_allowlist import is_allowed
from crowguard.scan.files.pickle_streams import PickleStream
from crowguard.scan.files.weight_formats import pickle_refusal, weight_format_of
from crowguard.scan.interface import FileScanner, Inventory, InventoryFile, ScanOutcome

if TYPE_CHECKING:
    from crowguard.policy import Policy

_IMPORT_ANALYSES = {"UnsafeImports", "UnsafeImportsML", "ScannerDeactivation"}
_NOISE_ANALYSES = {"NonStandardImports", "UnusedVariables", "MLAllowlist"}
_NOT_PICKLE = {"safetensors", "gguf", "numpy", "json", "elf", "pe", "macho", "png", "jpeg", "gif",
               "pdf", "riff"}
_DO_NOT_LOAD = ("Do not load this file: unpickling runs the code it names. Delete it and ask the publisher for "
                "safetensors weights.")


@dataclass
class _Import:
    dangerous_by: set[str] = field(default_factory=set)
    allowed_by: set[str] = field(default_factory=set)
    where: set[str] = field(default_factory=set)


class PickleOpcodeScanner(FileScanner):
    """Pickles by content, zips with pickle members, and files named like PyTorch checkpoints."""

    name = "pickle-opcodes"

    def scan(self, folder: Path, inventory: Inventory, policy: Policy) -> ScanOutcome:
        logging.getLogger("picklescan").setLevel(logging.CRITICAL)  # its per-file warnings duplicate ours
        findings: list[Finding] = []
        errors: list[str] = []
        for file in inventory.files:
            if is_pickle_candidate(file):
                try:
                    found, holds_pickle = scan_pickle_file(file)
                except OSError as exc:
                    errors.append(f"cannot read {file.path}: {exc.strerror or exc}")
                    continue
                except Exception as exc:  # noqa: BLE001 - hostile input broke a reader: this file fails closed
                    errors.append(f"cannot examine {file.path}: {type(exc).__name__}: {str(exc)[:200]}")
                    continue
                findings += found
                refusal = pickle_refusal(file, policy) if holds_pickle and weight_format_of(file) != "pickle" else None
                findings += [refusal] if refusal else []
        return ScanOutcome(findings=tuple(findings), errors=tuple(errors))


def is_pickle_candidate(file: InventoryFile) -> bool:
    """Pickle, container or numpy by content, a polyglot, or a checkpoint name no safe format explains."""
    if file.format in ("pickle", "numpy", *CONTAINER_FORMATS) or file.also:
        return True
    return file.path.lower().endswith(PICKLE_SUFFIXES) and file.format not in _NOT_PICKLE


def scan_pickle_file(file: InventoryFile) -> tuple[list[Finding], bool]:
    """Findings for every stream of one file, and whether it holds any pickle stream at all."""
    imports: dict[tuple[str, str], _Import] = {}
    findings: dict[tuple[str, str], Finding] = {}
    holds_pickle = False
    for stream in file_streams(file):
        if isinstance(stream, ContainerProblem):
            findings.setdefault((stream.rule, stream.message), _container_finding(file, stream))
            continue
        holds_pickle = True
        where = _where(stream)
        if stream.error:
            rule = "CG-PICKLE-TOO-LARGE" if stream.too_large else "CG-PICKLE-UNPARSEABLE"
            findings[(rule, where)] = _unparseable(rule, file, where, stream.error)
        if stream.data:
            for finding in _analyse(file, stream, where, imports):
                findings.setdefault((finding.rule_id, finding.evidence), finding)
    return list(findings.values()) + [_import_finding(file, key, seen) for key, seen in sorted(imports.items())
                                      if seen.dangerous_by or not is_allowed(*key)], holds_pickle


def _analyse(file: InventoryFile, stream: PickleStream, where: str,
             imports: dict[tuple[str, str], _Import]) -> list[Finding]:
    """Both libraries on one stream; either failing on hostile input is a finding (fail closed)."""
    # fickling writes warnings about malformed pickles to stdout, where a report may be going.
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        findings = []
        for library, analyse in (("picklescan", _picklescan), ("fickling", _fickling)):
            try:
                findings += analyse(file, stream, where, imports)
            except Exception as exc:  # noqa: BLE001 - hostile input may break a library: fail closed
                findings.append(_unparseable("CG-PICKLE-UNPARSEABLE", file, where,
                                             f"{library} could not analyse it: {type(exc).__name__}: "
                                             f"{str(exc)[:200]}"))
        return findings


def _picklescan(file: InventoryFile, stream: PickleStream, where: str,
                imports: dict[tuple[str, str], _Import]) -> list[Finding]:
    from picklescan.scanner import SafetyLevel, scan_pickle_bytes

    for found in scan_pickle_bytes(io.BytesIO(stream.data), file.path, multiple_pickles=False).globals:
        seen = imports.setdefault((found.module, found.name), _Import())
        seen.where.add(where)
        if found.safety is SafetyLevel.Dangerous:
            seen.dangerous_by.add("picklescan")
        elif found.safety is SafetyLevel.Innocuous:
            seen.allowed_by.add("picklescan")
    return []


def _fickling(file: InventoryFile, stream: PickleStream, where: str,
              imports: dict[tuple[str, str], _Import]) -> list[Finding]:
    from fickling.analysis import Severity as FicklingSeverity
    from fickling.analysis import check_safety
    from fickling.fickle import Pickled
    from fickling.ml import ML_ALLOWLIST

    pickled = Pickled.load(io.BytesIO(stream.data), fail_on_decode_error=False)
    results = check_safety(pickled)
    for module, name in _ast_imports(pickled.properties.imports):
        seen = imports.setdefault((module, name), _Import())
        seen.where.add(where)
        if name in ML_ALLOWLIST.get(module, {}):
            seen.allowed_by.add("fickling")
    findings = []
    for result in results.results:
        if result.analysis_name in _IMPORT_ANALYSES:
            for module, name in _trigger_imports(result.trigger):
                imports.setdefault((module, name), _Import(where={where})).dangerous_by.add("fickling")
        elif result.analysis_name in _NOISE_ANALYSES or (stream.error and result.analysis_name is None):
            continue
        elif result.analysis_name == "OvertlyBadEval" and result.severity < FicklingSeverity.OVERTLY_MALICIOUS:
            continue  # calls of imported functions: judged above through their imports
        else:
            findings.append(Finding(
                rule_id="CG-PICKLE-SUSPICIOUS-CONSTRUCT", severity=_from_fickling(result.severity.severity),
                title="pickle construct flagged by fickling", file=file.path, location=where,
                evidence=str(result)[:400], remediation=_DO_NOT_LOAD,
                details={"analysis": result.analysis_name, "fickling_severity": result.severity.name}))
    return findings


def _ast_imports(nodes: Any) -> list[tuple[str, str]]:
    pairs = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            pairs += [(node.module or "", alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            pairs += [(alias.name, "") for alias in node.names]
    return pairs


def _trigger_imports(trigger: str | None) -> list[tuple[str, str]]:
    try:
        return _ast_imports(ast.parse(trigger or "").body)
    except SyntaxError:
        return []


def _import_finding(file: InventoryFile, key: tuple[str, str], seen: _Import) -> Finding:
    module, name = key
    dotted = f"{module}.{name}" if name else module
    where = ", ".join(sorted(seen.where))
    details: dict[str, Any] = {"module": module, "name": name, "flagged_by": sorted(seen.dangerous_by),
                               "allowed_by": sorted(seen.allowed_by), "streams": sorted(seen.where)}
    if "unknown" in (module, name) and "picklescan" in seen.dangerous_by:
        return Finding(rule_id="CG-PICKLE-DYNAMIC-IMPORT", severity=Severity.CRITICAL,
                       title="pickle builds the name of what it imports at load time", file=file.path,
                       location=where, evidence=f"an import ({dotted}) whose name is not a constant: a known way "
                       "to hide a dangerous call from scanners", remediation=_DO_NOT_LOAD, details=details)
    if seen.dangerous_by:
        return Finding(rule_id="CG-PICKLE-DANGEROUS-IMPORT", severity=Severity.CRITICAL,
                       title=f"pickle imports {dotted}", file=file.path, location=where,
                       evidence=f"unpickling imports and can call {dotted}, which can run arbitrary code "
                       f"(flagged by {', '.join(sorted(seen.dangerous_by))})",
                       remediation=_DO_NOT_LOAD, details=details)
    return Finding(rule_id="CG-PICKLE-UNKNOWN-IMPORT", severity=Severity.CRITICAL,
                   title=f"pickle imports {dotted}, which is not on the allow-list", file=file.path, location=where,
                   evidence=f"unpickling imports {dotted}; only what torch.load(weights_only=True) allows (tensor "
                   "rebuilding) is accepted, and anything else may run code with the pickle's arguments",
                   remediation="Do not load it outside a sandbox. Ask the publisher for safetensors weights.",
                   details=details)


_CONTAINER_TITLES = {
    "CG-ZIP-AMBIGUOUS": "zip archive whose structure zip readers can read differently",
    "CG-CONTAINER-LIMIT": "archive or compressed stream beyond the unpacking limits",
    "CG-CONTAINER-UNREADABLE": "archive or compressed stream crowguard cannot examine",
}


def _container_finding(file: InventoryFile, problem: ContainerProblem) -> Finding:
    return Finding(rule_id=problem.rule, severity=Severity.CRITICAL, title=_CONTAINER_TITLES[problem.rule],
                   file=file.path, location=problem.where, evidence=f"{problem.message}; what a loader would read "
                   "from it cannot be vouched for",
                   remediation="Do not load this file: torch.load, numpy or joblib may unpickle what crowguard could "
                   "not examine. Ask the publisher for safetensors weights.")


def _unparseable(rule: str, file: InventoryFile, where: str, error: str) -> Finding:
    too_large = rule == "CG-PICKLE-TOO-LARGE"
    return Finding(rule_id=rule, severity=Severity.CRITICAL,
                   title="pickle stream too large to scan" if too_large else "pickle stream cannot be parsed",
                   file=file.path, location=where,
                   evidence=f"{error}; nothing vouches for the opcodes a loader would run from it",
                   remediation="Do not load this file: crowguard cannot clear what it cannot parse, and loaders "
                   "may read it differently. Ask the publisher for safetensors weights.")


def _where(stream: PickleStream) -> str:
    prefix = f"member {stream.member}, " if stream.member else ""
    return f"{prefix}stream {stream.index}"


def _from_fickling(level: int) -> Severity:
    return [Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL, Severity.CRITICAL][level]
