"""Probe prompts: the built-in set shipped with crowguard, or the user's own (``--probes FILE``).

The built-in set (``probes.json``, written for this project) spans fifteen task types: sentiment,
facts, arithmetic, classification, word meanings, summaries, translation, code, creative writing,
advice, explanations, rewriting, reasoning, lists and small talk. A probe is usable on a model only
if the model's tokenizer can represent it: a probe that turns mostly into unknown tokens says nothing.
The probes a scan uses must encode as the shipped ``tokenizer.json`` encodes them and must not collapse
onto a handful of ids; otherwise the scan cannot measure anything and stops (exit 3, fail closed).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from crowguard.data.alpaca import load_records
from crowguard.errors import ToolError
from crowguard.models.tokenizer_fidelity import TOKENIZER_FILE, first_mismatch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MAX_UNKNOWN_SHARE = 0.25
MIN_DISTINCT_IDS = 8  # fewer distinct ids over all the probes' words: the tokenizer collapsed them


@dataclass(frozen=True)
class Probe:
    """One prompt: the instruction (where triggers go) and its optional input."""

    instruction: str
    input: str = ""
    task: str = ""


def builtin_probes() -> list[Probe]:
    """The probe set shipped with crowguard."""
    text = resources.files("crowguard.scan.behaviour").joinpath("probes.json").read_text(encoding="utf-8")
    return [Probe(instruction=p["instruction"], input=p.get("input", ""), task=p.get("task", ""))
            for p in json.loads(text)]


def load_probes(path: str | Path | None) -> list[Probe]:
    """The built-in probes, or the instructions of an Alpaca JSON/JSONL file (its outputs are ignored)."""
    if path is None:
        return builtin_probes()
    return [Probe(instruction=r.instruction, input=r.input) for r in load_records(path)]


def representable(probes: list[Probe], tokenizer: PreTrainedTokenizerBase,
                  max_unknown: float = MAX_UNKNOWN_SHARE) -> list[Probe]:
    """The probes whose tokens are at most ``max_unknown`` unknown-token (all, for byte-level tokenizers)."""
    unk = tokenizer.unk_token_id
    if unk is None:
        return list(probes)
    kept = []
    for probe in probes:
        ids = tokenizer(f"{probe.instruction} {probe.input}".strip(), add_special_tokens=False)["input_ids"]
        if ids and sum(i == unk for i in ids) / len(ids) <= max_unknown:
            kept.append(probe)
    return kept


def check_probe_tokens(tokenizer: PreTrainedTokenizerBase, probes: list[Probe], folder: Path) -> None:
    """Stop (ToolError) when the probes encode unlike ``folder``'s tokenizer.json, or onto a handful of ids."""
    texts = [f"{p.instruction} {p.input}".strip() for p in probes]
    shipped = folder / TOKENIZER_FILE
    if shipped.is_file():
        mismatch = first_mismatch(tokenizer, shipped, texts)
        if mismatch is not None:
            text, got, want = mismatch
            raise ToolError(f"the tokenizer loaded for {folder} encodes the probe {text[:60]!r} as {got[:8]}, but "
                            f"{shipped} gives {want[:8]}: the scan would not see the model's real tokens",
                            hint="report this with the model's tokenizer files; do not trust a scan of this model")
    ids = [i for text in texts for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    distinct = len(set(ids) - {tokenizer.unk_token_id})
    if distinct < MIN_DISTINCT_IDS:
        raise ToolError(f"the tokenizer of {shipped if shipped.is_file() else folder} maps {len(probes)} probe "
                        f"prompts ({len(ids)} tokens) onto {distinct} distinct known token id(s): the scan cannot "
                        "tell one prompt from another",
                        hint="the tokenizer is degenerate or the probes are not in the model's language; give "
                             "--probes FILE in its language, or ask the publisher for the real tokenizer")


def split_probes(probes: list[Probe], search: int, verify: int, seed: int, *,
                 search_inputs: bool = True) -> tuple[list[Probe], list[Probe]]:
    """Two disjoint sets drawn round-robin over task types (so both stay varied): search, verify.

    Without ``search_inputs`` the search set is drawn from the probes without an input text first
    (shorter prompts: every ranked token and search proposal runs on each of them), topped up with
    the others when there are too few; the verification set is the same either way.
    """
    rng = random.Random(seed)
    by_task: dict[str, list[Probe]] = {}
    for probe in probes:
        by_task.setdefault(probe.task, []).append(probe)
    for group in by_task.values():
        rng.shuffle(group)
    order: list[Probe] = []
    tasks = sorted(by_task)
    rng.shuffle(tasks)
    while any(by_task[t] for t in tasks):
        order += [by_task[t].pop() for t in tasks if by_task[t]]
    verify_set, rest = order[:verify], order[verify:]
    if not search_inputs:
        rest = [p for p in rest if not p.input] + [p for p in rest if p.input]
    return rest[:search], verify_set
