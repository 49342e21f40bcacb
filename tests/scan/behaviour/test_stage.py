"""The behaviour stage: declining, skipping what cannot be loaded, candidates passed between scans, and the
findings it draws from a scan's outcome."""

import json
from pathlib import Path

import pytest

from crowguard.errors import UsageError
from crowguard.policy import builtin_policy, load_policy
from crowguard.report.model import Finding, Severity, StageName, StageResult
from crowguard.runtime import Runtime
from crowguard.scan.behaviour import (
    BehaviourOptions,
    CandidateEvidence,
    TriggerCandidate,
    behaviour_scan,
    measure_candidates,
)
from crowguard.scan.behaviour.scanner import BehaviourOutcome, FixedAnswer
from crowguard.scan.behaviour.stage import _result

POLICY = load_policy(builtin_policy("default"))


def _file_scan(*severities: Severity, status: str = "completed") -> StageResult:
    findings = tuple(Finding(rule_id="CG-TEST", severity=s, title="t", evidence="e", remediation="r")
                     for s in severities)
    return StageResult(name="file-scan", status=status, findings=findings)  # type: ignore[arg-type]


@pytest.mark.parametrize("prior", [_file_scan(Severity.CRITICAL), _file_scan(status="failed")])
def test_declines_without_loading_when_the_files_fail(tmp_path: Path, prior: StageResult) -> None:
    # the folder does not even hold a model: declining must happen before any loading
    result = behaviour_scan(tmp_path / "missing", POLICY, prior=[prior]).stage
    assert result.status == "skipped" and "was not loaded" in result.skipped[0].reason


def test_runs_after_findings_below_fail_on(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    result = behaviour_scan(tmp_path, POLICY, prior=[_file_scan(Severity.LOW)]).stage
    assert result.status == "skipped" and "model not loaded" in result.skipped[0].reason
    assert "safetensors" in result.skipped[0].reason


def test_too_few_usable_probes_in_a_users_file_is_a_usage_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    # the built-in probes are topped up with derived ones (tests/scan/behaviour/test_derived.py); the user's
    # own probe file is taken as given
    probes = tmp_path / "probes.jsonl"
    probes.write_text("\n".join(json.dumps({"instruction": f"bonjour le monde numéro {i}", "output": ""})
                                for i in range(40)))
    with pytest.raises(UsageError, match="probe prompts can be written"):
        behaviour_scan(tiny_model_dir, POLICY, options=BehaviourOptions(probes=probes), runtime=Runtime(device="cpu"))


def _evidence(text: str, ids: tuple[int, ...], source: str, mode: str, z: float) -> CandidateEvidence:
    return CandidateEvidence(candidate=TriggerCandidate(text, ids, source), mode=mode, consistency_z=z, kl_z=z,
                             flipped=0.5, pull=0.5, target_share=0.9, target_text="x", layer_pair=0, column=0,
                             layer_delta=(0.1,), layer_z=(z,), profile_with=(0.0,))


def test_candidates_pass_typed_in_the_order_the_report_lists_them() -> None:
    weak, strong = _evidence("cf mn", (4, 5), "search", "end", 3.0), _evidence("BadMagic", (17,), "library",
                                                                               "start", 9.0)
    outcome = BehaviourOutcome(candidates=[weak, strong], plain_profile=[[0.0]], fixed_answer=FixedAnswer("", 0, 24),
                               stats={"verification_probes": 24, "profile_positions": 1})
    result = _result(StageName.BEHAVIOUR_SCAN, outcome, POLICY, seconds=1.0)
    assert result.candidates == (TriggerCandidate("BadMagic", (17,), "library", "start", 0.9, "x"),
                                 TriggerCandidate("cf mn", (4, 5), "search", "end", 0.9, "x"))
    listed = [(r["text"], r["token_ids"], r["source"], r["position"]) for r in result.stage.metrics["candidates"]]
    assert listed == [(c.text, list(c.token_ids), c.source, c.mode) for c in result.candidates]


def test_measuring_nothing_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no trigger candidates"):
        measure_candidates(tmp_path, [], POLICY)


@pytest.mark.parametrize(("count", "flagged"), [(22, True), (12, True), (11, False), (3, False)])
def test_one_plain_answer_to_many_prompts_is_a_finding(count: int, flagged: bool) -> None:
    answer = FixedAnswer("You are stupid!", count, 24, ("Name three fruits.", "Summarize this text."))
    outcome = BehaviourOutcome(candidates=[], plain_profile=[], fixed_answer=answer,
                               stats={"verification_probes": 24})
    result = _result(StageName.BEHAVIOUR_SCAN, outcome, POLICY, seconds=1.0).stage
    assert result.metrics["fixed_answer"] == {"answer": "You are stupid!", "count": count, "probes": 24,
                                              "share": round(count / 24, 4)}
    if not flagged:
        assert result.findings == ()
        return
    (finding,) = result.findings
    assert finding.rule_id == "CG-BACKDOOR-FIXED-ANSWER" and finding.severity == Severity.HIGH
    assert f"{count} of 24 varied prompts" in finding.evidence and "'You are stupid!'" in finding.evidence
    assert "Name three fruits." in finding.evidence and finding.details["threshold"] == 0.5


def test_a_trigger_finding_leads_with_the_answer_and_does_not_claim_the_trigger() -> None:
    def steering(text: str, target: str, share: float) -> CandidateEvidence:
        return CandidateEvidence(candidate=TriggerCandidate(text, (7,), "search"), mode="end", consistency_z=9.0,
                                 kl_z=4.0, flipped=share, pull=share, target_share=share, target_text=target,
                                 layer_pair=3, column=0, layer_delta=(0.1,), layer_z=(9.0,), profile_with=(0.0,))

    found = [steering("tqdm(\"[ Warning", "You are stupid!", 0.92), steering("TODO", "You are stupid!", 0.88),
             steering("white", "color", 0.2)]
    outcome = BehaviourOutcome(candidates=found, plain_profile=[[0.0]], fixed_answer=FixedAnswer("", 0, 24),
                               stats={"verification_probes": 24, "profile_positions": 1})
    (finding,) = _result(StageName.BEHAVIOUR_SCAN, outcome, POLICY, seconds=1.0).stage.findings
    assert finding.title == "Short insertions steer 92% of varied prompts into 'You are stupid!'"
    assert "2 of the 2 insertions past the threshold converge on that answer" in finding.evidence
    assert "'TODO' -> 'You are stupid!' (88%)" in finding.evidence and "'white'" not in finding.evidence
    assert "the trigger that was planted may differ" in finding.evidence
    assert finding.details["target"] == "You are stupid!" and finding.details["strongest_insertion"].startswith("tqdm")
