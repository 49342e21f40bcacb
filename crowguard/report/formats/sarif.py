"""SARIF 2.1.0 for code-scanning dashboards (GitHub code scanning and others).

One run; one rule per rule id seen, with ``properties.security-severity`` (the highest severity the
rule was reported at) and the remediation as help (each stage's, when the stages advise differently);
one result per finding, located by the file's path relative to the model folder (``uriBaseId``
MODELROOT) with a fingerprint that stays the same across runs for the same finding in the same stage.
The stage is part of each result: ``properties.stage``, the message's first words, and the
fingerprint, so that a trigger found on the input and again on the sanitized model stays two
results (two alerts) that each say where they came from. Stage errors become tool execution
notifications, and the file inventory becomes the run's artifacts with their sha-256.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from crowguard.report.formats.interface import ReportFormat
from crowguard.report.formats.summary import stage_title
from crowguard.report.model import Finding, Report, Severity

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
ROOT_ID = "MODELROOT"
SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5", Severity.LOW: "3.0",
                     Severity.INFO: "0.0"}
LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note",
         Severity.INFO: "note"}
FINGERPRINT_KEY = "crowguardFinding/v2"  # v2: the stage is part of the key (v1 was the finding alone)


class SarifFormat(ReportFormat):
    """The report as a SARIF 2.1.0 log."""

    name = "sarif"
    suffix = ".sarif"

    def render(self, report: Report) -> str:
        findings = report.staged_findings
        rule_ids = sorted({f.rule_id for _, f in findings})
        by_rule = {r: [(stage, f) for stage, f in findings if f.rule_id == r] for r in rule_ids}
        reference = report.source.reference if report.source else ""
        run: dict[str, Any] = {
            "tool": {"driver": {"name": report.tool, "version": report.tool_version,
                                "semanticVersion": report.tool_version,
                                "rules": [_rule(r, by_rule[r]) for r in rule_ids]}},
            "originalUriBaseIds": {ROOT_ID: {"description": {"text": f"The scanned model folder: {reference}"}}},
            "invocations": [_invocation(report)],
            "results": [_result(s, f, rule_ids.index(f.rule_id)) for s, f in findings],
            "properties": {"command": report.command, "schemaVersion": report.schema_version},
        }
        if report.source is not None and report.source.files:
            run["artifacts"] = [{"location": {"uri": f.path, "uriBaseId": ROOT_ID}, "length": f.size,
                                 "hashes": {"sha-256": f.sha256}, "properties": {"format": f.format}}
                                for f in report.source.files]
        if report.verdict is not None:
            run["properties"]["verdict"] = {"passed": report.verdict.passed, "exitCode": report.verdict.exit_code,
                                            "policy": report.verdict.policy}
        log = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
        return json.dumps(log, indent=2) + "\n"


def _rule(rule_id: str, findings: list[tuple[str, Finding]]) -> dict[str, Any]:
    worst = max(f.severity for _, f in findings)
    example = next(f for _, f in findings if f.severity is worst)
    advice: dict[str, str] = {}  # stage -> its remediation, in stage order
    for stage, f in findings:
        advice.setdefault(stage, f.remediation)
    if len(set(advice.values())) > 1:
        help_text = "\n".join(f"{stage_title(stage)}: {text}" for stage, text in advice.items())
    else:
        help_text = example.remediation
    return {
        "id": rule_id,
        "name": "".join(part.capitalize() for part in rule_id.split("-")[1:]),
        "shortDescription": {"text": example.title},
        "help": {"text": help_text},
        "defaultConfiguration": {"level": LEVEL[worst]},
        "properties": {"security-severity": SECURITY_SEVERITY[worst], "tags": ["security", "ml-model"]},
    }


def _result(stage: str, finding: Finding, rule_index: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": LEVEL[finding.severity],
        "message": {"text": f"{stage_title(stage)}: {finding.title}: {finding.evidence}"
                            + (f" (at {finding.location})" if finding.location else "")},
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(finding, stage)},
        "properties": {"stage": stage, "severity": finding.severity.value,
                       "security-severity": SECURITY_SEVERITY[finding.severity], "remediation": finding.remediation},
    }
    if finding.file:
        location: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": finding.file,
                                                                              "uriBaseId": ROOT_ID}}}
        if finding.location:
            location["logicalLocations"] = [{"name": finding.location[:200]}]
        result["locations"] = [location]
    return result


def fingerprint(finding: Finding, stage: str) -> str:
    """Stable across runs for the same finding in the same stage: stage, rule, file, location, title, evidence."""
    key = "\x1f".join((stage, finding.rule_id, finding.file or "", finding.location or "", finding.title,
                       finding.evidence))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _invocation(report: Report) -> dict[str, Any]:
    failed = [s for s in report.stages if s.status == "failed"]
    notes = [{"level": "error", "message": {"text": f"{stage.name}: {error}"}}
             for stage in report.stages for error in stage.errors]
    invocation: dict[str, Any] = {"executionSuccessful": not failed}
    if report.verdict is not None:
        invocation["exitCode"] = report.verdict.exit_code
    if notes:
        invocation["toolExecutionNotifications"] = notes
    return invocation
