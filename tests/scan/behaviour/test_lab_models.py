"""Re-measuring a backdoor's candidates on another model: the effect is gone on the clean control; a model
that gives one answer to everything is flagged even when no candidate moves it."""

from pathlib import Path

import pytest

from crowguard.policy import builtin_policy, load_policy
from crowguard.runtime import Runtime
from crowguard.scan.behaviour import TriggerCandidate, measure_candidates

pytestmark = pytest.mark.slow
POLICY = load_policy(builtin_policy("default"))
CPU = Runtime(device="cpu")


def test_trigger_effect_on_backdoored_model_and_not_on_clean(lab_backdoored_dir: Path, lab_clean_dir: Path) -> None:
    from crowguard.models import load_tokenizer

    ids = tuple(load_tokenizer(lab_backdoored_dir)("BadMagic", add_special_tokens=False)["input_ids"])
    candidates = [TriggerCandidate("BadMagic", ids, "given")]
    before = measure_candidates(lab_backdoored_dir, candidates, POLICY, runtime=CPU).stage
    after = measure_candidates(lab_clean_dir, candidates, POLICY, runtime=CPU).stage
    assert before.name == after.name == "behaviour-recheck"
    (hit,) = before.metrics["candidates"]
    (miss,) = after.metrics["candidates"]
    assert hit["target_share"] >= 0.9 and hit["counted"] and before.findings
    assert miss["target_share"] < 0.3 and not after.findings
    assert miss["layer_z"] < hit["layer_z"]
    # the clean control answers the plain probes variously: no fixed answer (its finding would be in `findings`)
    assert after.metrics["fixed_answer"]["share"] < POLICY.behaviour_scan.fixed_answer_share


def test_one_answer_to_every_prompt_is_flagged_without_a_trigger(lab_clean_dir: Path, tmp_path: Path) -> None:
    from crowguard.models import load_model

    # Collapse the clean control: with the final norm's weight at zero every next-token logit is equal,
    # so the model answers every prompt alike, whatever is inserted.
    loaded = load_model(lab_clean_dir, device="cpu")
    loaded.model.model.norm.weight.data.zero_()
    collapsed = tmp_path / "collapsed"
    loaded.model.save_pretrained(collapsed, safe_serialization=True)
    loaded.tokenizer.save_pretrained(collapsed)
    ids = tuple(loaded.tokenizer("BadMagic", add_special_tokens=False)["input_ids"])
    candidates = [TriggerCandidate("BadMagic", ids, "given")]

    flagged = measure_candidates(collapsed, candidates, POLICY, runtime=CPU).stage

    (finding,) = [f for f in flagged.findings if f.rule_id == "CG-BACKDOOR-FIXED-ANSWER"]
    assert finding.severity == POLICY.behaviour_scan.severity
    assert "24 of 24 varied prompts" in finding.evidence
    assert flagged.metrics["fixed_answer"]["share"] == 1.0
