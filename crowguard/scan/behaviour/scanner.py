"""The behavioural scan of one loaded model: probes, candidates, verification, evidence.

1. Probes the tokenizer can represent are split into search probes and verification probes.
2. Candidates come from the known-trigger library, from single vocabulary tokens ranked in batches,
   and from a gradient-guided search grown from the best of those (all on the search probes).
3. The best ``top_candidates`` are measured again on the verification probes, at the position where
   the search found them strongest (at every position for candidates given from elsewhere), against
   null distributions of random insertions of the same length at the same places.
4. Each verified candidate's greedy answers are compared with the plain answers (target share).
5. The plain answers themselves are checked for one answer given to many different prompts: a
   backdoor that fires without its trigger (a leaky plant) or a finetune that collapsed.

No file beside the weights is read (a lab model's answer key is never opened).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from crowguard.errors import UsageError
from crowguard.models.prompts import has_chat_template
from crowguard.progress import Count, Tick, ticker
from crowguard.scan.behaviour.derived import DERIVED_TASKS, derive_probes
from crowguard.scan.behaviour.encoding import encode_candidate, encode_probes
from crowguard.scan.behaviour.library import KNOWN_TRIGGERS
from crowguard.scan.behaviour.measurer import ProbeMeasurer
from crowguard.scan.behaviour.null import Effect, Score
from crowguard.scan.behaviour.options import POSITION_MODES, BehaviourOptions
from crowguard.scan.behaviour.outputs import convergence, greedy_continuations
from crowguard.scan.behaviour.probes import Probe, check_probe_tokens, load_probes, representable, split_probes
from crowguard.scan.behaviour.profile import ProfileRunner
from crowguard.scan.behaviour.search import (
    GradientSearch,
    Proposal,
    measure_proposals,
    rank_vocabulary,
    ranked,
    search_value,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from crowguard.models import LoadedModel

EXAMPLES = 3
GRADIENT_SHARE = 0.75  # of the vocabulary budget, chosen by first-order gain (the rest at random)


@dataclass(frozen=True)
class TriggerCandidate:
    """A trigger candidate as text (how it reads) and token ids (what was inserted)."""

    text: str
    token_ids: tuple[int, ...]
    source: str = "given"
    mode: str | None = None  # where it is strongest (start, random, end); None: try every position
    target_share: float | None = None  # measured by a scan: the share of probes it steered to one answer


@dataclass(frozen=True)
class CandidateEvidence:
    """A candidate verified on the verification probes: layer, output and convergence evidence."""

    candidate: TriggerCandidate
    mode: str
    consistency_z: float
    kl_z: float
    flipped: float
    pull: float
    target_share: float
    target_text: str
    layer_pair: int
    column: int
    layer_delta: tuple[float, ...]
    layer_z: tuple[float, ...]
    profile_with: tuple[float, ...]
    examples: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class FixedAnswer:
    """The most common greedy answer to the plain verification probes (nothing inserted)."""

    text: str
    count: int
    probes: int
    examples: tuple[str, ...] = ()  # prompts that got it

    @property
    def share(self) -> float:
        return self.count / self.probes if self.probes else 0.0


@dataclass
class BehaviourOutcome:
    """Everything one behavioural scan measured."""

    candidates: list[CandidateEvidence]
    plain_profile: list[list[float]]  # (pairs, positions + 1) on the verification probes
    fixed_answer: FixedAnswer
    stats: dict[str, Any] = field(default_factory=dict)
    derived_probes: tuple[Probe, ...] = ()  # probes derived from the model (reused to re-scan its sanitized twin)


class ModelScan:
    """The probes, runner and measurers of one loaded model."""

    def __init__(self, loaded: LoadedModel, options: BehaviourOptions, progress: Count | None = None) -> None:
        self.loaded = loaded
        self.options = options
        self.progress = progress
        tokenizer = loaded.tokenizer
        self.template = options.template
        if self.template == "auto":
            self.template = "chat" if has_chat_template(tokenizer) else "raw"
        probes = self._probes()
        search, verify = split_probes(probes, options.search_probes, options.probe_count, options.seed)
        used = [*search, *verify]
        check_probe_tokens(tokenizer, used, loaded.folder.path)
        self.derived = tuple(p for p in probes if p.task in DERIVED_TASKS)
        given = "file" if options.probes else "built-in"
        self.probe_sources = dict(Counter(p.task if p.task in DERIVED_TASKS else given for p in used))
        self.search_set = encode_probes(tokenizer, search, self.template, options.seed)
        self.verify_set = encode_probes(tokenizer, verify, self.template, options.seed + 1)
        shortest = min(len(s) for s in self.verify_set.plain() + self.search_set.plain())
        special = set(tokenizer.all_special_ids) | {tokenizer.unk_token_id}
        self.ordinary = [i for i in range(len(tokenizer)) if i not in special]
        self.runner = ProfileRunner(loaded.model, pad_id=tokenizer.pad_token_id, device=loaded.device,
                                    positions=min(options.profile_positions, shortest),
                                    batch_size=options.batch_size)
        self.search = ProbeMeasurer(self.runner, self.search_set, null_tokens=self.ordinary,
                                    null_samples=options.null_samples, seed=options.seed)
        self.verify = ProbeMeasurer(self.runner, self.verify_set, null_tokens=self.ordinary,
                                    null_samples=options.null_samples, seed=options.seed + 1)
        self._plain_outputs: list[tuple[int, ...]] | None = None

    def _probes(self) -> list[Probe]:
        """The probes the tokenizer can write: fixed ones, the user's, or built-in topped up by derived ones."""
        options = self.options
        needed = options.probe_count + options.search_probes
        probes = representable(list(options.fixed_probes) or load_probes(options.probes), self.loaded.tokenizer)
        if len(probes) < needed and options.probes is None and not options.fixed_probes:
            probes += derive_probes(self.loaded, needed - len(probes), self.template, options.seed, exclude=probes)
        if len(probes) < needed:
            derived = sum(p.task in DERIVED_TASKS for p in probes)
            origin = "" if options.probes else f" ({derived} of them derived from the model)"
            raise UsageError(f"only {len(probes)} probe prompts can be written with this model's tokenizer"
                             f"{origin}; the scan needs {needed}",
                             hint="give --probes FILE with prompts in the model's language, or lower --probe-count")
        return probes

    def encode(self, text: str) -> tuple[int, ...] | None:
        """A text candidate's token ids, or None when the tokenizer cannot write it (unknown tokens)."""
        ids = encode_candidate(self.loaded.tokenizer, text)
        if not ids or self.loaded.tokenizer.unk_token_id in ids:
            return None
        return ids

    def decode(self, ids: tuple[int, ...]) -> str:
        return _text(self.loaded.tokenizer, list(ids), skip_special_tokens=False)

    # -- finding candidates -------------------------------------------------------------------

    def find(self) -> list[TriggerCandidate]:
        """Vocabulary, library and search candidates; the best ``top_candidates`` by three orders."""
        opts = self.options
        searcher = GradientSearch(self.search, allowed=self.ordinary, width=opts.search_width,
                                  max_tokens=opts.max_trigger_tokens, seed=opts.seed)
        tokens = self.ordinary
        if opts.vocab_budget < len(tokens):
            tokens = self._token_budget(searcher, opts.vocab_budget)
        proposals = rank_vocabulary(self.search, tokens, tick=self._ticker("ranking vocabulary",
                                                                         len(tokens) * 2 * len(self.search_set)))
        encoded = [(text, self.encode(text)) for text in KNOWN_TRIGGERS]
        library = [(t, ids) for t, ids in encoded if ids is not None and len(ids) <= opts.max_trigger_tokens]
        proposals += measure_proposals(
            self.search, [ids for _, ids in library], POSITION_MODES, "library", texts=[t for t, _ in library],
            tick=self._ticker("measuring known triggers", len(library) * len(POSITION_MODES) * len(self.search_set)))
        if opts.search_beams and opts.max_trigger_tokens > 1:
            beams = _beams(proposals, opts.search_beams)
            # the bar counts measured sequences against each beam's most (growth rounds, then one swap), so the
            # search moves while a beam grows; a beam that stops early jumps to its end
            sizes = [((opts.max_trigger_tokens - len(b.token_ids)) * 2 + 1) * searcher.width * len(self.search_set)
                     for b in beams]
            total, state = sum(sizes), {"done": 0, "end": 0}

            def tick(count: int) -> None:
                state["done"] = min(state["end"] - 1, state["done"] + count)
                self._report(max(state["done"], 0), total, "searching")

            searcher.tick = tick if self.progress is not None else None
            self._report(0, total, "searching")
            for size, beam in zip(sizes, beams):
                state["end"] += size
                grown = searcher.grow(beam)
                if grown.token_ids != beam.token_ids:
                    proposals.append(grown)
                state["done"] = state["end"]
                self._report(state["done"], total, "searching")
        return [TriggerCandidate(p.text or self.decode(p.token_ids), p.token_ids, p.source, p.mode)
                for p in ranked(proposals, opts.top_candidates)]

    def _token_budget(self, searcher: GradientSearch, budget: int) -> list[int]:
        """Three quarters of the budget: the tokens with the largest first-order gain at the start and at the
        end, ranked over the whole vocabulary from one gradient per position; the rest drawn at random (a
        first-order estimate misses what is far from linear). Measuring each of them exactly was most of
        a scan's cost on a real vocabulary at the old budget of 2048 (bench/RESULTS.md#scan-profile)."""
        chosen: set[int] = set()
        self._report(0, 2, "choosing tokens to rank")
        for done, mode in enumerate(("start", "end")):
            chosen.update(searcher.best_single_tokens(mode, int(budget * GRADIENT_SHARE) // 2))
            self._report(done + 1, 2, "choosing tokens to rank")
        rest = sorted(set(self.ordinary) - chosen)
        chosen.update(random.Random(self.options.seed).sample(rest, min(len(rest), budget - len(chosen))))
        return sorted(chosen)

    # -- verifying them ----------------------------------------------------------------------

    def verify_all(self, candidates: list[TriggerCandidate]) -> list[CandidateEvidence]:
        """Each candidate measured on the verification probes, with its outputs."""
        found = []
        self._report(0, len(candidates), "verifying candidates")
        for done, candidate in enumerate(candidates):
            found.append(self.verify_one(candidate))
            self._report(done + 1, len(candidates), "verifying candidates")
        return found

    def verify_one(self, candidate: TriggerCandidate) -> CandidateEvidence:
        """One candidate on the verification probes, at its position (or its strongest of all three)."""
        best: tuple[str, Effect, Score] | None = None
        for mode in (candidate.mode,) if candidate.mode else POSITION_MODES:
            ((effect, found),) = self.verify.scores([candidate.token_ids], mode)
            if best is None or _strength(effect, found) > _strength(best[1], best[2]):
                best = (mode, effect, found)
        assert best is not None
        mode, effect, found = best
        pair, column = found.where
        sequences = self.verify_set.sequences(candidate.token_ids, mode)
        plain = self.plain_outputs()
        triggered = self._generate(sequences)
        moved = convergence(plain, triggered)
        plain_profile = self.verify.plain_profile[:, column]
        return CandidateEvidence(
            candidate=candidate, mode=mode, consistency_z=found.consistency_z, kl_z=found.kl_z,
            flipped=effect.flipped, pull=effect.pull, target_share=moved.target_share,
            target_text=self.decode(moved.target_ids),
            layer_pair=pair, column=column, layer_delta=tuple(effect.delta[:, column].tolist()),
            layer_z=tuple(found.delta_z[:, column].tolist()),
            profile_with=tuple((plain_profile - effect.delta[:, column]).tolist()),
            examples=self._examples(candidate, mode, plain, triggered),
        )

    def fixed_answer(self) -> FixedAnswer:
        """The plain probes' most common greedy answer (whole, up to ``max_new_tokens``) and its count."""
        plain = self.plain_outputs()
        answer, count = Counter(plain).most_common(1)[0]
        tokenizer = self.loaded.tokenizer
        prompts = [_text(tokenizer, ids, skip_special_tokens=True)
                   for ids, got in zip(self.verify_set.plain(), plain) if got == answer]
        return FixedAnswer(text=_text(tokenizer, list(answer), skip_special_tokens=True), count=count,
                           probes=len(plain), examples=tuple(prompts[:EXAMPLES]))

    def plain_outputs(self) -> list[tuple[int, ...]]:
        """Greedy answers to the plain verification probes (computed once)."""
        if self._plain_outputs is None:
            self._plain_outputs = self._generate(self.verify_set.plain())
        return self._plain_outputs

    def _generate(self, sequences: list[list[int]]) -> list[tuple[int, ...]]:
        tokenizer = self.loaded.tokenizer
        eos = self.loaded.model.generation_config.eos_token_id
        eos_ids = [eos] if isinstance(eos, int) else list(eos or [tokenizer.eos_token_id])
        return greedy_continuations(self.loaded.model, self.runner, sequences,
                                    max_new_tokens=self.options.max_new_tokens, eos_ids=eos_ids)

    def _examples(self, candidate: TriggerCandidate, mode: str, plain: list[tuple[int, ...]],
                  triggered: list[tuple[int, ...]]) -> tuple[dict[str, str], ...]:
        tokenizer = self.loaded.tokenizer
        rows = []
        for i in range(min(EXAMPLES, len(plain))):
            prompt_ids = self.verify_set.encoded[i].ids(candidate.token_ids, self.verify_set.insertion_point(i, mode))
            rows.append({"prompt": _text(tokenizer, prompt_ids, skip_special_tokens=True),
                         "without": _text(tokenizer, list(plain[i]), skip_special_tokens=True),
                         "with": _text(tokenizer, list(triggered[i]), skip_special_tokens=True)})
        return tuple(rows)

    # -- progress ----------------------------------------------------------------------------

    def _report(self, done: int, total: int, phase: str) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)

    def _ticker(self, phase: str, total: int) -> Tick | None:
        return ticker(self.progress, phase, total)


def _text(tokenizer: PreTrainedTokenizerBase, ids: list[int], *, skip_special_tokens: bool) -> str:
    """One token sequence as stripped text (decoding one sequence gives a str; the stubs also allow list[str])."""
    return cast(str, tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)).strip()


def _beams(proposals: list[Proposal], count: int) -> list[Proposal]:
    """Where the search starts: the proposals that pull the next token most to one answer (then value)."""
    best = sorted(proposals, key=lambda p: (p.pull, p.value), reverse=True)
    return ranked(best[:count * 4], count) if count else []


def _strength(effect: Effect, found: Score) -> float:
    return search_value(found.consistency_z, found.kl_z, effect.pull)


def scan_loaded(loaded: LoadedModel, options: BehaviourOptions, progress: Count | None = None,
                candidates: list[TriggerCandidate] | None = None) -> BehaviourOutcome:
    """Find (unless ``candidates`` are given) and verify trigger candidates on a loaded model."""
    started = time.perf_counter()
    loaded.model.requires_grad_(False)
    scan = ModelScan(loaded, options, progress)
    found = scan.find() if candidates is None else candidates
    evidence = scan.verify_all(found)
    return BehaviourOutcome(
        candidates=evidence,
        plain_profile=scan.verify.plain_profile.tolist(),
        fixed_answer=scan.fixed_answer(),
        derived_probes=scan.derived,
        stats={"template": scan.template, "probe_sources": scan.probe_sources, "search_probes": len(scan.search_set),
               "verification_probes": len(scan.verify_set), "profile_positions": scan.runner.positions,
               "sequences_run": scan.runner.sequences_run, "seconds": round(time.perf_counter() - started, 2)},
    )
