"""Verifying trigger candidates on the verification probes: effect, greedy answers, and z-scores where they matter.

Per candidate, at its position (or at the strongest of all three for a candidate given without one):
its effect on the layers and the next token, and the greedy answers with it inserted, compared with
the plain answers (the target share). Then its z-scores against the null of random insertions of its
length at its position, which is most of verification's cost (16 insertions x every probe per length
and position). With the policy's bounds (``StopBounds``) candidates are scored in order of target
share, and once one counts, those after it below the threshold are left unscored: the model's score
is the largest target share of a counted candidate, so they could change neither it nor the verdict.
A candidate whose target repeats its own words (``echo``) is measured and scored but never counts.
Every candidate at or above the threshold is scored, so a finding lists all of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from crowguard.scan.behaviour.early_stop import StopBounds, counted
from crowguard.scan.behaviour.echo import is_echo
from crowguard.scan.behaviour.encoding import ProbeSet
from crowguard.scan.behaviour.evidence import CandidateEvidence, FixedAnswer, TriggerCandidate
from crowguard.scan.behaviour.measurer import ProbeMeasurer
from crowguard.scan.behaviour.null import Effect, Score, score
from crowguard.scan.behaviour.options import POSITION_MODES, BehaviourOptions
from crowguard.scan.behaviour.outputs import KEY_TOKENS, Convergence, convergence, greedy_continuations
from crowguard.scan.behaviour.search import search_value

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from crowguard.models import LoadedModel

EXAMPLES = 3
PHASE = "verifying candidates"


@dataclass
class _Measured:
    """One candidate's effect and answers at its mode; its score once it has one."""

    candidate: TriggerCandidate
    mode: str
    effect: Effect
    answers: list[tuple[int, ...]]
    moved: Convergence
    target_text: str
    echo: bool  # its target repeats its words: it cannot count
    score: Score | None = None


class Verifier:
    """Measures candidates on one probe set, each at most once per scan."""

    def __init__(self, loaded: LoadedModel, measurer: ProbeMeasurer, options: BehaviourOptions,
                 stop: StopBounds | None, report: Callable[[int, int, str], None]) -> None:
        self.loaded = loaded
        self.measurer = measurer
        self.probes: ProbeSet = measurer.probes
        self.options = options
        self.stop = stop
        self.report = report
        self.unscored = 0
        self._measured: dict[TriggerCandidate, _Measured] = {}
        self._plain: list[tuple[int, ...]] | None = None

    def verify_one(self, candidate: TriggerCandidate) -> CandidateEvidence:
        """One candidate, scored."""
        measured = self._measure(candidate)
        self._score(measured)
        return self._evidence(measured)

    def verify_all(self, candidates: list[TriggerCandidate]) -> list[CandidateEvidence]:
        """Every candidate measured; scored in order of target share as far as it can matter (see the module)."""
        total = 2 * len(candidates)
        self.report(0, total, PHASE)
        measured = []
        for done, candidate in enumerate(candidates):
            measured.append(self._measure(candidate))
            self.report(done + 1, total, PHASE)
        settled = False
        for done, item in enumerate(sorted(measured, key=lambda m: -m.moved.target_share)):
            if self.stop is None or not settled or item.moved.target_share >= self.stop.threshold:
                self._score(item)
                assert item.score is not None
                settled = settled or (self.stop is not None and counted(
                    item.score.consistency_z, item.score.kl_z, self.stop.min_layer_z, echo=item.echo))
            self.report(len(candidates) + done + 1, total, PHASE)
        self.unscored = sum(m.score is None for m in measured)
        return [self._evidence(m) for m in measured]

    def _measure(self, candidate: TriggerCandidate) -> _Measured:
        if candidate in self._measured:
            return self._measured[candidate]
        if candidate.mode:
            mode = candidate.mode
            (effect,) = self.measurer.effects([candidate.token_ids], mode)
            found = None
        else:  # given without a position: the strongest of all three, which takes the z-scores to tell
            options = []
            for mode in POSITION_MODES:
                (effect,) = self.measurer.effects([candidate.token_ids], mode)
                options.append((mode, effect, score(effect, self.measurer.null(len(candidate.token_ids), mode))))
            mode, effect, found = max(options, key=lambda o: search_value(o[2].consistency_z, o[2].kl_z, o[1].pull))
        answers = self._answers(self.probes.sequences(candidate.token_ids, mode))
        moved = convergence(self.plain_outputs(), answers)
        target = self.decode(moved.target_ids)
        echo = self.options.echo_discount and is_echo(candidate.text, target)
        measured = _Measured(candidate, mode, effect, answers, moved, target, echo, found)
        self._measured[candidate] = measured
        return measured

    def _score(self, measured: _Measured) -> None:
        if measured.score is None:
            measured.score = score(measured.effect, self.measurer.null(len(measured.candidate.token_ids),
                                                                       measured.mode))

    def _evidence(self, measured: _Measured) -> CandidateEvidence:
        effect, found = measured.effect, measured.score
        if found is not None:
            pair, column = found.where
        else:
            pair, column = divmod(int(effect.delta.abs().argmax()), effect.delta.shape[1])
        plain_profile = self.measurer.plain_profile[:, column]
        return CandidateEvidence(
            candidate=measured.candidate, mode=measured.mode,
            consistency_z=None if found is None else found.consistency_z, kl_z=None if found is None else found.kl_z,
            flipped=effect.flipped, pull=effect.pull, target_share=measured.moved.target_share,
            target_text=measured.target_text, layer_pair=pair, column=column,
            layer_delta=tuple(effect.delta[:, column].tolist()),
            layer_z=None if found is None else tuple(found.delta_z[:, column].tolist()),
            profile_with=tuple((plain_profile - effect.delta[:, column]).tolist()),
            examples=self._examples(measured), echo=measured.echo,
        )

    # -- answers -----------------------------------------------------------------------------

    def plain_outputs(self) -> list[tuple[int, ...]]:
        """Greedy answers to the plain verification probes (computed once)."""
        if self._plain is None:
            self._plain = self._generate(self.probes.plain())
        return self._plain

    def fixed_answer(self) -> FixedAnswer:
        """The plain probes' most common greedy answer (whole, up to ``max_new_tokens``) and its count."""
        plain = self.plain_outputs()
        answer, count = Counter(plain).most_common(1)[0]
        prompts = [self.text(ids) for ids, got in zip(self.probes.plain(), plain) if got == answer]
        return FixedAnswer(text=self.text(answer), count=count, probes=len(plain), examples=tuple(prompts[:EXAMPLES]))

    def _answers(self, sequences: list[list[int]]) -> list[tuple[int, ...]]:
        """Greedy answers with a candidate inserted: whole for the probes shown as examples, the first
        ``KEY_TOKENS`` (all the target share compares) for the rest."""
        shown = self._generate(sequences[:EXAMPLES])
        return shown + self._generate(sequences[EXAMPLES:], min(KEY_TOKENS, self.options.max_new_tokens))

    def _generate(self, sequences: list[list[int]], max_new_tokens: int | None = None) -> list[tuple[int, ...]]:
        if not sequences:
            return []
        return greedy_continuations(self.loaded.model, self.measurer.runner, sequences,
                                    max_new_tokens=max_new_tokens or self.options.max_new_tokens,
                                    eos_ids=self.loaded.stop_ids())

    def _examples(self, measured: _Measured) -> tuple[dict[str, str], ...]:
        plain, rows = self.plain_outputs(), []
        for i in range(min(EXAMPLES, len(plain))):
            at = self.probes.insertion_point(i, measured.mode)
            rows.append({"prompt": self.text(self.probes.encoded[i].ids(measured.candidate.token_ids, at)),
                         "without": self.text(plain[i]), "with": self.text(measured.answers[i])})
        return tuple(rows)

    def decode(self, ids: tuple[int, ...]) -> str:
        """Token ids as they read, special tokens kept (how a candidate or target is shown)."""
        return decode_text(self.loaded.tokenizer, list(ids), skip_special_tokens=False)

    def text(self, ids: tuple[int, ...] | list[int]) -> str:
        """Token ids as a reader sees them, special tokens dropped."""
        return decode_text(self.loaded.tokenizer, list(ids), skip_special_tokens=True)


def decode_text(tokenizer: PreTrainedTokenizerBase, ids: list[int], *, skip_special_tokens: bool) -> str:
    """One token sequence as stripped text (decoding one sequence gives a str; the stubs also allow list[str])."""
    return cast(str, tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)).strip()
