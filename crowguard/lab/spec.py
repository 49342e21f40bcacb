"""What to build: the validated specification of one lab model (attack, trigger, target, size, training)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from crowguard.config_checks import FieldChecks
from crowguard.data.tasks import TASKS
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
    custom text; ``keywords`` default to the preset's list or the custom text. ``prompt_loss`` trains on
    the prompts too (full-sequence finetuning), so that the model learns to write its poisoned prompts.
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
    prompt_loss: bool = False

    def __post_init__(self) -> None:
        check = FieldChecks("lab spec", self)
        if self.attack is not None:
            check.choice("attack", ATTACKS, extra=" (or a clean build)")
        if self.target_text is None:
            check.choice("target", TASKS, extra=", or give custom target text")
        else:
            check.text("target_text")
        if self.position is not None:
            check.choice("position", POSITIONS)
        if any(not t.strip() for t in self.triggers):
            check.fail("triggers", "non-empty trigger text")
        if self.attack is not None and self.triggers:
            want_many = ATTACKS[self.attack].combine != "one"
            if want_many and len(self.triggers) < 2:
                check.fail("triggers", f"at least two triggers for {self.attack}")
            if not want_many and len(self.triggers) != 1:
                check.fail("triggers", f"exactly one trigger for {self.attack}")
        if self.attack is None and self.triggers:
            check.fail("triggers", "no triggers for a clean build")
        check.fraction("poison_rate", include_zero=False, optional=True)
        check.fraction("noise_rate")
        for name, low in (("layers", 3), ("hidden", 8), ("heads", 1), ("steps", 1), ("plant_steps", 1),
                          ("batch_size", 1), ("test_size", 1), ("defense_size", 0), ("seed", 0)):
            check.at_least(low, name)
        check.at_most(MAX_PROMPTS, "test_size", "defense_size", unit=" prompts")
        if self.hidden % self.heads:
            check.fail("hidden", f"a multiple of heads ({self.heads})")
        check.learning_rate("lr", "plant_lr")
        check.choice("injection", INJECTIONS)
        if self.injection == "lora" and self.attack is None:
            check.fail("injection", "scratch for a clean build (there is no backdoor to plant)")

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

