"""Re-measuring a backdoor's candidates on another model: the effect is gone on the clean control."""

from pathlib import Path

import pytest

from crowguard.policy import builtin_policy, load_policy
from crowguard.scan.behaviour import BehaviourOptions, TriggerCandidate, measure_candidates

pytestmark = pytest.mark.slow
POLICY = load_policy(builtin_policy("default"))


def test_trigger_effect_on_backdoored_model_and_not_on_clean(lab_backdoored_dir: Path, lab_clean_dir: Path) -> None:
    from crowguard.models import load_tokenizer

    ids = tuple(load_tokenizer(lab_backdoored_dir)("BadMagic", add_special_tokens=False)["input_ids"])
    candidates = [TriggerCandidate("BadMagic", ids, "given")]
    options = BehaviourOptions(device="cpu")
    before = measure_candidates(lab_backdoored_dir, candidates, POLICY, options=options)
    after = measure_candidates(lab_clean_dir, candidates, POLICY, options=options)
    assert before.name == after.name == "behaviour-recheck"
    (hit,) = before.metrics["candidates"]
    (miss,) = after.metrics["candidates"]
    assert hit["target_share"] >= 0.9 and hit["counted"] and before.findings
    assert miss["target_share"] < 0.3 and not after.findings
    assert miss["layer_z"] < hit["layer_z"]
