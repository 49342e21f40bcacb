"""Where a behavioural scan's seconds and forward sequences go, phase by phase, on one model.

    python -m bench.scan_profile MODEL [--threads 1] [--vocab-budget N] [--no-early-stop] [--json out.json]

Runs the scan crowguard runs (``scan_loaded`` with the default options unless told otherwise) and
splits its wall time by the phases it reports through its progress callback (setting up the probes,
choosing tokens, ranking the vocabulary, the known-trigger library, the gradient search,
verification), with the forward sequences and prompt tokens each phase ran. Set-up (probes, plain
profiles) is what happens before the first phase is reported; the fixed-answer check reuses the
plain answers verification generated, so it falls under verification. The score is the default
policy's, and so are the bounds the scan stops at (``early_stop``; ``--no-early-stop`` measures
everything; ``--set FIELD=VALUE`` changes any other scan option).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import machine, markdown_table, scan_options, set_threads, write_json


class PhaseClock:
    """Wall seconds and runner counters per scan phase, from the progress callback's phase names."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float]] = {}
        self.phase = "set-up (probes, plain profiles)"
        self.started = time.perf_counter()
        self.sequences = 0
        self.tokens = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            self.switch(phase)

    def switch(self, phase: str) -> None:
        now = time.perf_counter()
        row = self.rows.setdefault(self.phase, {"seconds": 0.0, "sequences": 0, "tokens": 0})
        row["seconds"] += now - self.started
        row["sequences"] += self.sequences
        row["tokens"] += self.tokens
        self.phase, self.started, self.sequences, self.tokens = phase, now, 0, 0


@contextmanager
def counting(clock: PhaseClock) -> Iterator[None]:
    """Count the sequences and tokens every model forward of the scan runs, for the current phase."""
    from crowguard.scan.behaviour import profile

    runner_cls = profile.ProfileRunner
    forward, shared = runner_cls.forward, runner_cls.run_shared_prefix

    def counted_forward(self: Any, mask: Any, **kwargs: Any) -> Any:
        clock.sequences += int(mask.shape[0])
        clock.tokens += int(mask.sum())
        return forward(self, mask, **kwargs)

    def counted_shared(self: Any, prefix: Any, tails: Any, **kwargs: Any) -> Any:
        clock.sequences += len(tails)
        clock.tokens += len(prefix) + sum(len(t) for t in tails)
        return shared(self, prefix, tails, **kwargs)

    runner_cls.forward, runner_cls.run_shared_prefix = counted_forward, counted_shared  # type: ignore[method-assign]
    try:
        yield
    finally:
        runner_cls.forward, runner_cls.run_shared_prefix = forward, shared  # type: ignore[method-assign]


def profile_scan(model: Path, options: Any, threads: int, device: str = "auto",
                 early_stop: bool = True) -> dict[str, Any]:
    """Load ``model``, scan it with ``options``, and return the per-phase table and the scan's figures."""
    from crowguard.models import load_model
    from crowguard.policy import builtin_policy, load_policy
    from crowguard.scan.behaviour.decision import model_score
    from crowguard.scan.behaviour.early_stop import StopBounds
    from crowguard.scan.behaviour.scanner import scan_loaded

    set_threads(threads)
    began = time.perf_counter()
    loaded = load_model(model, device=device, threads=threads)
    load_seconds = time.perf_counter() - began
    clock = PhaseClock()
    settings = load_policy(builtin_policy("default")).behaviour_scan
    stop = StopBounds(settings.min_layer_z, settings.threshold) if early_stop else None
    with counting(clock):
        outcome = scan_loaded(loaded, options, clock, stop=stop)
        clock.switch("done")
    evidence = outcome.candidates
    total = sum(r["seconds"] for r in clock.rows.values())
    best = max(evidence, key=lambda e: e.target_share, default=None)
    return {
        "model": str(model), "machine": machine(), "device": loaded.device, "threads": threads,
        "load_seconds": round(load_seconds, 1),
        "scan_seconds": round(total, 1), "sequences_run": outcome.stats["sequences_run"],
        "early_stop": early_stop, "unscored_candidates": outcome.stats["unscored_candidates"],
        "search_stopped_at": outcome.stats["search_stopped_at"],
        "score": model_score(evidence, settings.min_layer_z),
        "fixed_answer_share": outcome.fixed_answer.share,
        "best": None if best is None else {"text": best.candidate.text, "source": best.candidate.source,
                                           "target_share": best.target_share, "target": best.target_text},
        "phases": {name: {"seconds": round(r["seconds"], 1), "share": round(r["seconds"] / total, 3),
                          "sequences": int(r["sequences"]), "tokens": int(r["tokens"])}
                   for name, r in clock.rows.items()},
    }


def main(argv: list[str] | None = None) -> int:
    from crowguard.scan.behaviour.options import BehaviourOptions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu or cuda.")
    parser.add_argument("--vocab-budget", type=int, default=None)
    parser.add_argument("--probe-count", type=int, default=None)
    parser.add_argument("--set", dest="options", action="append", default=[], metavar="FIELD=VALUE",
                        help="Another scan option (a BehaviourOptions field), e.g. search_width=8.")
    parser.add_argument("--no-early-stop", action="store_true", help="Measure every null and run the whole search.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args(argv)
    given = {k: v for k, v in (("vocab_budget", args.vocab_budget), ("probe_count", args.probe_count)) if v is not None}
    given.update(scan_options(args.options))
    result = profile_scan(args.model, BehaviourOptions(**given), args.threads, args.device,
                          early_stop=not args.no_early_stop)
    print(f"{result['model']}: {result['scan_seconds']} s scan + {result['load_seconds']} s load, "
          f"{result['sequences_run']} sequences on {result['device']}; {result['machine']}; {args.threads} thread(s)")
    print(markdown_table(("phase", "seconds", "share", "sequences", "prompt tokens"),
                         ((name, r["seconds"], r["share"], r["sequences"], r["tokens"])
                          for name, r in result["phases"].items())))
    print(f"score {result['score']:.2f}, best {result['best']}, fixed-answer share {result['fixed_answer_share']:.2f}; "
          f"unscored candidates {result['unscored_candidates']}, search stopped at {result['search_stopped_at']}")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
