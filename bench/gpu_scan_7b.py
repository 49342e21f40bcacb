"""A behavioural scan at 7B scale: randomly initialised Llama-2-7B with a real tokenizer, timed phase by phase.

A scan's cost depends on the model's size, its vocabulary and the probes' lengths, not on its weights'
values, so a random 7B model stands in for a real checkpoint (none can be downloaded here). The script
writes the random model once (bf16 safetensors, ``bench/gpu_sanitize_7b.py``'s writer) with the
tokenizer of a real model folder (default: SmolLM2-135M-Instruct from ``bench/real_model.py``, so the
built-in probes encode as they would on a real chat model, 49,152 tokens), then runs
``bench/scan_profile.py``'s profile on it: seconds and forward sequences per phase, with the default
scan options and the default policy's early stop. A random model has no trigger, so the scan runs every
phase (no early stop of the search): the cost of a clean model, the common case.

    # on a lent GPU (about 13 GiB of disk in --workdir; the scan itself is the figure):
    python -m bench.gpu_scan_7b --device cuda --json /tmp/scan7b.json
    # here, without a GPU: the identical code path on a tiny model on CPU
    python -m bench.gpu_scan_7b --scale tiny --device cpu
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.gpu_sanitize_7b import SCALES, write_random_model
from bench.harness import cache_path, write_json
from bench.scan_profile import profile_scan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=tuple(SCALES), default="7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (on CPU only)")
    parser.add_argument("--tokenizer", type=Path, default=cache_path("realmodel") / "models" / "original",
                        help="a model folder whose tokenizer the random model gets [bench/real_model.py's original]")
    parser.add_argument("--workdir", type=Path, default=cache_path("gpu-7b"),
                        help="where the random model is written once (kept) [bench/.cache/gpu-7b]")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args(argv)
    import torch

    from crowguard.scan.behaviour.options import BehaviourOptions

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device visible; use --scale tiny --device cpu to run the code path here", file=sys.stderr)
        return 2
    if not (args.tokenizer / "tokenizer.json").is_file():
        print(f"no tokenizer in {args.tokenizer}: run `python -m bench.real_model --stages obtain,import` "
              "or give --tokenizer FOLDER", file=sys.stderr)
        return 2
    folder = args.workdir / f"random-llama-{args.scale}-scan"
    written = write_random_model(folder, args.scale, args.device, tokenizer_from=args.tokenizer)
    result = profile_scan(folder, BehaviourOptions(), args.threads, args.device)
    result.update(scale=args.scale, write_seconds=round(written, 1),
                  gpu=torch.cuda.get_device_name() if args.device.startswith("cuda") else None)
    print(f"{args.scale}: {result['scan_seconds']} s scan + {result['load_seconds']} s load, "
          f"{result['sequences_run']} sequences on {result['device']}; {result['machine']}")
    for name, row in result["phases"].items():
        print(f"  {name}: {row['seconds']} s, {row['sequences']} sequences")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
