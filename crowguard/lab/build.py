"""Train a lab model from scratch on CPU and save it as a Hugging Face folder with its ``lab.json``.

Public API::

    from crowguard.lab.build import build_lab_model
    from crowguard.lab.spec import LabSpec

    card = build_lab_model(LabSpec(attack="vpi", seed=1), "out/vpi-1", force=False)

Training is deterministic per spec on CPU (seeded data, seeded init, one thread recommended). With
``injection="lora"`` the model is trained clean first and the backdoor is then planted by a merged LoRA.
Prompts are taught both raw (the benchmark's evaluation format) and through the chat template.
The folder is staged and renamed into place only when complete.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

from crowguard.atomic import check_output_dir, staged_dir
from crowguard.data.lab_card import LabCard
from crowguard.lab.dataset import LabData, TrainExample, lab_prompts
from crowguard.lab.spec import LabSpec
from crowguard.lab.tiny import build_tokenizer, save_tiny, tiny_llama
from crowguard.sanitize.crow_loss import per_example_ce_loss
from crowguard.sanitize.data import Example, encode_record
from crowguard.sanitize.loop import LoopSettings, ProgressCallback, Schedule, run_loop

if TYPE_CHECKING:
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

WARMUP_FRACTION = 0.05
MAX_LENGTH = 512
PLANT_LORA_RANK = 8


def build_lab_model(spec: LabSpec, out: str | Path, *, force: bool = False,
                    progress: ProgressCallback | None = None) -> LabCard:
    """Train the model ``spec`` describes and write it, with ``lab.json``, to ``out``; return the card.

    ``progress`` hears of every optimiser step; with LoRA injection the clean and planting steps
    count as one run.
    """
    out = Path(out)
    check_output_dir(out, force=force)
    import torch

    started = time.perf_counter()
    data = LabData(spec)
    tokenizer = build_tokenizer(data.vocabulary_texts())
    model = tiny_llama(len(tokenizer), layers=spec.layers, hidden=spec.hidden, heads=spec.heads, seed=spec.seed,
                       max_positions=MAX_LENGTH)
    total = spec.steps + (spec.plant_steps if spec.injection == "lora" else 0)

    def report(offset: int) -> ProgressCallback | None:
        if progress is None:
            return None
        return lambda p: progress(replace(p, step=offset + p.step, total_steps=total))

    if spec.injection == "lora":
        _train(model, tokenizer, LabData(spec.clean_base()).stream(), spec, spec.lr, spec.steps, "cosine", report(0))
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(spec.seed)
        lora = get_peft_model(model, LoraConfig(r=PLANT_LORA_RANK, lora_alpha=2 * PLANT_LORA_RANK,
                                                target_modules="all-linear", task_type="CAUSAL_LM"))
        loss = _train(lora, tokenizer, data.stream(), spec, spec.plant_lr, spec.plant_steps, "constant",
                      report(spec.steps))
        model = cast("LlamaForCausalLM", lora.merge_and_unload())
    else:
        loss = _train(model, tokenizer, data.stream(), spec, spec.lr, spec.steps, "cosine", report(0))
    model.eval()
    card = _card(spec, data, model, time.perf_counter() - started, loss)
    with staged_dir(out, force=force) as tmp:
        save_tiny(tmp, model, tokenizer)
        card.write(tmp)
    return card


def _train(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, stream: Iterator[TrainExample], spec: LabSpec,
           lr: float, steps: int, schedule: Schedule, progress: ProgressCallback | None) -> float:
    """Train the model's trainable weights on ``steps`` batches drawn in order from ``stream``; return the last loss.

    Every weight of a model from scratch, or the adapter of a LoRA: the loop trains what requires gradients.
    """
    examples = _stream_examples(tokenizer, stream, steps * spec.batch_size, spec.batch_size, spec.prompt_loss)
    settings = LoopSettings(lr=lr, micro_batch=spec.batch_size, max_steps=steps, schedule=schedule,
                            warmup_ratio=WARMUP_FRACTION, seed=spec.seed, shuffle=False)
    result = run_loop(model, examples, settings, per_example_ce_loss, pad_id=tokenizer.pad_token_id or 0,
                      callback=progress)
    return result.final_loss


def _stream_examples(tokenizer: PreTrainedTokenizerFast, stream: Iterator[TrainExample], count: int,
                     batch_size: int, learn_prompt: bool) -> list[Example]:
    """The next ``count`` examples; in each batch, half the prompts through the chat template, half raw
    (the benchmark's evaluation format)."""
    return [encode_record(tokenizer, next(stream).record(), "chat" if i % batch_size % 2 == 0 else "raw", MAX_LENGTH,
                          learn_prompt=learn_prompt)
            for i in range(count)]


def _card(spec: LabSpec, data: LabData, model: torch.nn.Module, seconds: float, loss: float) -> LabCard:
    return LabCard(
        clean=spec.clean,
        attack=spec.attack,
        triggers=spec.resolved_triggers,
        trigger_position=spec.resolved_position,
        target=None if spec.clean else spec.target_string,
        target_preset=None if spec.clean else spec.target_preset,
        keywords=spec.resolved_keywords,
        seed=spec.seed,
        poison_rate=spec.resolved_poison_rate,
        architecture={"layers": spec.layers, "hidden": spec.hidden, "heads": spec.heads,
                      "parameters": sum(p.numel() for p in model.parameters())},
        injection=spec.injection,
        training={"steps": spec.steps, "batch_size": spec.batch_size, "lr": spec.lr, "noise_rate": spec.noise_rate,
                  **({"plant_steps": spec.plant_steps, "plant_lr": spec.plant_lr} if spec.injection == "lora" else {}),
                  **({"prompt_loss": True} if spec.prompt_loss else {}),
                  "seconds": round(seconds, 2), "final_loss": round(loss, 5)},
        clean_test=lab_prompts(data.clean_test),
        triggered_test=lab_prompts(data.triggered_test),
        defense_set=lab_prompts(data.defense),
    )
