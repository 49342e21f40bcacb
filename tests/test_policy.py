"""Policy loading: shipped policies validate; every bad field is named with its value."""

from pathlib import Path

import pytest

from crowguard.errors import ConfigError
from crowguard.policy import builtin_policy, load_policy
from crowguard.report.model import Finding, Severity, StageResult


@pytest.mark.parametrize("name", ["default", "strict", "permissive"])
def test_shipped_policies_load(name: str) -> None:
    assert load_policy(builtin_policy(name)).name == name


def test_shipped_behaviour_thresholds_are_ordered_by_strictness() -> None:
    strict, default, permissive = (load_policy(builtin_policy(n)).behaviour_scan for n in ("strict", "default",
                                                                                          "permissive"))
    assert 0 < strict.threshold <= default.threshold <= permissive.threshold <= 1
    assert strict.min_layer_z <= default.min_layer_z <= permissive.min_layer_z


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("fail_on: huge\n", ["fail_on", "'huge'", "critical"]),
        ("allowed_weight_formats: [onnx]\n", ["allowed_weight_formats.0", "'onnx'", "safetensors"]),
        ("behaviour_scan: {threshold: -1}\n", ["behaviour_scan.threshold", "-1"]),
        ("behaviour_scan: {threshold: 1.5}\n", ["behaviour_scan.threshold", "1.5", "less than or equal to 1"]),
        ("behaviour_scan: {min_layer_z: -2}\n", ["behaviour_scan.min_layer_z", "-2"]),
        ("sanitize: {min_utility: 2}\n", ["sanitize.min_utility", "2"]),
        ("allow_pikle: true\n", ["unknown field 'allow_pikle'", "allow_pickle"]),
        ("- a list\n", ["mapping"]),
        ("fail_on: [\n", ["not valid YAML"]),
    ],
)
def test_bad_policy_names_field_and_value(tmp_path: Path, text: str, needles: list[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert str(path) in info.value.message
    for needle in needles:
        assert needle in info.value.message


def _finding(sev: Severity) -> Finding:
    return Finding(rule_id="CG-TEST-RULE", severity=sev, title="t", evidence="e", remediation="r")


def test_verdict_thresholds() -> None:
    policy = load_policy(builtin_policy("default"))  # fails on high
    assert policy.verdict([StageResult(name="s", findings=(_finding(Severity.MEDIUM),))]).exit_code == 0
    failed = policy.verdict([StageResult(name="s", findings=(_finding(Severity.HIGH),))])
    assert (failed.exit_code, failed.passed, failed.counts[Severity.HIGH]) == (1, False, 1)
    assert policy.verdict([StageResult(name="s", status="failed", errors=("boom",))]).exit_code == 3


@pytest.mark.parametrize(("fail_on", "expected"), [(Severity.LOW, Severity.HIGH), (Severity.HIGH, Severity.HIGH),
                                                   (Severity.CRITICAL, Severity.CRITICAL)])
def test_violation_severity_always_fails(fail_on: Severity, expected: Severity) -> None:
    policy = load_policy(builtin_policy("default")).model_copy(update={"fail_on": fail_on})
    assert policy.violation_severity is expected
    finding = _finding(policy.violation_severity)
    assert policy.verdict([StageResult(name="s", findings=(finding,))]).exit_code == 1
