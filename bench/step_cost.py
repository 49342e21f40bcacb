"""Cost of one CROW training step against one plain LoRA step, on the same model and batch.

One process times, interleaved, (a) a plain LoRA step (CE forward + backward + AdamW), (b) crowguard's
two-pass CROW step, and (c) the authors' three-pass CROW step, on one randomly initialised Llama with
LoRA r8 on all linear layers; the median of ``--reps`` steps each. Peak memory per kind of step,
above what model and optimiser state already hold: CUDA's max_memory_allocated on a GPU, else the
resident memory, sampled every millisecond, of a child process whose allocator returns every freed
block of 64 KiB or more to the OS at once (so resident memory follows live tensors).
The three-pass step computes full logits in every pass, as the released code does.

    python -m bench.step_cost --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.harness import REPO, machine, set_threads

KINDS = ("plain", "crow", "crow-3pass")


def build(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """A random Llama of the given size with a fresh LoRA, and one batch (half prompt, half response)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from crowguard.sanitize.config import SanitizeConfig
    from crowguard.sanitize.lora import attach_lora

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
                         num_hidden_layers=args.layers, num_attention_heads=args.heads,
                         num_key_value_heads=args.heads, max_position_embeddings=max(args.length, 128))
    model = attach_lora(LlamaForCausalLM(config).to(args.device), SanitizeConfig(), quantized=False)
    return model, make_batch(args.batch, args.length, args.vocab, args.device)


def make_batch(batch: int, length: int, vocab: int, device: str) -> dict[str, Any]:
    import torch

    ids = torch.randint(3, vocab, (batch, length), generator=torch.Generator().manual_seed(1)).to(device)
    labels = ids.clone()
    labels[:, : length // 2] = -100
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def three_pass_loss(model: Any, batch: dict[str, Any], alpha: float = 5.5, eps: float = 0.1) -> Any:
    """The released code's structure: direction pass, perturbed pass, then a separate CE pass."""
    import torch

    from crowguard.models.consistency import consistency_loss

    x = model.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_(True)
    mask = batch["attention_mask"]
    hidden = model(inputs_embeds=x, attention_mask=mask, output_hidden_states=True).hidden_states
    (g,) = torch.autograd.grad(consistency_loss(hidden, mask), x)
    adv = model(inputs_embeds=(x + eps * g.sign()).detach(), attention_mask=mask, output_hidden_states=True)
    ce = model(input_ids=batch["input_ids"], attention_mask=mask, labels=batch["labels"]).loss
    return ce + alpha * consistency_loss(adv.hidden_states, mask)


def step_fn(kind: str, model: Any, batch: dict[str, Any]) -> Callable[[], None]:
    """One optimiser step of the given kind (forward(s), backward, AdamW)."""
    import torch

    from crowguard.sanitize.crow_loss import ce_loss, crow_loss

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    loss_of = {"plain": lambda: ce_loss(model, batch).loss,
               "crow": lambda: crow_loss(model, batch, alpha=5.5, eps=0.1).loss,
               "crow-3pass": lambda: three_pass_loss(model, batch)}[kind]

    def step() -> None:
        loss_of().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_kinds(model: Any, batch: dict[str, Any], kinds: tuple[str, ...], reps: int, warmup: int,
               device: str) -> dict[str, list[float]]:
    """Seconds per step for each kind, interleaved so drift in machine load hits all kinds alike."""
    steps = {k: step_fn(k, model, batch) for k in kinds}
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(reps):
        for kind, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[kind].append(time.perf_counter() - start)
    return times


def peak_memory(kind: str, model: Any, batch: dict[str, Any], device: str) -> int:
    """Bytes at peak during one step of ``kind``, above what is held before it.

    CUDA: the allocator's peak. CPU: resident memory sampled every millisecond; meaningful only when
    freed tensors go back to the OS at once, which ``measure_cpu_memory`` arranges for its child.
    """
    import torch

    step = step_fn(kind, model, batch)
    step()  # optimiser state exists from here on, as it does during training
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)
    with RssSampler() as sampler:
        step()
    return sampler.peak - sampler.start


def measure_cpu_memory(argv: list[str]) -> dict[str, int]:
    """Run the memory measurement in a child whose allocator unmaps every freed block >= 64 KiB."""
    import os
    import subprocess

    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    done = subprocess.run([sys.executable, "-m", "bench.step_cost", *argv, "--memory-child"], env=env, cwd=REPO,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


class RssSampler:
    """Samples this process's resident memory every millisecond in a thread."""

    def __enter__(self) -> RssSampler:
        import threading

        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _rss() -> int:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Time a CROW step against a plain LoRA step.")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--intermediate", type=int, default=1376)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    set_threads(args.threads)
    model, batch = build(args)
    if args.memory_child:
        print(json.dumps({kind: peak_memory(kind, model, batch, args.device) for kind in KINDS}))
        return 0
    times = time_kinds(model, batch, KINDS, args.reps, args.warmup, args.device)
    median = {k: statistics.median(v) for k, v in times.items()}
    if args.device.startswith("cuda"):
        memory = {kind: peak_memory(kind, model, batch, args.device) for kind in KINDS}
    else:
        memory = measure_cpu_memory(argv if argv is not None else sys.argv[1:])
    result = {
        "model": {k: getattr(args, k) for k in ("layers", "hidden", "intermediate", "heads", "vocab")},
        "batch": f"{args.batch}x{args.length}", "device": args.device, "threads": args.threads, "reps": args.reps,
        "seconds_per_step": {k: round(v, 4) for k, v in median.items()},
        "ratio_crow_to_plain": round(median["crow"] / median["plain"], 3),
        "ratio_3pass_to_plain": round(median["crow-3pass"] / median["plain"], 3),
        "step_peak_memory_mib": {k: round(v / 2**20, 1) for k, v in memory.items()},
        "machine": machine(),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
