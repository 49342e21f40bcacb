"""The scan's forward passes on a fixed workload, each engine choice against the one it replaced, in one process.

    python -m bench.scan_engine MODEL [--tokens 16] [--rounds 2] [--threads 1] [--json out.json]

A whole scan's time moves with the candidates its search happens to propose (a rounding change moves
the search), and on this VM the same work timed in two processes differs by up to 15%, more than
the choices measured here. So one process builds the probes and measurers of a default scan and
runs the same work under each variant in turn, round after round (the median is kept):

- the layer cosines as they were (torch's ``cosine_similarity`` over two stacks of hidden states)
  or as shipped (``models.consistency.layer_cosines``: each state's norm once, no stacks);
- grouped-query attention copied per query head (transformers' ``repeat_kv``) or read as it is
  (``profile.grouped_attention``);
- the target inversion one opening at a time (``BATCH_ROWS`` of one row) or batched (as shipped).

The work: single tokens ranked at both ranking positions (the first ``--tokens`` of a seeded sample
of the vocabulary), the known-trigger library at every position, one known trigger on the
verification probes at every position (padded batches), and the inversion.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from bench.harness import machine, markdown_table, set_threads, write_json

FORWARD_VARIANTS = {"before": (False, False), "cosines": (True, False), "attention": (False, True),
                    "shipped": (True, True)}  # (shipped cosines, grouped attention)


def stacked_cosines(hidden_states: Any, first: int = 1, last: int | None = None) -> Any:
    """The layer cosines as they were computed before (the reference the shipped ones are timed against)."""
    import torch

    last = len(hidden_states) - 2 if last is None else last
    lower, upper = torch.stack(hidden_states[first:last]), torch.stack(hidden_states[first + 1:last + 1])
    return torch.nn.functional.cosine_similarity(lower.float(), upper.float(), dim=-1)


@contextmanager
def variant(shipped_cosines: bool, grouped: bool) -> Iterator[None]:
    from crowguard.scan.behaviour import profile

    shipped = profile.layer_cosines
    profile.layer_cosines = shipped if shipped_cosines else stacked_cosines  # type: ignore[assignment]
    try:
        with profile.grouped_attention("cpu") if grouped else nullcontext():
            yield
    finally:
        profile.layer_cosines = shipped  # type: ignore[assignment]


def forward_work(scan: Any, tokens: int) -> dict[str, Callable[[], object]]:
    from crowguard.scan.behaviour.library import KNOWN_TRIGGERS
    from crowguard.scan.behaviour.options import POSITION_MODES
    from crowguard.scan.behaviour.search import RANK_MODES

    sample = random.Random(0).sample(scan.ordinary, tokens)
    library = [ids for ids in (scan.encode(text) for text in KNOWN_TRIGGERS) if ids is not None]
    return {"ranking tokens": lambda: [scan.search.effects([(t,) for t in sample], m) for m in RANK_MODES],
            "known triggers": lambda: [scan.search.effects(library, m) for m in POSITION_MODES],
            "one trigger, verification probes": lambda: [scan.verify.effects([library[0]], m) for m in POSITION_MODES]}


def time_engine(model: Path, tokens: int, rounds: int, threads: int) -> dict[str, Any]:
    from crowguard.models import load_model
    from crowguard.scan.behaviour import inversion
    from crowguard.scan.behaviour.options import BehaviourOptions
    from crowguard.scan.behaviour.scanner import ModelScan

    set_threads(threads)
    loaded = load_model(model, device="cpu", threads=threads)
    loaded.model.requires_grad_(False)
    scan = ModelScan(loaded, BehaviourOptions())
    work = forward_work(scan, tokens)
    for run in work.values():
        run()  # every probe prefix's cache computed once, as in a scan
    seconds: dict[tuple[str, str], list[float]] = {}
    batched = inversion.BATCH_ROWS
    for _ in range(rounds):
        for name, flags in FORWARD_VARIANTS.items():
            with variant(*flags):
                for part, run in work.items():
                    began = time.perf_counter()
                    run()
                    seconds.setdefault((part, name), []).append(time.perf_counter() - began)
        for name, rows in (("before", 1), ("shipped", batched)):
            inversion.BATCH_ROWS = rows
            began = time.perf_counter()
            scan.invert_targets()
            seconds.setdefault(("inversion", name), []).append(time.perf_counter() - began)
        inversion.BATCH_ROWS = batched
    table = {part: {name: round(statistics.median(found), 2) for (p, name), found in seconds.items() if p == part}
             for part in (*work, "inversion")}
    return {"model": str(model), "machine": machine(), "threads": threads, "tokens": tokens, "rounds": rounds,
            "median_seconds": table}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--tokens", type=int, default=16, help="Single tokens ranked (at both ranking positions).")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = time_engine(args.model, args.tokens, args.rounds, args.threads)
    print(f"{result['model']}: {result['machine']}; {args.threads} thread(s); median of {args.rounds} rounds")
    names = list(FORWARD_VARIANTS)
    print(markdown_table(("work", *names), ((part, *(row.get(n, "-") for n in names))
                                            for part, row in result["median_seconds"].items())))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
