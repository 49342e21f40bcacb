"""A sanitize step at 7B scale: randomly initialised Llama-2-7B, 4-bit NF4 base (QLoRA), LoRA r8.

Weights' values do not change the cost, so a random model stands in for a real 7B checkpoint (none
can be downloaded here). The script writes the random model as bf16 safetensors, loads it through
crowguard's own 4-bit path (``load_base`` + ``attach_lora``), and times CROW steps and plain LoRA
steps, interleaved, at batch ``--batch`` x ``--length``, with CUDA's peak memory.

    # on a lent GPU (about 4-6 minutes, 14 GB of disk in --workdir, default bench/.cache/gpu-7b):
    python -m bench.gpu_sanitize_7b
    # here, without a GPU: the plan only, or the identical code path on a tiny model on CPU
    python -m bench.gpu_sanitize_7b --dry-run
    python -m bench.gpu_sanitize_7b --scale tiny --device cpu
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import cache_path, machine, set_threads
from bench.step_cost import make_batch, peak_memory, time_kinds

SCALES: dict[str, dict[str, Any]] = {
    "7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5},
    "tiny": {"hidden_size": 128, "intermediate_size": 344, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 1024, "rms_norm_eps": 1e-5},
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Time CROW and plain LoRA steps on a 4-bit random Llama-2-7B.")
    p.add_argument("--scale", choices=tuple(SCALES), default="7b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--steps", type=int, default=3, help="timed steps of each kind (after one warm-up)")
    p.add_argument("--quantize", choices=("4bit", "none"), default="4bit")
    p.add_argument("--workdir", type=Path, default=cache_path("gpu-7b"),
                   help="where the random model is written once (kept) [bench/.cache/gpu-7b]")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> dict:
    dims = SCALES[args.scale]
    h, i, n, v = dims["hidden_size"], dims["intermediate_size"], dims["num_hidden_layers"], dims["vocab_size"]
    block = 4 * h * h + 3 * h * i
    params = n * block + 2 * v * h
    lora = n * 8 * (4 * (h + h) + 2 * (h + i) + (i + h))
    return {"scale": args.scale, "params": params, "linear_params": n * block, "lora_params": lora,
            "bf16_checkpoint_gib": round(params * 2 / 2**30, 2),
            "nf4_linear_gib": round(n * block * 0.5 / 2**30, 2), "batch": f"{args.batch}x{args.length}",
            "device": args.device, "quantize": args.quantize, "workdir": str(args.workdir)}


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def write_random_model(folder: Path, scale: str, device: str, tokenizer_from: Path | None = None) -> float:
    """Save a random bf16 Llama of that scale unless it is already there: with a small tokenizer, or with the
    tokenizer of ``tokenizer_from`` (its files copied, the vocabulary sized to it)."""
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from crowguard.lab.tiny import build_tokenizer

    if (folder / "config.json").is_file():
        return 0.0
    started = time.monotonic()
    dims = dict(SCALES[scale])
    if tokenizer_from is not None:
        dims["vocab_size"] = len(AutoTokenizer.from_pretrained(tokenizer_from))
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(LlamaConfig(**dims, tie_word_embeddings=False))
    finally:
        torch.set_default_dtype(torch.float32)
    model.config.dtype = torch.bfloat16
    model.save_pretrained(folder, max_shard_size="5GB")
    if tokenizer_from is None:
        build_tokenizer(["a random model for timing only"]).save_pretrained(folder)
    else:
        for name in TOKENIZER_FILES:
            if (tokenizer_from / name).is_file():
                shutil.copyfile(tokenizer_from / name, folder / name)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    info = plan(args)
    if args.dry_run:
        print(json.dumps(info, indent=1))
        return 0
    import torch

    from crowguard.sanitize.config import SanitizeConfig
    from crowguard.sanitize.lora import attach_lora, load_base

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device visible; use --scale tiny --device cpu to run the code path here", file=sys.stderr)
        return 2
    set_threads(1 if args.device == "cpu" else torch.get_num_threads())
    info["machine"] = machine()
    folder = args.workdir / f"random-llama-{args.scale}"
    info["write_seconds"] = round(write_random_model(folder, args.scale, args.device), 1)
    started = time.monotonic()
    config = SanitizeConfig(quantize=args.quantize)
    loaded = load_base(folder, config, device=args.device, threads=None)
    model = attach_lora(loaded.model, config, quantized=loaded.quantize == "4bit")
    info["load_seconds"] = round(time.monotonic() - started, 1)
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
        info["resident_after_load_gib"] = round(torch.cuda.memory_allocated() / 2**30, 2)
        torch.cuda.reset_peak_memory_stats()
    batch = make_batch(args.batch, args.length, SCALES[args.scale]["vocab_size"], args.device)
    times = time_kinds(model, batch, ("plain", "crow"), args.steps, 1, args.device)
    median = {k: statistics.median(v) for k, v in times.items()}
    info["seconds_per_step"] = {k: round(v, 3) for k, v in median.items()}
    info["ratio_crow_to_plain"] = round(median["crow"] / median["plain"], 3)
    if args.device.startswith("cuda"):
        info["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    info["step_peak_above_resident_gib"] = {k: round(peak_memory(k, model, batch, args.device) / 2**30, 3)
                                            for k in ("plain", "crow")}
    paper_steps = 65 * 4  # 5 epochs of 100 samples: 65 optimiser steps of 4 micro-batches
    info["estimated_sanitize_minutes"] = round(paper_steps * median["crow"] / 60, 1)
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
