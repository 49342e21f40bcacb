"""The sanitize stage: CROW finetuning of a model folder into a new, merged safetensors folder.

``sanitize_model`` loads the base (4-bit NF4 on CUDA), builds the clean set, trains a LoRA with the
CROW loss (or plain CE for ``method='finetune'``), merges it into a full-precision copy of the base
and writes the result into a destination folder the caller owns (the pipeline stages it atomically).
``method='prune'``, a baseline, trains nothing: it prunes the base in its own precision with Wanda,
calibrated on the same clean set (``crowguard.sanitize.prune``), and saves it the same way.
The input folder is only read.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crowguard.errors import UsageError
from crowguard.progress import NO_PROGRESS, ProgressSink
from crowguard.runtime import Runtime
from crowguard.sanitize.config import SanitizeConfig
from crowguard.sanitize.data import CleanSet
from crowguard.sanitize.guided import Guide, guided_twins
from crowguard.sanitize.prune import PruneResult
from crowguard.sanitize.stand_in import StandInFit
from crowguard.sanitize.train import Progress, TrainResult

if TYPE_CHECKING:
    from crowguard.models import LoadedModel

__all__ = ["CleanSet", "Guide", "Progress", "SanitizeConfig", "SanitizeOutcome", "sanitize_model"]


@dataclass(frozen=True)
class SanitizeOutcome:
    """What a sanitize run did, for the report."""

    config: SanitizeConfig
    device: str
    quantize: str
    clean_set: dict[str, Any]
    examples: int
    train: TrainResult
    merge: dict[str, Any]
    seconds: float
    peak_memory: dict[str, Any]
    adapter: str | None = None
    tokenizer_note: str | None = None  # the shipped tokenizer.json replaced transformers' class (why)
    clean: CleanSet | None = None  # the clean set trained on (a guided run's next round reuses it)
    guides: tuple[Guide, ...] = ()  # the trigger candidates whose twins were trained on (method guided)
    prune: PruneResult | None = None  # what pruning did (method prune; then nothing was trained)
    stand_in: StandInFit | None = None  # the trigger stand-in trained against (guided, a taught reply, no guide)

    def metrics(self) -> dict[str, Any]:
        """JSON-able metrics for the StageResult."""
        t = self.train
        return {
            "method": self.config.method, "device": self.device, "quantize": self.quantize,
            "clean_set": self.clean_set, "examples": self.examples, "adapter": self.adapter,
            "steps": t.steps, "total_steps": t.total_steps, "resumed_from_step": t.resumed_from_step,
            "processes": t.world_size, "eps_used": t.eps_used, "layer_pairs": list(t.layer_pairs),
            "train_seconds": round(t.seconds, 3), "seconds": round(self.seconds, 3),
            "peak_memory": self.peak_memory, "curve": t.curve, "merge": self.merge,
            **({"tokenizer": self.tokenizer_note} if self.tokenizer_note else {}),
            **({"guides": [{"text": g.text, "position": g.mode, "source": g.source} for g in self.guides]}
               if self.config.method == "guided" else {}),
            **({"prune": self.prune.as_dict()} if self.prune is not None else {}),
            **({"stand_in": self.stand_in.as_dict()} if self.stand_in is not None else {}),
        }


def sanitize_model(
    model_path: str | Path,
    dest: Path | None,
    config: SanitizeConfig,
    *,
    clean_data: str | Path | CleanSet | None = None,
    adapter: str | Path | None = None,
    runtime: Runtime = Runtime(),
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    progress: ProgressSink = NO_PROGRESS,
    guides: Sequence[Guide] = (),
    reply: str | None = None,
) -> SanitizeOutcome:
    """Train, merge and save into ``dest`` (written by the main process; others pass None).

    ``clean_data`` is an Alpaca file, a prepared CleanSet, or None for a self-distilled set. With
    ``method='guided'``, each clean record also trains as a twin with one of ``guides`` inserted; with no
    guide but the taught ``reply`` the scan inverted (and a ``config.stand_in_scale``), as a twin with a trigger
    stand-in (soft tokens, or a layer shift: ``config.stand_in_place``) fitted toward that reply
    (``crowguard.sanitize.stand_in``).
    """
    import torch
    from accelerate import Accelerator

    from crowguard.models import resolve_device
    from crowguard.sanitize.data import clean_set_from_file, encode
    from crowguard.sanitize.lora import attach_lora, check_adapter_dir, load_base
    from crowguard.sanitize.merge import adapter_snapshot, merge_and_save
    from crowguard.sanitize.stand_in import fitted_stand_in, stand_in_twins
    from crowguard.sanitize.train import train

    phase = progress.phase
    started = time.monotonic()
    if adapter is not None:
        if config.method == "prune":
            raise UsageError(f"--adapter {adapter} continues a LoRA adapter, but --method prune trains none",
                             hint="drop --adapter, or use --method crow or finetune")
        check_adapter_dir(adapter)
    clean = clean_data if isinstance(clean_data, CleanSet) else None if clean_data is None else \
        clean_set_from_file(clean_data, config.num_samples, config.seed)
    if config.method == "prune":
        return _prune(model_path, dest, config, clean, runtime=runtime, progress=progress, started=started)
    wanted = resolve_device(runtime.device)
    if wanted.startswith("cuda:"):
        torch.cuda.set_device(wanted)  # a single-process Accelerator trains on the current CUDA device
    accelerator = Accelerator(cpu=wanted == "cpu")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    phase("loading model")
    run_device = "cpu" if accelerator.device.type == "cpu" else str(accelerator.device)
    loaded = load_base(model_path, config, device=run_device, threads=runtime.threads)
    clean = _clean_or_distilled(clean, loaded, config, progress)
    guides = tuple(guides) if config.method == "guided" else ()
    twins = guided_twins(clean.records, guides, config.seed)
    examples = encode(clean.records + twins, loaded.tokenizer, config.max_length)
    reply = reply if config.method == "guided" and config.stand_in_scale > 0 and not guides and reply else None
    pad = _pad_id(loaded.tokenizer)
    if reply is not None:
        examples += stand_in_twins(config.stand_in_place, examples, clean.records, loaded.tokenizer, config.max_length,
                                   pad_id=pad, seed=config.seed)
    torch.manual_seed(config.seed)  # a fresh adapter's initial weights
    model = attach_lora(loaded.model, config, quantized=loaded.quantize == "4bit", adapter_dir=adapter)
    fingerprint = {**config.training_fingerprint(), "data_sha256": clean.digest, "examples": len(examples),
                   "model": str(Path(model_path).absolute()), "adapter": str(adapter) if adapter else None,
                   "quantize": loaded.quantize, "processes": accelerator.num_processes,
                   "guides": [g.text for g in guides], "stand_in": reply}
    stand_in, fit = None, None
    if reply is not None:
        phase("fitting a trigger stand-in toward the taught reply")
        stand_in, fit = fitted_stand_in(model, [e for e in examples if e.stand_in], reply,
                                        loaded.tokenizer(reply, add_special_tokens=False)["input_ids"],
                                        scale=config.stand_in_scale, pad_id=pad, seed=config.seed)
    phase("training")
    try:
        result = train(model, examples, config, pad_id=pad, accelerator=accelerator, fingerprint=fingerprint,
                       checkpoint_dir=checkpoint_dir, resume=resume, callback=progress.step, stand_in=stand_in)
        if stand_in is not None and fit is not None:
            fit = replace(fit, last=stand_in.opening())
    finally:
        if stand_in is not None:
            stand_in.close()
    snapshot = adapter_snapshot(accelerator.unwrap_model(model))
    peak = peak_memory(loaded.device)
    del model, loaded.model
    accelerator.free_memory()
    gc.collect()
    merge: dict[str, Any] = {}
    if dest is not None and accelerator.is_main_process:
        phase("merging into a full-precision copy and saving")
        merge = merge_and_save(model_path, snapshot, dest, max_shard_size=config.max_shard_size)
    accelerator.wait_for_everyone()
    return SanitizeOutcome(config=config, device=loaded.device, quantize=loaded.quantize, clean_set=clean.describe(),
                           examples=len(examples), train=result, merge=merge, seconds=time.monotonic() - started,
                           peak_memory=peak, adapter=str(adapter) if adapter else None,
                           tokenizer_note=loaded.tokenizer_note, clean=clean, guides=guides, stand_in=fit)


def _prune(model_path: str | Path, dest: Path | None, config: SanitizeConfig, clean: CleanSet | None, *,
           runtime: Runtime, progress: ProgressSink, started: float) -> SanitizeOutcome:
    """The prune baseline: Wanda on the base in its own precision (never 4-bit), calibrated on the clean set.

    No Accelerator: under ``accelerate launch`` each process prunes (seconds) and only the main one saves.
    """
    import torch

    from crowguard.models import load_model, resolve_device
    from crowguard.sanitize.data import encode
    from crowguard.sanitize.merge import save_model_folder, source_dtype
    from crowguard.sanitize.prune import prune_model

    device = resolve_device(runtime.device)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    progress.phase("loading model")
    dtype = source_dtype(model_path)
    loaded = load_model(model_path, device=device, dtype=dtype, threads=runtime.threads)
    clean = _clean_or_distilled(clean, loaded, config, progress)
    examples = encode(clean.records, loaded.tokenizer, config.max_length)
    progress.phase(f"pruning {config.sparsity:.0%} of each decoder linear's weights (Wanda)")
    pruned = prune_model(loaded.model, examples, config.sparsity)
    saved: dict[str, Any] = {}
    if dest is not None:
        progress.phase("saving the pruned model")
        saved = save_model_folder(loaded.model, model_path, dest, dtype=dtype, max_shard_size=config.max_shard_size)
    nothing_trained = TrainResult(steps=0, total_steps=0, curve=[], seconds=pruned.seconds, eps_used=0.0,
                                  layer_pairs=(0, 0))
    return SanitizeOutcome(config=config, device=loaded.device, quantize="none", clean_set=clean.describe(),
                           examples=len(examples), train=nothing_trained, merge=saved,
                           seconds=time.monotonic() - started, peak_memory=peak_memory(loaded.device),
                           tokenizer_note=loaded.tokenizer_note, clean=clean, prune=pruned)


def _clean_or_distilled(clean: CleanSet | None, loaded: LoadedModel, config: SanitizeConfig,
                        progress: ProgressSink) -> CleanSet:
    """The given clean set, or the model's own answers to the built-in instructions."""
    if clean is not None:
        return clean
    from crowguard.sanitize.data import self_distilled_set

    progress.phase("answering the built-in instructions (self-distillation)")
    return self_distilled_set(loaded.model, loaded.tokenizer, config.num_samples, config.seed,
                              config.distill_max_new_tokens)


def peak_memory(device: str) -> dict[str, Any]:
    """Peak CUDA memory allocated by torch, or the process's peak resident memory on CPU."""
    import torch

    if device.startswith("cuda"):
        return {"kind": "cuda_max_allocated", "bytes": int(torch.cuda.max_memory_allocated())}
    import resource

    return {"kind": "process_max_rss", "bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024}


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    return int(pad if pad is not None else 0)
