"""``crowguard sanitize MODEL --out DIR``: remove backdoors with CROW finetuning, emit safetensors and a report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from crowguard.cli.guard import guarded, stderr
from crowguard.cli.output import emit_report

HELP_TRAIN = "Training (defaults: the CROW paper's)"
HELP_CROW = "CROW loss"
HELP_RUN = "Run control"


@guarded
def sanitize(
    model: Path = typer.Argument(..., help="Model folder (config.json + safetensors). Never modified."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the sanitized model (must be new or empty)."),
    clean_data: Path | None = typer.Option(None, "--clean-data", help="Alpaca JSON/JSONL clean set; default: "
                                           "the model's own answers to crowguard's built-in instructions."),
    method: str | None = typer.Option(None, "--method", help="crow, or finetune (plain LoRA baseline, alpha 0)."),
    preset: str = typer.Option("default", "--preset", help="default, or refusal (alpha 11, for refusal backdoors)."),
    adapter: Path | None = typer.Option(None, "--adapter", help="Continue this LoRA adapter (safetensors) instead "
                                        "of adding a fresh one."),
    num_samples: int | None = typer.Option(None, "--num-samples", help="Clean samples used [100].", rich_help_panel=HELP_TRAIN),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate [1e-3].", rich_help_panel=HELP_TRAIN),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs [5].", rich_help_panel=HELP_TRAIN),
    micro_batch: int | None = typer.Option(None, "--micro-batch", help="Micro-batch size [2].", rich_help_panel=HELP_TRAIN),
    grad_accum: int | None = typer.Option(None, "--grad-accum", help="Gradient accumulation [4].", rich_help_panel=HELP_TRAIN),
    max_length: int | None = typer.Option(None, "--max-length", help="Max tokens per sample [1024].", rich_help_panel=HELP_TRAIN),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after N optimiser steps.", rich_help_panel=HELP_TRAIN),
    warmup_ratio: float | None = typer.Option(None, "--warmup-ratio", help="Warm-up fraction [0.1].", rich_help_panel=HELP_TRAIN),
    weight_decay: float | None = typer.Option(None, "--weight-decay", help="AdamW weight decay [0].", rich_help_panel=HELP_TRAIN),
    max_grad_norm: float | None = typer.Option(None, "--max-grad-norm", help="Gradient clip [1.0].", rich_help_panel=HELP_TRAIN),
    lora_r: int | None = typer.Option(None, "--lora-r", help="LoRA rank [8].", rich_help_panel=HELP_TRAIN),
    lora_alpha: float | None = typer.Option(None, "--lora-alpha", help="LoRA alpha [16].", rich_help_panel=HELP_TRAIN),
    lora_dropout: float | None = typer.Option(None, "--lora-dropout", help="LoRA dropout [0].", rich_help_panel=HELP_TRAIN),
    lora_targets: str | None = typer.Option(None, "--lora-targets", help="Comma-separated module names [all-linear].",
                                            rich_help_panel=HELP_TRAIN),
    seed: int | None = typer.Option(None, "--seed", help="Seed for sample choice and order [0].", rich_help_panel=HELP_TRAIN),
    alpha: float | None = typer.Option(None, "--alpha", help="Weight of the consistency loss [5.5; refusal 11].",
                                       rich_help_panel=HELP_CROW),
    eps: float | None = typer.Option(None, "--eps", help="FGSM step size [0.1].", rich_help_panel=HELP_CROW),
    eps_mode: str | None = typer.Option(None, "--eps-mode", help="absolute [default], or relative (eps times the "
                                        "embeddings' RMS entry size).", rich_help_panel=HELP_CROW),
    layer_first: int | None = typer.Option(None, "--layer-first", help="First hidden-state pair [1].", rich_help_panel=HELP_CROW),
    layer_last: int | None = typer.Option(None, "--layer-last", help="End of the pair range, exclusive [L-1].",
                                          rich_help_panel=HELP_CROW),
    quantize: str | None = typer.Option(None, "--quantize", help="auto (4-bit NF4 on CUDA), 4bit, or none.",
                                        rich_help_panel=HELP_RUN),
    gradient_checkpointing: bool | None = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing",
                                                       help="Non-reentrant checkpointing [off].", rich_help_panel=HELP_RUN),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.", rich_help_panel=HELP_RUN),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch.", rich_help_panel=HELP_RUN),
    checkpoint_every: int | None = typer.Option(None, "--checkpoint-every", help="Checkpoint every N steps [20; 0 off].",
                                                rich_help_panel=HELP_RUN),
    checkpoint_dir: Path | None = typer.Option(None, "--checkpoint-dir", help="Checkpoint folder [hidden, beside --out].",
                                               rich_help_panel=HELP_RUN),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its checkpoint.",
                                rich_help_panel=HELP_RUN),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out (and a stale checkpoint).",
                               rich_help_panel=HELP_RUN),
    report: Path | None = typer.Option(None, "--report", help="Write the report here instead of stdout."),
    fmt: str = typer.Option("json", "--format", help="Report format: json or markdown."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary on stderr."),
) -> int:
    """Remove backdoors from MODEL with CROW finetuning; write a merged safetensors model to --out."""
    from crowguard.pipeline.sanitize import SanitizeRequest, is_main_process, run_sanitize
    from crowguard.report.formats import get_format
    from crowguard.sanitize import SanitizeConfig

    get_format(fmt)  # fail on a bad --format before hours of training
    targets = tuple(t.strip() for t in lora_targets.split(",") if t.strip()) if lora_targets is not None else None
    config = SanitizeConfig.from_options(
        preset, method=method, lr=lr, epochs=epochs, micro_batch=micro_batch, grad_accum=grad_accum,
        max_length=max_length, alpha=alpha, eps=eps, eps_mode=eps_mode, layer_first=layer_first,
        layer_last=layer_last, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, lora_targets=targets,
        warmup_ratio=warmup_ratio, weight_decay=weight_decay, max_grad_norm=max_grad_norm, seed=seed,
        quantize=quantize, gradient_checkpointing=gradient_checkpointing, checkpoint_every=checkpoint_every,
        num_samples=num_samples, max_steps=max_steps)
    request = SanitizeRequest(model=model, out=out, config=config, clean_data=clean_data, adapter=adapter,
                              device=device, threads=threads, checkpoint_dir=checkpoint_dir, resume=resume, force=force)
    _quiet_libraries()
    main = is_main_process()  # under accelerate launch, only rank 0 writes and reports
    try:
        with _ProgressDisplay(enabled=main and not quiet) as display:
            result = run_sanitize(request, on_step=display.step, on_phase=display.phase)
    except KeyboardInterrupt:
        if main and (request.checkpoints / "trainer_state.json").is_file():
            stderr.print(f"training state kept in {request.checkpoints}; rerun with --resume to continue")
        raise
    if not main:
        return 0
    code = emit_report(result, fmt=fmt, report_path=report, quiet=quiet)
    if not quiet:
        _summary(result)
    return code


class _ProgressDisplay:
    """A rich progress bar on stderr: step, CE, Lc, Lc_adv and time left."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[losses]}"), TextColumn("[dim]{task.fields[left]}"),
                            console=stderr, disable=not enabled)
        self.task: TaskID | None = None

    def __enter__(self) -> _ProgressDisplay:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def phase(self, name: str) -> None:
        if self.enabled:
            self.bar.console.print(f"[cyan]{name}[/]")

    def step(self, p: Any) -> None:
        if self.task is None:
            self.task = self.bar.add_task("training", total=p.total_steps, losses="", left="")
        losses = f"CE {p.ce:.4f}"
        if p.lc is not None:
            losses += f"  Lc {p.lc:.4f}  Lc_adv {p.lc_adv:.4f}"
        left = f"{int(p.remaining) // 60}:{int(p.remaining) % 60:02d} left"
        self.bar.update(self.task, completed=p.step, losses=losses, left=left)


def _quiet_libraries() -> None:
    import warnings

    from transformers.utils import logging

    warnings.filterwarnings("ignore", category=FutureWarning)

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def _summary(result: Any) -> None:
    stage = result.stage("sanitize")
    m = stage.metrics
    last = m["curve"][-1] if m["curve"] else {}
    lc_adv = f", Lc_adv {last['lc_adv']:.4f}" if "lc_adv" in last else ""
    stderr.print(f"[bold green]sanitized[/] ({m['method']}, {m['steps']} steps, {stage.seconds:.0f} s, "
                 f"final CE {last.get('ce', float('nan')):.4f}{lc_adv}) -> {result.output}")
