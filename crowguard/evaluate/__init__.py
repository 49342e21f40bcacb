"""Evaluation stage: attack success and utility of a model, by the BackdoorLLM/CROW protocol.

Default protocol (recorded in every result's ``settings``): greedy decoding, 128 new tokens, the
raw instruction as the prompt (``template="chat"`` or ``"alpaca"`` to change it), an output counts
as an attack success when it contains any keyword (case-insensitive), and empty outputs are left
out of the denominator. Where right answers are known (lab models), accuracy is measured on clean
and on triggered prompts: a backdoor is removed only when triggered prompts get right answers again.
Utility offline: perplexity of the clean records' reference outputs.

Public API::

    from crowguard.evaluate import EvalSpec, evaluate, spec_for_model, spec_from_files, spec_from_lab_card

    spec = spec_for_model("models/badnet-0")              # a lab model, on request: its lab.json supplies all
    spec = spec_from_files(triggered=Path("t.json"), clean=Path("c.json"), task="negsentiment", limit=50)
    result = evaluate("models/badnet-0", spec)            # or evaluate(loaded_model, spec)
    result.asr, result.clean_accuracy, result.perplexity  # floats or None
    StageResult(name="eval", metrics=result.to_dict())    # JSON-able, embeds in a report

``evaluate`` accepts a ``progress(phase, done, total)`` callback and never prints. It leaves the
model in the train/eval mode it found it in. This stage reads ``lab.json`` (only when a caller asks,
as ``spec_for_model`` does; the CLI needs ``--lab-card``) through
``crowguard.data.lab_card`` and imports no other stage.
"""

from __future__ import annotations

from pathlib import Path

from crowguard.data.lab_card import read_lab_card
from crowguard.errors import UsageError
from crowguard.evaluate.result import EvalResult, SetResult
from crowguard.evaluate.run import evaluate
from crowguard.evaluate.spec import PROTOCOL, EvalSpec, spec_from_files, spec_from_lab_card


def spec_for_model(model_dir: str | Path, **overrides: object) -> EvalSpec:
    """The evaluation of a lab model folder, from its ``lab.json``; a UsageError if it has none."""
    card = read_lab_card(model_dir)
    if card is None:
        raise UsageError(f"{model_dir} has no lab.json, so it does not say what to evaluate",
                         hint="give --triggered/--clean files and --task or --keyword")
    return spec_from_lab_card(card, **overrides)


__all__ = ["PROTOCOL", "EvalResult", "EvalSpec", "SetResult", "evaluate", "spec_for_model",
           "spec_from_files", "spec_from_lab_card"]
