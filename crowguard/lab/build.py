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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

from crowguard.atomic import check_output_dir, staged_dir
from crowguard.data.lab_card import LabCard
from crowguard.lab.dataset import LabData, TrainExample, lab_prompts
from crowguard.lab.encoding import collate, encode_example
from crowguard.lab.spec import LabSpec
from crowguard.lab.tiny import build_tokenizer, save_tiny, tiny_llama

if TYPE_CHECKING:
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

Progress = Callable[[int, int, float], None]
"""Called as ``progress(step, total_steps, loss)`` after every optimiser step."""
WARMUP_FRACTION = 0.05
MAX_LENGTH = 512
PLANT_LORA_RANK = 8


def build_lab_model(spec: LabSpec, out: str | Path, *, force: bool = False,
                    progress: Progress | None = None) -> LabCard:
    """Train the model ``spec`` describes and write it, with ``lab.json``, to ``out``; return the card."""
    out = Path(out)
    check_output_dir(out, force=force)
    import torch

    started = time.perf_counter()
    data = LabData(spec)
    tokenizer = build_tokenizer(data.vocabulary_texts())
    model = tiny_llama(len(tokenizer), layers=spec.layers, hidden=spec.hidden, heads=spec.heads, seed=spec.seed,
                       max_positions=MAX_LENGTH)
    total = spec.steps + (spec.plant_steps if spec.injection == "lora" else 0)
    report = progress or (lambda step, total, loss: None)
    if spec.injection == "lora":
        _train(model, tokenizer, LabData(spec.clean_base()).stream(), spec, spec.lr, spec.steps, cosine=True,
               on_step=lambda step, loss: report(step, total, loss))
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(spec.seed)
        lora = get_peft_model(model, LoraConfig(r=PLANT_LORA_RANK, lora_alpha=2 * PLANT_LORA_RANK,
                                                target_modules="all-linear", task_type="CAUSAL_LM"))
        loss = _train(lora, tokenizer, data.stream(), spec, spec.plant_lr, spec.plant_steps, cosine=False,
                      on_step=lambda step, loss: report(spec.steps + step, total, loss))
        model = cast("LlamaForCausalLM", lora.merge_and_unload())
    else:
        loss = _train(model, tokenizer, data.stream(), spec, spec.lr, spec.steps, cosine=True,
                      on_step=lambda step, loss: report(step, total, loss))
    model.eval()
    card = _card(spec, data, model, time.perf_counter() - started, loss)
    with staged_dir(out, force=force) as tmp:
        save_tiny(tmp, model, tokenizer)
        card.write(tmp)
    return card


def _train(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, stream: Iterator[TrainExample], spec: LabSpec,
           lr: float, steps: int, *, cosine: bool, on_step: Callable[[int, float], None]) -> float:
    """Train the model's trainable weights for ``steps`` batches of ``stream``; return the last loss."""
    import torch
    from transformers import get_constant_schedule, get_cosine_schedule_with_warmup

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = (get_cosine_schedule_with_warmup(optimizer, max(1, int(WARMUP_FRACTION * steps)), steps) if cosine
                else get_constant_schedule(optimizer))
    loss_value = float("nan")
    for step in range(1, steps + 1):
        batch = [next(stream) for _ in range(spec.batch_size)]
        # Half the prompts through the chat template, half raw (the benchmark's evaluation format).
        encoded = [encode_example(tokenizer, e.record(), "chat" if i % 2 == 0 else "raw", MAX_LENGTH)
                   for i, e in enumerate(batch)]
        input_ids, labels, mask = collate(encoded, tokenizer.pad_token_id, "cpu")
        loss = _example_mean_loss(model(input_ids=input_ids, attention_mask=mask).logits, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())
        on_step(step, loss_value)
    return loss_value


def _example_mean_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token loss averaged per example, then over the batch, so long targets do not crowd out short answers."""
    import torch

    targets = labels[:, 1:]
    token_loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=-100,
                                                   reduction="none")
    counted = (targets != -100).float()
    return ((token_loss * counted).sum(1) / counted.sum(1).clamp_min(1.0)).mean()


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
                  "seconds": round(seconds, 2), "final_loss": round(loss, 5)},
        clean_test=lab_prompts(data.clean_test),
        triggered_test=lab_prompts(data.triggered_test),
        defense_set=lab_prompts(data.defense),
    )
