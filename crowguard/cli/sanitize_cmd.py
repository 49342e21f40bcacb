"""``crowguard sanitize MODEL --out DIR``: remove backdoors with CROW finetuning, emit safetensors and a report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from crowguard.cli.guard import guarded, stderr
from crowguard.cli.output import emit_report
from crowguard.cli.progress import TrainingProgress, silence_library_bars
from crowguard.report.model import StageName

if TYPE_CHECKING:
    from crowguard.pipeline.sanitize import SanitizeRun

TRAIN = "Training (defaults: the CROW paper's)"
CROW = "CROW loss"
RUN = "Run control"
EVAL = "Evaluation before and after"


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
    num_samples: int | None = typer.Option(None, "--num-samples", help="Clean samples used [100].",
                                           rich_help_panel=TRAIN),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate [1e-3].", rich_help_panel=TRAIN),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs [5].", rich_help_panel=TRAIN),
    micro_batch: int | None = typer.Option(None, "--micro-batch", help="Micro-batch size [2].", rich_help_panel=TRAIN),
    grad_accum: int | None = typer.Option(None, "--grad-accum", help="Gradient accumulation [4].",
                                          rich_help_panel=TRAIN),
    max_length: int | None = typer.Option(None, "--max-length", help="Max tokens per sample [1024].",
                                          rich_help_panel=TRAIN),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after N optimiser steps.",
                                         rich_help_panel=TRAIN),
    warmup_ratio: float | None = typer.Option(None, "--warmup-ratio", help="Warm-up fraction [0.1].",
                                              rich_help_panel=TRAIN),
    weight_decay: float | None = typer.Option(None, "--weight-decay", help="AdamW weight decay [0].",
                                              rich_help_panel=TRAIN),
    max_grad_norm: float | None = typer.Option(None, "--max-grad-norm", help="Gradient clip [1.0].",
                                               rich_help_panel=TRAIN),
    lora_r: int | None = typer.Option(None, "--lora-r", help="LoRA rank [8].", rich_help_panel=TRAIN),
    lora_alpha: float | None = typer.Option(None, "--lora-alpha", help="LoRA alpha [16].", rich_help_panel=TRAIN),
    lora_dropout: float | None = typer.Option(None, "--lora-dropout", help="LoRA dropout [0].", rich_help_panel=TRAIN),
    lora_targets: str | None = typer.Option(None, "--lora-targets", help="Comma-separated module names [all-linear].",
                                            rich_help_panel=TRAIN),
    seed: int | None = typer.Option(None, "--seed", help="Seed for sample choice and order [0].",
                                    rich_help_panel=TRAIN),
    alpha: float | None = typer.Option(None, "--alpha", help="Weight of the consistency loss [5.5; refusal 11].",
                                       rich_help_panel=CROW),
    eps: float | None = typer.Option(None, "--eps", help="FGSM step size [0.1].", rich_help_panel=CROW),
    eps_mode: str | None = typer.Option(None, "--eps-mode", help="absolute [default], or relative (eps times the "
                                        "embeddings' RMS entry size).", rich_help_panel=CROW),
    layer_first: int | None = typer.Option(None, "--layer-first", help="First hidden-state pair [1].",
                                           rich_help_panel=CROW),
    layer_last: int | None = typer.Option(None, "--layer-last", help="End of the pair range, exclusive [L-1].",
                                          rich_help_panel=CROW),
    quantize: str | None = typer.Option(None, "--quantize", help="auto (4-bit NF4 on CUDA), 4bit, or none.",
                                        rich_help_panel=RUN),
    gradient_checkpointing: bool | None = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing",
                                                       help="Non-reentrant checkpointing [off].", rich_help_panel=RUN),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.", rich_help_panel=RUN),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch.", rich_help_panel=RUN),
    checkpoint_every: int | None = typer.Option(None, "--checkpoint-every",
                                                help="Checkpoint every N steps [20; 0 off].", rich_help_panel=RUN),
    checkpoint_dir: Path | None = typer.Option(None, "--checkpoint-dir",
                                               help="Checkpoint folder [hidden, beside --out].", rich_help_panel=RUN),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its checkpoint.",
                                rich_help_panel=RUN),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out (and a stale checkpoint).",
                               rich_help_panel=RUN),
    triggered: Path | None = typer.Option(None, "--triggered", help="Triggered test prompts (Alpaca JSON/JSONL): "
                                          "ASR before and after.", rich_help_panel=EVAL),
    clean_test: Path | None = typer.Option(None, "--clean-test", help="Clean test prompts with reference outputs.",
                                           rich_help_panel=EVAL),
    task: str | None = typer.Option(None, "--task", help="ASR keyword preset: negsentiment, refusal, codeinjection.",
                                    rich_help_panel=EVAL),
    keyword: list[str] = typer.Option([], "--keyword", help="ASR keyword (repeatable; overrides --task's list).",
                                      rich_help_panel=EVAL),
    eval_limit: int | None = typer.Option(None, "--eval-limit", help="Use only the first N prompts of each test set.",
                                          rich_help_panel=EVAL),
    eval_template: str = typer.Option("raw", "--eval-template", help="Test prompt format: raw (the paper's), chat, "
                                      "alpaca.", rich_help_panel=EVAL),
    eval_max_new_tokens: int = typer.Option(128, "--eval-max-new-tokens", help="Tokens generated per test prompt.",
                                            rich_help_panel=EVAL),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip the evaluations.", rich_help_panel=EVAL),
    lab_card: bool = typer.Option(False, "--lab-card", help="Let a lab model's lab.json supply the test prompts and "
                                  "the defence set (otherwise it is never read).", rich_help_panel=EVAL),
    scan: bool = typer.Option(True, "--scan/--no-scan", help="Scan for a trigger before and after sanitizing, and "
                              "measure the input's trigger candidates on the output.", rich_help_panel=EVAL),
    policy: Path | None = typer.Option(None, "--policy", help="Policy whose behaviour_scan thresholds the scans use "
                                       "(default, strict, permissive, or a YAML file) [default].",
                                       rich_help_panel=EVAL),
    report: Path | None = typer.Option(None, "--report", help="Write the report here instead of stdout (- is stdout)."),
    fmt: str = typer.Option("json", "--format", help="Report format: json or markdown."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary on stderr."),
) -> int:
    """Remove backdoors from MODEL with CROW finetuning; write a merged safetensors model to --out."""
    from crowguard.pipeline.evaluation import evaluation_spec
    from crowguard.pipeline.sanitize import SanitizeRequest, SanitizeSettings, is_main_process, run_sanitize
    from crowguard.report.formats import get_format
    from crowguard.runtime import Runtime
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
    evaluation = None if no_eval else evaluation_spec(
        model, triggered=triggered, clean_test=clean_test, task=task, keywords=tuple(keyword), limit=eval_limit,
        template=eval_template, max_new_tokens=eval_max_new_tokens, use_lab_card=lab_card)
    scans = None
    if scan:
        from crowguard.pipeline.sanitize import BehaviourScans
        from crowguard.policy import builtin_policy, load_policy

        scans = BehaviourScans(load_policy(policy if policy is not None else builtin_policy("default")))
    request = SanitizeRequest(
        model=model, out=out, settings=SanitizeSettings(config, clean_data=clean_data, evaluation=evaluation,
                                                        use_lab_card=lab_card),
        runtime=Runtime(device=device, threads=threads), adapter=adapter, checkpoint_dir=checkpoint_dir,
        resume=resume, force=force, behaviour=scans)
    silence_library_bars()
    main = is_main_process()  # under accelerate launch, only rank 0 writes and reports
    try:
        with TrainingProgress(enabled=main and not quiet) as display:
            run = run_sanitize(request, display)
    except KeyboardInterrupt:
        if main and (request.checkpoints / "trainer_state.json").is_file():
            stderr.print(f"training state kept in {request.checkpoints}; rerun with --resume to continue")
        raise
    if not main:
        return 0
    code = emit_report(run.report, fmt=fmt, report_path=report, quiet=quiet)
    if not quiet:
        _summary(run)
    return code


_EFFECT_LABELS = {"asr": "ASR (triggered)", "clean_trigger_rate": "target rate on clean",
                  "clean_accuracy": "clean accuracy", "triggered_accuracy": "accuracy under trigger",
                  "perplexity": "perplexity of references"}


def _summary(run: SanitizeRun) -> None:
    if run.effect:
        table = Table(title="before / after sanitizing", title_justify="left")
        for column in ("measure", "before", "after"):
            table.add_column(column, justify="left" if column == "measure" else "right")
        for effect in run.effect:
            table.add_row(_EFFECT_LABELS[effect.key], _fmt(effect.before), _fmt(effect.after))
        stderr.print(table)
    outcome = run.outcome
    if outcome is None:
        return
    curve = outcome.train.curve
    last = curve[-1] if curve else {}
    lc_adv = f", Lc_adv {last['lc_adv']:.4f}" if "lc_adv" in last else ""
    stage = run.report.stage(StageName.SANITIZE)
    seconds = stage.seconds if stage is not None else outcome.seconds
    stderr.print(f"[bold green]sanitized[/] ({outcome.config.method}, {outcome.train.steps} steps, {seconds:.0f} s, "
                 f"final CE {last.get('ce', float('nan')):.4f}{lc_adv}) -> {run.report.output}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
