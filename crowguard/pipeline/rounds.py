"""Sanitize, then re-scan; with ``method='guided'``, in rounds until the re-scan is clean.

One round: train (``sanitize_model``) into a folder, scan that folder afresh and re-measure the
input's candidates on it. CROW and finetune run one round. Guided runs up to the policy's
``sanitize.max_rounds``: while the re-scan or the re-check still flags the model, the candidates that
still steer at least half the threshold's share of the probes (a trigger found in part, the bar of the
first guides), and any new ones the re-scan found, join the guides and the next round trains the
previous round's output on the same clean set. A model still flagged with no candidate at that bar
(e.g. by the target inversion alone) stops the rounds: another round would only train on the same
guides again; unless the round trained against a trigger stand-in fitted toward the scan's taught
``reply`` (``crowguard.sanitize.stand_in``), which the next round fits afresh on its own model. A
re-scan left with only a residual taught reply (``crowguard.pipeline.residual``) stops them as no
longer flagged. Every round's guides, training summary and re-scan go into the
sanitize stage's ``rounds``; only the last round's model, re-scan and re-check speak for the output
(``stopped`` says why the rounds ended).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crowguard.policy import Policy
from crowguard.progress import ProgressSink
from crowguard.sanitize import SanitizeConfig, SanitizeOutcome, sanitize_model
from crowguard.sanitize.guided import Guide, merge_guides
from crowguard.scan.behaviour import BehaviourScanResult, TriggerCandidate

# a scan's candidates worth unlearning before any round: those that steer at least this share of the
# threshold (a backdoor's trigger found in part steers less than the whole, but far more than noise)
GUIDE_SHARE_OF_THRESHOLD = 0.5

STOP_CLEAN = "the re-scan and the re-check no longer flag the model"
STOP_RESIDUAL = ("the re-scan and the re-check no longer find the trigger; the taught reply survives as a residual "
                 "(CG-RESIDUAL-TARGET)")
STOP_LIMIT = "the policy's sanitize.max_rounds was reached"
STOP_ONE = "one round: the method is not guided"
STOP_UNSCANNED = "no behavioural re-scan was asked for"
# measured on two SmolLM2 plants (bench/RESULTS.md#real-removal): flagged only by the target inversion,
# rounds 2 and 3 retrained on the same guides and cost 30% perplexity without changing the verdict
STOP_NOTHING = ("the re-scan still flags the model, but no candidate steers even half the threshold's share of "
                "its probes: another round would have nothing to unlearn")


def found_in_part(policy: Policy) -> float:
    """The share of the probes at which a candidate counts as a trigger found in part: half the threshold."""
    return policy.behaviour_scan.threshold * GUIDE_SHARE_OF_THRESHOLD


Rescan = Callable[[Path], tuple[BehaviourScanResult | None, BehaviourScanResult | None]]
Figures = Callable[[Path], dict[str, float | None]]  # a round's headline evaluation figures


@dataclass(frozen=True)
class Rounds:
    """The rounds' last training outcome, its re-scan and re-check, and each round's summary."""

    outcome: SanitizeOutcome
    rescan: BehaviourScanResult | None
    recheck: BehaviourScanResult | None
    summaries: tuple[dict[str, Any], ...]
    stopped: str


def first_guides(scan: BehaviourScanResult | None, policy: Policy, given: tuple[Guide, ...]) -> tuple[Guide, ...]:
    """The user's candidates, then the input scan's that steer at least half the threshold."""
    found = () if scan is None else scan.steering(found_in_part(policy))
    return merge_guides(given, _guides(found, "scan"))


def sanitize_in_rounds(model: Path, dest: Path | None, config: SanitizeConfig, policy: Policy, *,
                       guides: tuple[Guide, ...], rescan: Rescan | None, progress: ProgressSink,
                       evaluate: Figures | None = None, reply: str | None = None, **training: Any) -> Rounds:
    """Train into ``dest`` (the last round's model) and re-scan each round; ``training`` goes to ``sanitize_model``.

    ``reply`` is the taught reply the input's scan inverted: a round with no guide trains against a stand-in
    fitted toward it.

    ``training`` holds sanitize_model's keywords (clean data, adapter, runtime, checkpoints, resume);
    a second round starts from the first round's output, keeps the clean set and trains a fresh adapter.
    ``evaluate`` gives each round but the last its figures (the caller evaluates the last as the output).
    """
    limit = policy.sanitize.max_rounds if config.method == "guided" and dest is not None else 1
    if dest is None:  # a non-main process of a distributed run: it trains, the main process writes and scans
        outcome = sanitize_model(model, None, config, progress=progress, guides=guides, reply=reply, **training)
        return Rounds(outcome, None, None, (), STOP_UNSCANNED)
    work = Path(tempfile.mkdtemp(prefix=".crowguard-rounds-", dir=dest.absolute().parent)) if limit > 1 else None
    summaries: list[dict[str, Any]] = []
    source, clean = model, training.pop("clean_data", None)
    try:
        for number in range(1, limit + 1):
            if limit > 1:
                progress.phase(f"guided round {number} of at most {limit} ({len(guides)} candidate(s))")
            out = dest if work is None else work / f"round-{number}"
            out.mkdir(exist_ok=True)
            extra = training if number == 1 else {**training, "adapter": None, "resume": False,
                                                  "checkpoint_dir": None if work is None else work / f"state-{number}"}
            outcome = sanitize_model(source, out, config, clean_data=clean, progress=progress, guides=guides,
                                     reply=reply, **extra)
            clean = outcome.clean if outcome.clean is not None else clean
            scanned, rechecked = rescan(out) if rescan is not None else (None, None)
            if config.method == "guided":
                summaries.append(_summary(number, outcome, scanned, rechecked))
            flagged = any(s is not None and (s.flagged or s.failed) for s in (scanned, rechecked))
            still = [c for s in (rechecked, scanned) if s is not None for c in s.steering(found_in_part(policy))]
            stopped = (STOP_UNSCANNED if rescan is None else STOP_ONE if config.method != "guided" else
                       (STOP_RESIDUAL if any(s is not None and s.residual for s in (scanned, rechecked)) else
                        STOP_CLEAN) if not flagged else
                       STOP_LIMIT if number == limit else
                       STOP_NOTHING if not still and outcome.stand_in is None else "")
            if not stopped and evaluate is not None and summaries:
                summaries[-1]["eval"] = evaluate(out)
            if stopped:
                if out != dest:
                    for item in out.iterdir():
                        shutil.move(str(item), dest / item.name)
                return Rounds(outcome, scanned, rechecked, tuple(summaries), stopped)
            guides = merge_guides(guides, _guides(still, f"re-scan round {number}"))
            source = out
        raise AssertionError("unreachable: the last round always stops")
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def _guides(candidates: tuple[TriggerCandidate, ...] | list[TriggerCandidate], source: str) -> tuple[Guide, ...]:
    return tuple(Guide(c.text, c.mode, source) for c in candidates if c.text.strip())


def _summary(number: int, outcome: SanitizeOutcome, scanned: BehaviourScanResult | None,
             rechecked: BehaviourScanResult | None) -> dict[str, Any]:
    curve = outcome.train.curve
    return {
        "round": number, "guides": [{"text": g.text, "position": g.mode, "source": g.source} for g in outcome.guides],
        "examples": outcome.examples, "steps": outcome.train.steps,
        **({"stand_in": outcome.stand_in.as_dict()} if outcome.stand_in is not None else {}),
        "last_loss": curve[-1] if curve else None,
        "rescan": _scan_summary(scanned), "recheck": _scan_summary(rechecked),
    }


def _scan_summary(scan: BehaviourScanResult | None) -> dict[str, Any] | None:
    if scan is None:
        return None
    return {"flagged": scan.flagged, "residual": scan.residual, "status": scan.stage.status, "score": scan.score,
            "steering": [{"text": c.text, "target_share": c.target_share} for c in scan.candidates[:3]]}
