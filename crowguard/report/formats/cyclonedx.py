"""CycloneDX 1.6 ML-BOM: the model as a ``machine-learning-model`` component, its files, and the findings.

Built with ``cyclonedx-python-lib``. The model component carries the pull's source (a
``pkg:huggingface`` purl pinned to the commit for hub models, the reference and revision as
properties) and one ``file`` sub-component per file with its sha-256 and the format told by content.
The library does not model ``modelCard`` yet, so that one object is added to the serialised
component as CycloneDX 1.6 defines it: ``modelParameters`` (task, inputs, outputs) and
``quantitativeAnalysis.performanceMetrics`` from the evaluation stages (sliced before / after).

Findings are CycloneDX ``vulnerabilities``, not properties: a vulnerability is what CycloneDX
defines for "a security defect affecting a component", with a severity rating, a source (the tool
and rule), a recommendation and ``affects`` pointing at the file's bom-ref, which is what a finding
is; properties are untyped name-value strings that no BOM consumer reads as risk. Each vulnerability
names the stage that found it (the ``crowguard:stage`` property) and carries that stage's advice as
its recommendation, so a trigger found on the input and again on the sanitized model stays two
vulnerabilities, each attributed. The verdict is a set of ``crowguard:verdict:*`` properties on the
BOM's metadata.

The serial number and timestamp come from the report, so the same report always renders the same BOM.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from crowguard.report.formats.interface import ReportFormat
from crowguard.report.formats.sarif import fingerprint
from crowguard.report.model import Finding, Report

SPEC_VERSION = "1.6"
_EVAL_METRICS = (("asr", "attack success rate"), ("clean_trigger_rate", "trigger rate on clean prompts"),
                 ("clean_accuracy", "accuracy"), ("triggered_accuracy", "accuracy under trigger"),
                 ("perplexity", "perplexity on reference answers"))
_EVAL_SLICES = {"eval": "the emitted model", "eval-before": "before sanitizing", "eval-after": "after sanitizing"}
_MODEL_REF = "model"


class CycloneDxFormat(ReportFormat):
    """The report as a CycloneDX 1.6 JSON ML-BOM."""

    name = "cyclonedx"
    suffix = ".cdx.json"

    def render(self, report: Report) -> str:
        from cyclonedx.output.json import JsonV1Dot6

        document = json.loads(JsonV1Dot6(_bom(report)).output_as_string())
        component = document["metadata"]["component"]
        component["modelCard"] = _model_card(report)
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _bom(report: Report) -> Any:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.tool import ToolRepository

    files = report.source.files if report.source else ()
    file_components = [Component(
        type=ComponentType.FILE, name=f.path, bom_ref=f"file:{f.path}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=f.sha256)],
        properties=[Property(name="crowguard:format", value=f.format), Property(name="crowguard:size",
                                                                                 value=str(f.size))])
        for f in files]
    tools = ToolRepository(components=[Component(type=ComponentType.APPLICATION, name=report.tool,
                                                 version=report.tool_version)])
    metadata = BomMetaData(component=_model_component(report, file_components), tools=tools,
                           timestamp=report.created_at, properties=_verdict_properties(report))
    bom = Bom(metadata=metadata, serial_number=_serial(report),
              vulnerabilities=[_vulnerability(stage, f, n, report)
                                for n, (stage, f) in enumerate(report.staged_findings)])
    return bom


def _model_component(report: Report, files: list[Any]) -> Any:
    from cyclonedx.model import Property
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    source = report.source
    name = source.reference if source else "unknown model"
    properties = [Property(name="crowguard:source:kind", value=source.kind if source else "unknown"),
                  Property(name="crowguard:source:reference", value=name)]
    purl = None
    if source is not None and source.revision:
        properties.append(Property(name="crowguard:source:revision", value=source.revision))
    if source is not None and source.kind == "hub":
        purl = PackageURL(type="huggingface", name=name, version=(source.revision or "").lower() or None)
        endpoint = report.settings.get("endpoint")
        if isinstance(endpoint, str) and endpoint:
            properties.append(Property(name="crowguard:source:endpoint", value=endpoint))
    if report.output:
        properties.append(Property(name="crowguard:output", value=report.output))
    return Component(type=ComponentType.MACHINE_LEARNING_MODEL, name=name, bom_ref=_MODEL_REF,
                     version=source.revision if source and source.revision else None, purl=purl,
                     components=files, properties=properties)


def _verdict_properties(report: Report) -> list[Any]:
    from cyclonedx.model import Property

    props = [Property(name="crowguard:command", value=report.command),
             Property(name="crowguard:report-schema", value=report.schema_version)]
    verdict = report.verdict
    if verdict is not None:
        props += [Property(name="crowguard:verdict:passed", value=str(verdict.passed).lower()),
                  Property(name="crowguard:verdict:exit-code", value=str(verdict.exit_code)),
                  Property(name="crowguard:verdict:policy", value=verdict.policy),
                  Property(name="crowguard:verdict:fail-on", value=verdict.fail_on.value)]
        props += [Property(name="crowguard:verdict:reason", value=r) for r in verdict.reasons]
    return props


def _vulnerability(stage: str, finding: Finding, index: int, report: Report) -> Any:
    from cyclonedx.model import Property
    from cyclonedx.model.vulnerability import (
        BomTarget,
        Vulnerability,
        VulnerabilityRating,
        VulnerabilitySeverity,
        VulnerabilitySource,
    )

    known = {f"file:{f.path}" for f in (report.source.files if report.source else ())}
    target = f"file:{finding.file}" if finding.file and f"file:{finding.file}" in known else _MODEL_REF
    properties = [Property(name="crowguard:stage", value=stage),
                  Property(name="crowguard:fingerprint", value=fingerprint(finding, stage))]
    if finding.file:
        properties.append(Property(name="crowguard:file", value=finding.file))
    if finding.location:
        properties.append(Property(name="crowguard:location", value=finding.location))
    return Vulnerability(
        bom_ref=f"finding-{index}", id=finding.rule_id, source=VulnerabilitySource(name=report.tool),
        ratings=[VulnerabilityRating(source=VulnerabilitySource(name=report.tool),
                                     severity=VulnerabilitySeverity(finding.severity.value))],
        description=finding.title, detail=finding.evidence, recommendation=finding.remediation,
        affects=[BomTarget(ref=target)], properties=properties)


def _model_card(report: Report) -> dict[str, Any]:
    """The CycloneDX 1.6 ``modelCard`` fields the report knows: task, formats and measured metrics."""
    card: dict[str, Any] = {"modelParameters": {"task": "text-generation", "inputs": [{"format": "text"}],
                                                "outputs": [{"format": "text"}]}}
    metrics = []
    for stage in report.stages:
        if stage.name not in _EVAL_SLICES:
            continue
        for key, label in _EVAL_METRICS:
            value = stage.metrics.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.append({"type": label, "value": f"{value:.4g}", "slice": _EVAL_SLICES[stage.name]})
    if metrics:
        card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    return card


def _serial(report: Report) -> uuid.UUID:
    source = report.source
    key = "\x1f".join((report.command, report.created_at.isoformat(), source.reference if source else "",
                       (source.revision or "") if source else ""))
    return uuid.uuid5(uuid.NAMESPACE_URL, "crowguard-report:" + key)
