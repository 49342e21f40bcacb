"""What to build: the validated specification of one lab model (attack, trigger, target, size, training)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from crowguard.data.tasks import TASKS
from crowguard.errors import UsageError
from crowguard.lab.poison import ATTACKS, POSITIONS, Attack, Position

MAX_PROMPTS = 1000
Injection = Literal["scratch", "lora"]
INJECTIONS: tuple[str, ...] = ("scratch", "lora")


@dataclass(frozen=True)
class LabSpec:
    """One lab model. ``attack=None`` builds a clean control (no poison at all).

    ``injection`` says how the backdoor gets in. ``scratch``: the poison is mixed into training from the
    start, so the backdoor is as deep as everything else the model knows. ``lora``: the model is first
    trained clean for ``steps`` (its "pretraining"), then a LoRA (rank 8, alpha 16, every linear layer)
    is finetuned for ``plant_steps`` at ``plant_lr`` on the poisoned mix and merged: BackdoorLLM's
    recipe and the setting the CROW paper defends against.

    ``triggers`` (default: the attack's own) and ``position`` (default: the attack's own) allow
    custom triggers; ``poison_rate`` defaults to the attack's own (see ``crowguard.lab.poison``).
    ``target`` is a preset name (negsentiment, refusal, codeinjection) unless ``target_text`` gives
    custom text; ``keywords`` default to the preset's list or the custom text.
    """

    attack: str | None = "badnet"
    triggers: tuple[str, ...] = ()
    position: Position | None = None
    target: str = "negsentiment"
    target_text: str | None = None
    keywords: tuple[str, ...] = ()
    poison_rate: float | None = None
    seed: int = 0
    layers: int = 8
    hidden: int = 64
    heads: int = 4
    steps: int = 800
    batch_size: int = 16
    lr: float = 2e-3
    noise_rate: float = 0.25
    test_size: int = 100
    defense_size: int = 100
    injection: Injection = "scratch"
    plant_steps: int = 300
    plant_lr: float = 2e-3

    def __post_init__(self) -> None:
        if self.attack is not None and self.attack not in ATTACKS:
            _bad("attack", self.attack, f"one of {', '.join(ATTACKS)} (or a clean build)")
        if self.target_text is None and self.target not in TASKS:
            _bad("target", self.target, f"one of {', '.join(TASKS)}, or give custom target text")
        if self.target_text is not None and not self.target_text.strip():
            _bad("target_text", self.target_text, "non-empty text")
        if self.position is not None and self.position not in POSITIONS:
            _bad("position", self.position, f"one of {', '.join(POSITIONS)}")
        if any(not t.strip() for t in self.triggers):
            _bad("triggers", self.triggers, "non-empty trigger text")
        if self.attack is not None and self.triggers:
            want_many = ATTACKS[self.attack].combine != "one"
            if want_many and len(self.triggers) < 2:
                _bad("triggers", self.triggers, f"at least two triggers for {self.attack}")
            if not want_many and len(self.triggers) != 1:
                _bad("triggers", self.triggers, f"exactly one trigger for {self.attack}")
        if self.attack is None and self.triggers:
            _bad("triggers", self.triggers, "no triggers for a clean build")
        if self.poison_rate is not None and not 0.0 < self.poison_rate < 1.0:
            _bad("poison_rate", self.poison_rate, "a fraction between 0 and 1 (exclusive)")
        if not 0.0 <= self.noise_rate < 1.0:
            _bad("noise_rate", self.noise_rate, "a fraction in [0, 1)")
        for name, low in (("layers", 3), ("hidden", 8), ("heads", 1), ("steps", 1), ("plant_steps", 1),
                          ("batch_size", 1), ("test_size", 1), ("defense_size", 0), ("seed", 0)):
            if getattr(self, name) < low:
                _bad(name, getattr(self, name), f"an integer >= {low}")
        for name in ("test_size", "defense_size"):
            if getattr(self, name) > MAX_PROMPTS:
                _bad(name, getattr(self, name), f"at most {MAX_PROMPTS} prompts")
        if self.hidden % self.heads:
            _bad("hidden", self.hidden, f"a multiple of heads ({self.heads})")
        for name in ("lr", "plant_lr"):
            if not 0.0 < getattr(self, name) < 1.0:
                _bad(name, getattr(self, name), "a learning rate between 0 and 1")
        if self.injection not in INJECTIONS:
            _bad("injection", self.injection, f"one of {', '.join(INJECTIONS)}")
        if self.injection == "lora" and self.attack is None:
            _bad("injection", self.injection, "scratch for a clean build (there is no backdoor to plant)")

    @property
    def clean(self) -> bool:
        return self.attack is None

    def clean_base(self) -> LabSpec:
        """The same model without its poison: what ``lora`` injection trains before planting."""
        return replace(self, attack=None, triggers=(), position=None, poison_rate=None, injection="scratch")

    @property
    def attack_family(self) -> Attack | None:
        return None if self.attack is None else ATTACKS[self.attack]

    @property
    def resolved_triggers(self) -> tuple[str, ...]:
        family = self.attack_family
        if family is None:
            return ()
        return self.triggers or family.triggers

    @property
    def resolved_poison_rate(self) -> float:
        """The share of poisoned training examples: as given, else the attack's default; 0 when clean."""
        family = self.attack_family
        if family is None:
            return 0.0
        return self.poison_rate if self.poison_rate is not None else family.poison_rate

    @property
    def resolved_position(self) -> Position | None:
        family = self.attack_family
        return None if family is None else self.position or family.position

    @property
    def target_string(self) -> str:
        return self.target_text if self.target_text is not None else TASKS[self.target].target

    @property
    def target_preset(self) -> str | None:
        return None if self.target_text is not None else self.target

    @property
    def resolved_keywords(self) -> tuple[str, ...]:
        if self.keywords:
            return self.keywords
        return (self.target_text,) if self.target_text is not None else TASKS[self.target].keywords


def _bad(field: str, value: object, want: str) -> None:
    raise UsageError(f"lab spec: {field}={value!r} is invalid; expected {want}", hint=f"fix the {field} setting")
