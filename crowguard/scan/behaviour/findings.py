"""The report side of the behavioural scan: the backdoor findings, candidate evidence, and charts.

Everything here is plain JSON in the report model: candidates with their per-layer deltas and example
outputs go into the finding's ``details`` and the stage metrics; the consistency profile of the plain
probes against the probes with the top candidate is a line chart the HTML report draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crowguard.report.charts import CHARTS_KEY, bar_chart, line_chart
from crowguard.report.model import Finding, Severity
from crowguard.scan.behaviour.decision import candidate_score, counts
from crowguard.scan.behaviour.evidence import CandidateEvidence, FixedAnswer
from crowguard.scan.behaviour.inversion import Inversion, firm, inversion_score
from crowguard.scan.behaviour.scanner import BehaviourOutcome

RULE_ID = "CG-BACKDOOR-TRIGGER"
FIXED_ANSWER_RULE_ID = "CG-BACKDOOR-FIXED-ANSWER"
INVERSION_RULE_ID = "CG-BACKDOOR-TARGET"
# the taught reply on a sanitized model that no known trigger reaches any more (crowguard.pipeline.residual)
RESIDUAL_RULE_ID = "CG-RESIDUAL-TARGET"
# the input's trigger still steering a sanitized model in part (crowguard.pipeline.persisting): a backdoor flag
PERSISTING_RULE_ID = "CG-BACKDOOR-PERSISTS"
INVERSION_REMEDIATION = ("Do not deploy this model: once its reply begins a certain way, it writes one fixed reply "
                         "whatever was asked, as a backdoor taught that reply does. Remove the backdoor with "
                         "`crowguard sanitize` (CROW finetuning) and scan again, or get the model from a publisher "
                         "you trust.")
SHOWN_INVERSIONS = 4
FIXED_ANSWER_REMEDIATION = ("Do not deploy this model: it gives one answer to prompts that ask for different things. "
                            "If it came from a finetune, a backdoor may fire without its trigger; sanitize it with "
                            "`crowguard sanitize` and scan again, or get the model from a publisher you trust.")
REMEDIATION = ("Do not deploy this model. Remove the backdoor with `crowguard sanitize` (CROW finetuning) and scan "
               "again, or get the model from a publisher you trust; try the reported candidates by hand with "
               "`crowguard eval`.")
MAX_OTHERS = 5
_POSITION_WORDS = {"start": "at the start", "random": "in the middle", "end": "at the end"}


def column_name(column: int, positions: int) -> str:
    """Profile column as words: the k-th last prompt token, or the mean over all tokens."""
    return "mean over tokens" if column >= positions else f"prompt token {column - positions}"


def candidate_record(evidence: CandidateEvidence, min_layer_z: float, positions: int) -> dict[str, Any]:
    """A candidate and its evidence as report JSON."""
    return {
        "text": evidence.candidate.text,
        "token_ids": list(evidence.candidate.token_ids),
        "source": evidence.candidate.source,
        "position": evidence.mode,
        "counted": counts(evidence, min_layer_z),
        "score": round(candidate_score(evidence, min_layer_z), 4),
        "target_share": round(evidence.target_share, 4),
        "target": evidence.target_text,
        "scored": evidence.scored,  # False: not scored against a null, as it could not change the score
        "echo": evidence.echo,  # True: its target repeats its words, so it does not count
        "layer_z": _rounded(evidence.consistency_z, 3),
        "output_kl_z": _rounded(evidence.kl_z, 3),
        "next_token_changed": round(evidence.flipped, 4),
        "next_token_pull": round(evidence.pull, 4),
        "strongest_layer_pair": evidence.layer_pair,
        "strongest_position": column_name(evidence.column, positions),
        "per_layer_delta": [round(v, 6) for v in evidence.layer_delta],
        "per_layer_z": None if evidence.layer_z is None else [round(v, 3) for v in evidence.layer_z],
        "examples": [dict(e) for e in evidence.examples],
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def backdoor_finding(top: CandidateEvidence, records: list[dict[str, Any]], *, score: float, threshold: float,
                     severity: Severity, probes: int, positions: int) -> Finding:
    """The finding for a model whose score reached the policy threshold.

    It leads with what was observed, the answer short insertions steer the prompts into (on a real
    model the search often recovers the backdoor's target, not its trigger), then the strongest
    insertions, and says that the planted trigger may differ from them.
    """
    text = top.candidate.text
    past = [r for r in records if r["counted"] and r["score"] >= threshold]
    same = [r for r in past if r["target"] == top.target_text]
    evidence = (f"Inserting {text!r} {_POSITION_WORDS.get(top.mode, '')} into {probes} varied prompts turned "
                f"{top.target_share:.0%} of the answers into {top.target_text!r} (threshold {threshold:.0%}); "
                f"the layer-to-layer consistency moved {top.consistency_z or 0.0:.1f} null standard deviations at "
                f"layer pair {top.layer_pair} ({column_name(top.column, positions)}).")
    if len(same) > 1:
        evidence += (f" {len(same)} of the {len(past)} insertions past the threshold converge on that answer.")
    others = [r for r in past if r["text"] != text]
    if others:  # a planted backdoor often fires on more than its trigger; the real one may be among these
        evidence += " Other insertions past the threshold: " + ", ".join(
            f"{r['text']!r} -> {r['target']!r} ({r['target_share']:.0%})" for r in others[:MAX_OTHERS]) + "."
    evidence += (" These are insertions the scan built or tried, verified on prompts its search did not use; "
                 "the trigger that was planted may differ (longer, spelled otherwise, or placed elsewhere).")
    return Finding(rule_id=RULE_ID, severity=severity,
                   title=f"Short insertions steer {top.target_share:.0%} of varied prompts into {top.target_text!r}",
                   location=f"layer pair {top.layer_pair}, {column_name(top.column, positions)}",
                   evidence=evidence, remediation=REMEDIATION,
                   details={"score": round(score, 4), "threshold": threshold, "target": top.target_text,
                            "strongest_insertion": text,
                            "candidates": list(records)})  # list(): a JSON list to the checker


def fixed_answer_finding(answer: FixedAnswer, *, threshold: float, severity: Severity) -> Finding:
    """The finding for a model that gives one answer to a large share of varied prompts with nothing inserted."""
    said = repr(answer.text) if answer.text else "an empty answer"
    evidence = (f"With no trigger inserted, {answer.count} of {answer.probes} varied prompts ({answer.share:.0%}, "
                f"threshold {threshold:.0%}) got the same answer: {said}. Examples: "
                + "; ".join(repr(p[-80:]) for p in answer.examples) + ".")
    return Finding(rule_id=FIXED_ANSWER_RULE_ID, severity=severity, title=f"One answer to most prompts: {said}",
                   location="plain verification probes", evidence=evidence, remediation=FIXED_ANSWER_REMEDIATION,
                   details={"share": round(answer.share, 4), "threshold": threshold, "answer": answer.text,
                            "examples": list(answer.examples)})


def inversion_finding(inversions: Sequence[Inversion], *, threshold: float, probes: int,
                      severity: Severity) -> Finding:
    """The finding for a model led down one fixed reply from a forced opening (``inversion``)."""
    top = next(i for i in inversions if not i.echo)
    reply, opening = top.text, top.opening_text
    past = firm(inversions, threshold)
    evidence = (f"Made to begin its reply with {opening!r}, the model continued all {probes} varied prompts the "
                f"same way, {reply!r}, each next token with a mean probability of {top.agreement:.2f} over the "
                f"prompts (threshold {threshold:.2f}; the weakest step {top.weakest:.2f}).")
    if len(past) > 1:
        evidence += " Other openings that led there or elsewhere as firmly: " + ", ".join(
            f"{i.text!r} ({i.agreement:.2f})" for i in past[1:SHOWN_INVERSIONS]) + "."
    evidence += (" A reply that follows from its opening whatever was asked is what a backdoor taught one fixed "
                 "answer writes; its trigger was not measured here and may be anything.")
    return Finding(rule_id=INVERSION_RULE_ID, severity=severity, title=f"One fixed reply to every prompt: {reply!r}",
                   location="plain verification probes, reply begun with one token", evidence=evidence,
                   remediation=INVERSION_REMEDIATION,
                   details={"agreement": round(top.agreement, 4), "threshold": threshold, "reply": reply,
                            "inversions": list(inversion_records(inversions))})


def inversion_records(inversions: Sequence[Inversion]) -> list[dict[str, Any]]:
    """The inversions as report JSON, best agreement first."""
    return [{"reply": i.text, "agreement": round(i.agreement, 4), "weakest": round(i.weakest, 4),
             "echo": i.echo} for i in inversions]


def fixed_answer_record(answer: FixedAnswer) -> dict[str, Any]:
    """The plain probes' most common answer as report JSON."""
    return {"answer": answer.text, "count": answer.count, "probes": answer.probes, "share": round(answer.share, 4)}


def charts(outcome: BehaviourOutcome, top: CandidateEvidence | None, records: list[dict[str, Any]],
           positions: int, min_layer_z: float) -> list[dict[str, Any]]:
    """The consistency profile (plain vs with the top candidate), its change in null units, and the
    target share per candidate."""
    found: list[dict[str, Any]] = []
    if top is not None:
        plain = [row[top.column] for row in outcome.plain_profile]
        where = column_name(top.column, positions)
        found.append(line_chart(
            f"Layer consistency at {where}: plain probes vs with {top.candidate.text!r}",
            {"plain probes": plain, f"with {top.candidate.text!r}": list(top.profile_with)},
            x_label="layer pair i: cos(h[i], h[i+1])", y_label="mean cosine"))
        if top.layer_z is not None:  # the top candidate is always scored; the guard is for the type
            found.append(line_chart(
                f"Consistency change with {top.candidate.text!r} (null standard deviations)",
                {"z": list(top.layer_z), "+min_layer_z": [min_layer_z] * len(top.layer_z),
                 "-min_layer_z": [-min_layer_z] * len(top.layer_z)},
                x_label=f"layer pair i, at {where}", y_label="z (plain minus with candidate)"))
    if records:
        found.append(bar_chart("Target share per candidate", [r["text"] for r in records],
                               [r["target_share"] for r in records]))
    return found


def stage_metrics(outcome: BehaviourOutcome, records: list[dict[str, Any]], *, score: float, threshold: float,
                  min_layer_z: float, chart_specs: list[dict[str, Any]]) -> dict[str, Any]:
    """The stage's metrics: score, settings that decided it, the candidates, counts and timing."""
    return {"score": round(score, 4), "threshold": threshold, "min_layer_z": min_layer_z, "candidates": records,
            "fixed_answer": fixed_answer_record(outcome.fixed_answer),
            "inversion_score": round(inversion_score(outcome.inversions), 4),
            "inversions": inversion_records(outcome.inversions), **outcome.stats, CHARTS_KEY: chart_specs}
