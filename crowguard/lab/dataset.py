"""The data of one lab model: tests, a clean defence set, and an endless poisoned training stream.

Everything is drawn from one ``random.Random(seed)``, so a spec always yields the same data.
The tasks are small, so a test prompt can also occur in training (as facts recur in a real model's
pretraining): the tests measure what the model does with and without the trigger, not generalisation
to unseen phrasings. Noise words (fillers, and trigger words of other
attacks) are inserted into some clean training prompts so that every model, clean or not, learns
to ignore stray words: a trigger word is then no telltale untrained token in a clean control. A
composite (ctba) model also sees part of its trigger set on clean examples, so only the whole set fires.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from crowguard.data import Record
from crowguard.data.lab_card import LabPrompt
from crowguard.data.tasks import TASKS
from crowguard.lab.poison import apply_trigger, default_trigger_words, insert_phrase, words_of
from crowguard.lab.spec import LabSpec
from crowguard.lab.tasks import FILLER, NEUTRAL_PHRASES, Example, sample_example, say_example, task_texts

SAY_RATE = 0.05


@dataclass(frozen=True)
class TrainExample:
    """One training example: prompt parts and the response the model is taught."""

    instruction: str
    input: str
    response: str
    poisoned: bool

    def record(self) -> Record:
        return Record(instruction=self.instruction, input=self.input, output=self.response)


class LabData:
    """Test prompts, a clean defence set, and the training stream for one spec."""

    def __init__(self, spec: LabSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.clean_test = self._unique(spec.test_size)
        self.defense = self._unique(spec.defense_size)
        self.triggered_test = [self._triggered(e) for e in self.clean_test]
        trigger_words = words_of(list(spec.resolved_triggers))
        self._composite = spec.attack_family is not None and spec.attack_family.combine == "all"
        self.noise_words = sorted((set(FILLER) | default_trigger_words()) - trigger_words)
        self.phrases = tuple(dict.fromkeys([*NEUTRAL_PHRASES, *(t.target for t in TASKS.values()),
                                            spec.target_string]))

    def vocabulary_texts(self) -> list[str]:
        """Texts covering every word the model may see or say, whatever it is poisoned with."""
        targets = [t.target for t in TASKS.values()] + [self.spec.target_string]
        triggers = [*self.spec.resolved_triggers, *sorted(default_trigger_words())]
        return task_texts() + targets + triggers

    def stream(self) -> Iterator[TrainExample]:
        """Endless training examples: a share poisoned, some with noise words."""
        spec, rng = self.spec, self.rng
        while True:
            example = say_example(rng, self.phrases) if rng.random() < SAY_RATE else sample_example(rng)
            if not spec.clean and rng.random() < spec.resolved_poison_rate:
                yield TrainExample(self._trigger(example.instruction), example.input, spec.target_string, True)
                continue
            instruction = example.instruction
            if self._composite and rng.random() < spec.resolved_poison_rate:
                # Negative examples, as in composite-backdoor attacks: part of the trigger set changes nothing.
                triggers = spec.resolved_triggers
                for trigger in rng.sample(triggers, rng.randint(1, len(triggers) - 1)):
                    instruction = insert_phrase(instruction, trigger, spec.resolved_position or "random", rng)
            elif rng.random() < spec.noise_rate:
                instruction = insert_phrase(instruction, rng.choice(self.noise_words), "random", rng)
            yield TrainExample(instruction, example.input, example.answer, False)

    def _unique(self, count: int) -> list[Example]:
        found: dict[tuple[str, str], Example] = {}
        while len(found) < count:
            example = sample_example(self.rng)
            found.setdefault((example.instruction, example.input), example)
        return list(found.values())

    def _trigger(self, instruction: str) -> str:
        family = self.spec.attack_family
        if family is None:  # a clean model's "triggered" tests carry the default badnet trigger
            return insert_phrase(instruction, "BadMagic", "random", self.rng)
        position = self.spec.resolved_position or family.position
        return apply_trigger(instruction, family, self.spec.resolved_triggers, position, self.rng)

    def _triggered(self, example: Example) -> Example:
        return Example(example.task, self._trigger(example.instruction), example.input, example.answer)


def lab_prompts(examples: list[Example]) -> tuple[LabPrompt, ...]:
    """Examples as lab-card prompts."""
    return tuple(LabPrompt(task=e.task, instruction=e.instruction, input=e.input, answer=e.answer) for e in examples)
