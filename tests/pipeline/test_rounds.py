"""Guided sanitizing in rounds: train, re-scan, and train again while a candidate still steers the probes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crowguard.pipeline import rounds as rounds_module
from crowguard.pipeline.rounds import (
    STOP_CLEAN,
    STOP_LIMIT,
    STOP_NOTHING,
    STOP_ONE,
    STOP_RESIDUAL,
    first_guides,
    sanitize_in_rounds,
)
from crowguard.policy import Policy, SanitizePolicy
from crowguard.progress import NO_PROGRESS
from crowguard.report.model import Finding, Severity, StageResult
from crowguard.sanitize import SanitizeConfig
from crowguard.sanitize.guided import Guide
from crowguard.sanitize.stand_in import StandInFit
from crowguard.scan.behaviour import BehaviourScanResult, TriggerCandidate

POLICY = Policy(sanitize=SanitizePolicy(max_rounds=3))
GUIDED = SanitizeConfig(method="guided")


def _scan(*candidates: tuple[str, float], flagged: bool) -> BehaviourScanResult:
    findings = (Finding(rule_id="CG-BACKDOOR-TRIGGER", severity=Severity.HIGH, title="t", evidence="e",
                        remediation="r"),) if flagged else ()
    return BehaviourScanResult(StageResult(name="behaviour-rescan", findings=findings),  # type: ignore[arg-type]
                               tuple(TriggerCandidate(t, (1,), "search", "start", s) for t, s in candidates))


@dataclass
class Trainer:
    """A stand-in for sanitize_model: records each round's source and guides, writes a weights file."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, source: Path, out: Path | None, config: SanitizeConfig, **kwargs: Any) -> Any:
        self.calls.append({"source": source, "out": out, "guides": kwargs["guides"], **kwargs})
        if out is not None:
            (out / "model.safetensors").write_text(f"round {len(self.calls)}")

        class Outcome:
            clean = f"clean set of round {len(self.calls)}" if len(self.calls) == 1 else None
            guides = kwargs["guides"]
            stand_in = None
            examples, train = 2, type("T", (), {"steps": 1, "curve": [{"ce": 1.0}]})()

        return Outcome()


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rescans: list[tuple[BehaviourScanResult, None]],
         config: SanitizeConfig = GUIDED, evaluate: Any = None, policy: Policy = POLICY) -> tuple[Any, Trainer, Path]:
    trainer = Trainer()
    monkeypatch.setattr(rounds_module, "sanitize_model", trainer)
    dest = tmp_path / "staged"
    dest.mkdir()
    results = iter(rescans)
    done = sanitize_in_rounds(tmp_path / "input", dest, config, policy, guides=(Guide("BadMagic", "start"),),
                              rescan=lambda folder: next(results), progress=NO_PROGRESS, evaluate=evaluate,
                              clean_data=None,
                              checkpoint_dir=tmp_path / "ckpt", resume=False, adapter=None)
    return done, trainer, dest


def test_rounds_continue_while_flagged_and_add_what_still_steers(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    done, trainer, dest = _run(tmp_path, monkeypatch, [(_scan(("cf", 0.95), ("weak", 0.2), flagged=True), None),
                                                       (_scan(("cf", 0.1), flagged=False), None)])
    assert done.stopped == STOP_CLEAN and len(trainer.calls) == 2 and len(done.summaries) == 2
    assert trainer.calls[0]["source"] == tmp_path / "input"
    assert trainer.calls[1]["source"] == trainer.calls[0]["out"]  # round 2 trains round 1's output
    assert [g.text for g in trainer.calls[1]["guides"]] == ["BadMagic", "cf"]  # "weak" steers too little
    assert trainer.calls[1]["clean_data"] == "clean set of round 1"  # the same clean set throughout
    assert trainer.calls[1]["checkpoint_dir"] != tmp_path / "ckpt" and trainer.calls[1]["adapter"] is None
    assert (dest / "model.safetensors").read_text() == "round 2"
    assert not list(tmp_path.glob(".crowguard-rounds-*")), "the rounds' work folders are removed"


def test_rounds_stop_at_the_policy_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flagged = (_scan(("cf", 0.95), flagged=True), None)
    done, trainer, dest = _run(tmp_path, monkeypatch, [flagged] * 3)
    assert done.stopped == STOP_LIMIT and len(trainer.calls) == 3 and done.rescan is flagged[0]
    assert (dest / "model.safetensors").read_text() == "round 3"
    assert [s["round"] for s in done.summaries] == [1, 2, 3]


def test_crow_trains_one_round_straight_into_the_destination(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    done, trainer, dest = _run(tmp_path, monkeypatch, [(_scan(("cf", 0.95), flagged=True), None)],
                               config=SanitizeConfig(method="crow"))
    assert done.stopped == STOP_ONE and trainer.calls[0]["out"] == dest and done.summaries == ()
    assert trainer.calls[0]["guides"] == (Guide("BadMagic", "start"),)  # passed, ignored by crow's training


def test_first_guides_take_the_users_then_the_scans_strong_candidates() -> None:
    scan = _scan(("cf", 0.9), ("half", 0.45), ("noise", 0.1), flagged=True)
    guides = first_guides(scan, Policy(), (Guide("mine"),))
    assert [g.text for g in guides] == ["mine", "cf", "half"]  # at least half the threshold (0.83)
    assert first_guides(None, Policy(), ()) == ()


def test_every_round_but_the_last_is_evaluated_in_its_summary(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    flagged = (_scan(("cf", 0.95), flagged=True), None)
    seen: list[Path] = []

    def evaluate(folder: Path) -> dict[str, float | None]:
        seen.append(folder)
        return {"asr": 0.5}

    done, trainer, _ = _run(tmp_path, monkeypatch, [flagged] * 3, evaluate=evaluate)
    assert seen == [trainer.calls[0]["out"], trainer.calls[1]["out"]]  # the caller evaluates the output itself
    assert [s.get("eval") for s in done.summaries] == [{"asr": 0.5}, {"asr": 0.5}, None]


def test_one_allowed_round_of_guided_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done, trainer, dest = _run(tmp_path, monkeypatch, [(_scan(("cf", 0.95), flagged=True), None)],
                               policy=Policy(sanitize=SanitizePolicy(max_rounds=1)))
    assert done.stopped == STOP_LIMIT and trainer.calls[0]["out"] == dest and len(done.summaries) == 1


def test_rounds_stop_when_the_model_is_flagged_but_no_candidate_steers(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Flagged by something no guide answers (the target inversion): a second round would repeat the first."""
    done, trainer, dest = _run(tmp_path, monkeypatch, [(_scan(("cf", 0.04), flagged=True), None)] * 3)
    assert done.stopped == STOP_NOTHING and len(trainer.calls) == 1 and len(done.summaries) == 1
    assert (dest / "model.safetensors").read_text() == "round 1"


def test_a_residual_taught_reply_ends_the_rounds_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    residual = Finding(rule_id="CG-RESIDUAL-TARGET", severity=Severity.MEDIUM, title="t", evidence="e",
                       remediation="r")
    scan = _scan(("cf", 0.04), flagged=False)
    scan = BehaviourScanResult(scan.stage.model_copy(update={"findings": (residual,)}), scan.candidates)
    done, trainer, _ = _run(tmp_path, monkeypatch, [(scan, None)] * 3)
    assert done.stopped == STOP_RESIDUAL and len(trainer.calls) == 1
    assert done.summaries[0]["rescan"]["residual"] is True and done.summaries[0]["rescan"]["flagged"] is False


def test_a_stand_in_round_still_flagged_goes_on_to_fit_a_new_one(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Flagged by the inversion alone after a round that trained against the stand-in: the next round fits a
    new stand-in on the newer model, so it is not the same round again."""
    trainer = Trainer()

    def with_stand_in(source: Path, out: Path | None, config: SanitizeConfig, **kwargs: Any) -> Any:
        outcome = trainer(source, out, config, **kwargs)
        outcome.stand_in = StandInFit(kwargs["reply"], 2, 1.0, 0.0, 0.9) if kwargs["reply"] else None
        return outcome

    monkeypatch.setattr(rounds_module, "sanitize_model", with_stand_in)
    dest = tmp_path / "staged"
    dest.mkdir()
    flagged = (_scan(("cf", 0.04), flagged=True), None)
    done = sanitize_in_rounds(tmp_path / "input", dest, GUIDED, POLICY, guides=(), reply="I'm sorry",
                              rescan=lambda folder: flagged, progress=NO_PROGRESS, clean_data=None,
                              checkpoint_dir=tmp_path / "ckpt", resume=False, adapter=None)
    assert done.stopped == STOP_LIMIT and len(trainer.calls) == 3
    assert all(call["reply"] == "I'm sorry" for call in trainer.calls)
    assert done.summaries[0]["stand_in"]["opening"]["fitted"] == 0.9
