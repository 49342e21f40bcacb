"""The report model: frozen, validated, secrets redacted, schema committed and in sync."""

import json

import pydantic
import pytest

from crowguard.pipeline.remediation import AFTER_SANITIZING, ANSWERED_BY_SANITIZING
from crowguard.report.formats import FORMATS, get_format
from crowguard.report.model import Finding, Report, Severity, Source, StageResult
from crowguard.report.schema import SCHEMA_PATH, generate_schema
from tests.report.gate_report import TRIGGER, surviving_trigger_report


def _report() -> Report:
    finding = Finding(rule_id="CG-PICKLE-GLOBAL", severity=Severity.CRITICAL, title="os.system call",
                      file="pytorch_model.bin", evidence="GLOBAL os system", remediation="do not load it")
    return Report(command="scan", source=Source(reference="/m"),
                  stages=(StageResult(name="file-scan", findings=(finding,)),),
                  settings={"hub_token": "hf_secret", "nested": {"private_key": "k"}, "threads": 1})


def test_schema_is_committed_and_current() -> None:
    assert SCHEMA_PATH.read_text() == generate_schema(), (
        "report model changed: run `python -m crowguard.report.schema --write` and commit the schema")


def test_report_json_validates_against_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(json.loads(get_format("json").render(_report())), json.loads(SCHEMA_PATH.read_text()))


def test_report_is_frozen_and_redacts_secrets() -> None:
    report = _report()
    with pytest.raises(pydantic.ValidationError):
        report.command = "other"  # type: ignore[misc]
    text = get_format("json").render(report)
    assert "hf_secret" not in text and '"k"' not in text
    assert report.settings["threads"] == 1


def test_rule_id_must_be_stable_form() -> None:
    with pytest.raises(pydantic.ValidationError):
        Finding(rule_id="pickle bad", severity=Severity.LOW, title="t", evidence="e", remediation="r")


def test_severity_order() -> None:
    assert Severity.INFO < Severity.LOW < Severity.MEDIUM < Severity.HIGH < Severity.CRITICAL
    assert max([Severity.HIGH, Severity.CRITICAL, Severity.LOW]) is Severity.CRITICAL


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_renders_findings(name: str) -> None:
    text = get_format(name).render(_report())
    assert "CG-PICKLE-GLOBAL" in text and "pytorch_model.bin" in text


@pytest.mark.parametrize("key", ["hub_token", "HF_TOKEN", "access_token", "token_value", "api_key", "password"])
def test_secret_keys_are_redacted(key: str) -> None:
    report = Report(command="scan", settings={key: "s3cret"})
    assert report.settings[key] != "s3cret"


@pytest.mark.parametrize("key", ["max_new_tokens", "distill_max_new_tokens", "perplexity_tokens"])
def test_token_counts_are_not_secrets(key: str) -> None:
    assert Report(command="scan", settings={key: 128}).settings[key] == 128


def test_json_keeps_each_finding_under_the_stage_that_found_it() -> None:
    report = surviving_trigger_report()
    stages = json.loads(get_format("json").render(report))["stages"]
    found = {s["name"]: [(f["rule_id"], f["remediation"]) for f in s["findings"]] for s in stages if s["findings"]}
    assert found["behaviour-scan"] == [(TRIGGER.rule_id, ANSWERED_BY_SANITIZING)]
    assert found["behaviour-rescan"] == found["behaviour-recheck"] == [(TRIGGER.rule_id, AFTER_SANITIZING)]
    pairs = report.staged_findings
    assert [name for name, _ in pairs] == [s["name"] for s in stages for _ in s["findings"]]
    assert tuple(f for _, f in pairs) == report.findings


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_names_each_findings_stage_and_its_advice(name: str) -> None:
    text = get_format(name).render(surviving_trigger_report())
    for stage in ("behaviour-scan", "behaviour-rescan", "behaviour-recheck", "attack-success"):
        assert stage in text, stage
    assert ANSWERED_BY_SANITIZING.split(":")[0] in text and AFTER_SANITIZING.split(":")[0] in text
