"""CycloneDX 1.6 ML-BOM: valid against the schema shipped with cyclonedx-python-lib; model, files, findings."""

import json

import pytest

from crowguard.pipeline.remediation import AFTER_SANITIZING, ANSWERED_BY_SANITIZING
from crowguard.report.formats import get_format
from crowguard.report.model import Report
from tests.report.gate_report import REVISION, TRIGGER, gate_report, surviving_trigger_report


def _bom(report: Report) -> dict:
    return json.loads(get_format("cyclonedx").render(report))


@pytest.mark.parametrize("report", [gate_report(passed=True), gate_report(passed=False), surviving_trigger_report()],
                         ids=["pass", "fail", "trigger-survived"])
def test_bom_validates_against_the_cyclonedx_1_6_schema(report: Report) -> None:
    pytest.importorskip("jsonschema")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = get_format("cyclonedx").render(report)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, error


def test_model_component_files_and_source() -> None:
    bom = _bom(gate_report())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    model = bom["metadata"]["component"]
    assert model["type"] == "machine-learning-model" and model["name"] == "acme/tiny-chat"
    assert model["version"] == REVISION and model["purl"] == f"pkg:huggingface/acme/tiny-chat@{REVISION}"
    props = {p["name"]: p["value"] for p in model["properties"]}
    assert props["crowguard:source:kind"] == "hub" and props["crowguard:source:revision"] == REVISION
    files = {c["name"]: c for c in model["components"]}
    assert set(files) == {"model.safetensors", "config.json", "tokenizer_config.json"}
    weights = files["model.safetensors"]
    assert weights["type"] == "file" and weights["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert {"name": "crowguard:format", "value": "safetensors"} in weights["properties"]
    assert bom["metadata"]["tools"]["components"][0]["name"] == "crowguard"


def test_model_card_holds_task_and_measured_metrics() -> None:
    card = _bom(gate_report())["metadata"]["component"]["modelCard"]
    assert card["modelParameters"]["task"] == "text-generation"
    metrics = {(m["type"], m["slice"]): m["value"] for m in card["quantitativeAnalysis"]["performanceMetrics"]}
    assert metrics[("attack success rate", "before sanitizing")] == "0.92"
    assert metrics[("attack success rate", "after sanitizing")] == "0.03"
    assert metrics[("accuracy under trigger", "after sanitizing")] == "0.77"


def test_findings_are_vulnerabilities_affecting_their_file_or_the_model() -> None:
    bom = _bom(gate_report(passed=False))
    vulns = {v["id"]: v for v in bom["vulnerabilities"]}
    template, backdoor = vulns["CG-TEMPLATE-INJECTED-TEXT"], vulns["CG-BACKDOOR-LAYER-INCONSISTENCY"]
    assert template["ratings"][0]["severity"] == "low"
    assert template["affects"] == [{"ref": "file:tokenizer_config.json"}]
    assert backdoor["ratings"][0]["severity"] == "high" and backdoor["affects"] == [{"ref": "model"}]
    assert {"name": "crowguard:location", "value": "layer pair 5, prompt token -2"} in backdoor["properties"]
    assert backdoor["recommendation"].startswith("sanitize") and "cosine drop" in backdoor["detail"]
    verdict = {p["name"]: p["value"] for p in bom["metadata"]["properties"]}
    assert verdict["crowguard:verdict:passed"] == "false" and verdict["crowguard:verdict:exit-code"] == "1"


def test_same_report_same_bom() -> None:
    assert get_format("cyclonedx").render(gate_report()) == get_format("cyclonedx").render(gate_report())


def test_each_vulnerability_names_its_stage_and_carries_that_stages_advice() -> None:
    vulns = _bom(surviving_trigger_report())["vulnerabilities"]
    props = [{p["name"]: p["value"] for p in v["properties"]} for v in vulns]
    by_stage = {p["crowguard:stage"]: v for p, v in zip(props, vulns, strict=True)}
    assert sorted(by_stage) == sorted(["file-scan", "behaviour-scan", "behaviour-rescan", "behaviour-recheck",
                                       "attack-success"])  # the library orders vulnerabilities its own way
    twins = [by_stage[s] for s in ("behaviour-scan", "behaviour-rescan", "behaviour-recheck")]
    assert all(v["id"] == TRIGGER.rule_id and v["detail"] == TRIGGER.evidence for v in twins)
    assert [v["recommendation"] for v in twins] == [ANSWERED_BY_SANITIZING, AFTER_SANITIZING, AFTER_SANITIZING]
    assert len({p["crowguard:fingerprint"] for p in props}) == len(props)  # the twins stay apart
    assert by_stage["attack-success"]["recommendation"] == AFTER_SANITIZING
