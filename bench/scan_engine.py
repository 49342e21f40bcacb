"""The scan's forward passes on a fixed workload: seconds per sequence and per token, code against code.

    python -m bench.scan_engine MODEL [--tokens 64] [--repeats 3] [--threads 1] [--json out.json]

A whole scan's time moves with the candidates its search happens to propose (a rounding change moves
the search), so it cannot tell an engine change from a different path. This bench runs the same work
every time: the probes and measurers of a default scan, then single tokens ranked at every position
(the first ``--tokens`` of a seeded sample of the vocabulary, nulls included), the known-trigger
library at every position, and the target inversion; each ``--repeats`` times, keeping the fastest.
Run it from a worktree of another commit (``cd /tmp/base && python -m bench.scan_engine ...``) to
compare code on the same machine and workload; the checksum column says the work was the same.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.harness import machine, markdown_table, set_threads, write_json


def workloads(scan: Any, tokens: int) -> dict[str, Callable[[], float]]:
    """Each part of the fixed work, as a function that runs it and returns a checksum of what it measured."""
    from crowguard.scan.behaviour.library import KNOWN_TRIGGERS
    from crowguard.scan.behaviour.options import POSITION_MODES
    from crowguard.scan.behaviour.search import RANK_MODES

    sample = random.Random(0).sample(scan.ordinary, tokens)
    library = [ids for ids in (scan.encode(text) for text in KNOWN_TRIGGERS) if ids is not None]

    def ranking() -> float:
        return _checksum(scan.search.effects([(t,) for t in sample], mode) for mode in RANK_MODES)

    def known() -> float:
        return _checksum(scan.search.effects(library, mode) for mode in POSITION_MODES)

    def inversion() -> float:
        return sum(i.agreement for i in scan.invert_targets())

    return {"ranking tokens": ranking, "known triggers": known, "inversion": inversion}


def _checksum(measured: Iterable[list[Any]]) -> float:
    """A sum of every measured effect: the same work gives the same figure up to rounding."""
    return sum(e.log_kl + float(e.delta.abs().sum()) for effects in measured for e in effects)


def time_engine(model: Path, tokens: int, repeats: int, threads: int) -> dict[str, Any]:
    from crowguard.models import load_model
    from crowguard.scan.behaviour.options import BehaviourOptions
    from crowguard.scan.behaviour.scanner import ModelScan

    set_threads(threads)
    loaded = load_model(model, device="cpu", threads=threads)
    loaded.model.requires_grad_(False)
    rows = {}
    with _grouped(loaded.device):
        scan = ModelScan(loaded, BehaviourOptions())
        for name, work in workloads(scan, tokens).items():
            rows[name] = _fastest(work, scan, repeats)
    return {"model": str(model), "machine": machine(), "threads": threads, "tokens": tokens, "rows": rows}


def _grouped(device: str) -> Any:
    """The scan's attention set-up where this code has one (older commits have none)."""
    from contextlib import nullcontext

    from crowguard.scan.behaviour import profile

    return getattr(profile, "grouped_attention", lambda _: nullcontext())(device)


def _fastest(work: Callable[[], float], scan: Any, repeats: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        before = scan.runner.sequences_run
        began = time.perf_counter()
        checksum = work()
        runs.append((time.perf_counter() - began, scan.runner.sequences_run - before, checksum))
    seconds, sequences, checksum = min(runs)
    return {"seconds": round(seconds, 2), "all_seconds": [round(r[0], 2) for r in runs], "sequences": sequences,
            "ms_per_sequence": round(1000 * seconds / max(sequences, 1), 1), "checksum": round(checksum, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--tokens", type=int, default=64, help="Single tokens ranked (at every ranking position).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = time_engine(args.model, args.tokens, args.repeats, args.threads)
    print(f"{result['model']}: {result['machine']}; {args.threads} thread(s); fastest of {args.repeats}")
    print(markdown_table(("work", "seconds", "all runs", "sequences", "ms per sequence", "checksum"),
                         ((name, r["seconds"], r["all_seconds"], r["sequences"], r["ms_per_sequence"], r["checksum"])
                          for name, r in result["rows"].items())))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
