"""How often does a model give one and the same answer to the scan's plain probes? (CG-BACKDOOR-FIXED-ANSWER)

For each model folder: the behavioural scan's verification probes (default options: 24 prompts over
15 task types, the model's chat template when it has one), greedy answers of up to 12 new tokens with
nothing inserted, and the share of prompts that got the most common answer. That share is what the
scan compares with the policy's ``behaviour_scan.fixed_answer_share`` (default 0.5). Only the probes
and the greedy answers are computed (no vocabulary ranking), so it takes seconds per model.

    python -m bench.fixed_answer_share 'bench/.cache/zoo/*' bench/.cache/realmodel/models/original

Globs are expanded here; folders without a ``config.json`` are passed over.
"""

from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path

from bench.harness import machine, table_head, table_row


def measure(folder: Path, threads: int) -> tuple[str, int, int, float]:
    """(most common answer, its count, probes, seconds) for one model folder."""
    from crowguard.models import load_model
    from crowguard.scan.behaviour.options import BehaviourOptions
    from crowguard.scan.behaviour.scanner import ModelScan

    started = time.perf_counter()
    loaded = load_model(folder, device="cpu", threads=threads)
    loaded.model.requires_grad_(False)
    answer = ModelScan(loaded, BehaviourOptions()).verifier.fixed_answer()
    return answer.text, answer.count, answer.probes, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="Model folders or globs.")
    parser.add_argument("--threads", type=int, default=1, help="Torch CPU threads.")
    args = parser.parse_args(argv)
    folders = sorted({Path(p) for pattern in args.models for p in (glob.glob(pattern) or [pattern])
                      if (Path(p) / "config.json").is_file()})
    if not folders:
        print("no model folders found (each needs a config.json)")
        return 2
    print("\n".join(table_head("model", "most common plain answer", "share", "seconds")))
    for folder in folders:
        text, count, probes, seconds = measure(folder, args.threads)
        shown = repr(text) if text else "(empty)"
        print(table_row(folder, shown, f"{count}/{probes} = {count / probes:.2f}", f"{seconds:.0f}"), flush=True)
    print(f"\n{machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
