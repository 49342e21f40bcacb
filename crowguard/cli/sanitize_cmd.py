"""``crowguard sanitize MODEL --out DIR``: remove backdoors with CROW finetuning, emit safetensors and a report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from crowguard.cli.behaviour_options import with_behaviour_options
from crowguard.cli.guard import guarded, stderr
from crowguard.cli.options import (
    PANEL_BEHAVIOUR,
    PANEL_EVAL,
    PANEL_RUN,
    Candidates,
    CleanData,
    CleanTest,
    Device,
    Dtype,
    EvalLimit,
    EvalMaxNewTokens,
    EvalTemplate,
    Keyword,
    Quiet,
    Reply,
    Report,
    ReportFormat,
    Task,
    Threads,
    Triggered,
    force_option,
    lab_card_option,
    out_option,
    policy_option,
)
from crowguard.cli.output import emit_report, format_for_path
from crowguard.cli.progress import TrainingProgress, silence_library_bars
from crowguard.cli.sanitize_options import with_sanitize_settings
from crowguard.report.model import StageName
from crowguard.sanitize.config import SanitizeConfig
from crowguard.scan.behaviour.options import BehaviourOptions

if TYPE_CHECKING:
    from crowguard.pipeline.sanitize import SanitizeRun

@guarded
@with_behaviour_options
@with_sanitize_settings
def sanitize(
    model: Annotated[Path, typer.Argument(help="Model folder (config.json + safetensors). Never modified.")],
    out: Annotated[Path, out_option("Folder for the sanitized model (must be new or empty).")],
    clean_data: CleanData = None,
    candidates: Candidates = None,
    reply: Reply = None,
    *,
    config: SanitizeConfig,  # replaced by every sanitize setting and --sanitize-config
    adapter: Annotated[Path | None, typer.Option("--adapter", help="Continue this LoRA adapter (safetensors) "
                                                 "instead of adding a fresh one.")] = None,
    checkpoint_dir: Annotated[Path | None, typer.Option("--checkpoint-dir", help="Checkpoint folder; default: a hidden "
                                                        "one beside --out.", rich_help_panel=PANEL_RUN)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its checkpoint.",
                                         rich_help_panel=PANEL_RUN)] = False,
    force: Annotated[bool, force_option("Replace a non-empty --out (and a stale checkpoint).")] = False,
    device: Device = "auto",
    threads: Threads = None,
    dtype: Dtype = "auto",
    triggered: Triggered = None,
    clean_test: CleanTest = None,
    task: Task = None,
    keyword: Keyword = [],  # noqa: B006 - typer's list default, never mutated
    eval_limit: EvalLimit = None,
    eval_template: EvalTemplate = "raw",
    eval_max_new_tokens: EvalMaxNewTokens = 128,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="Skip the evaluations.", rich_help_panel=PANEL_EVAL)]
    = False,
    lab_card: Annotated[bool, lab_card_option("the test prompts and the defence set")] = False,
    scan: Annotated[bool, typer.Option("--scan/--no-scan", help="Scan for a trigger before and after sanitizing, and "
                                       "measure the input's trigger candidates on the output.",
                                       rich_help_panel=PANEL_BEHAVIOUR)] = True,
    behaviour_options: BehaviourOptions,  # replaced by the behavioural scan's options
    policy: Annotated[Path | None, policy_option("Policy that decides the exit code over the sanitized model "
                                                 "(re-scans, utility, attack success) and sets the scans' "
                                                 "thresholds: default, strict, permissive, or a YAML file; "
                                                 "default: default.",
                                                 panel=PANEL_EVAL)] = None,
    report: Report = None,
    fmt: ReportFormat = None,
    quiet: Quiet = False,
) -> int:
    """Remove backdoors from MODEL with CROW finetuning; write a merged safetensors model to --out."""
    from crowguard.pipeline.evaluation import evaluation_spec
    from crowguard.pipeline.sanitize import SanitizeRequest, SanitizeSettings, is_main_process, run_sanitize
    from crowguard.report.formats import get_format
    from crowguard.runtime import Runtime

    fmt = fmt or format_for_path(report)
    get_format(fmt)  # fail on a bad --format before hours of training
    from crowguard.sanitize.guided import load_guides

    guides = load_guides(candidates) if candidates is not None else ()
    evaluation = None if no_eval else evaluation_spec(
        model, triggered=triggered, clean_test=clean_test, task=task, keywords=tuple(keyword), limit=eval_limit,
        template=eval_template, max_new_tokens=eval_max_new_tokens, use_lab_card=lab_card)
    from crowguard.pipeline.sanitize import BehaviourScans
    from crowguard.policy import builtin_policy, load_policy

    loaded = load_policy(policy if policy is not None else builtin_policy("default"))
    request = SanitizeRequest(
        model=model, out=out, settings=SanitizeSettings(config, clean_data=clean_data, evaluation=evaluation,
                                                        guides=guides, reply=reply, use_lab_card=lab_card),
        runtime=Runtime(device=device, threads=threads, dtype=dtype), adapter=adapter, checkpoint_dir=checkpoint_dir,
        policy=loaded, resume=resume, force=force, behaviour=BehaviourScans(behaviour_options) if scan else None)
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
    if outcome.prune is not None:
        pruned = outcome.prune
        stderr.print(f"[bold green]sanitized[/] (prune, Wanda: {pruned.zeroed_share:.1%} of the weights of "
                     f"{pruned.linears} decoder linears zeroed, {pruned.calibration_tokens} calibration tokens, "
                     f"{seconds:.0f} s) -> {run.report.output}")
        return
    stderr.print(f"[bold green]sanitized[/] ({outcome.config.method}, {outcome.train.steps} steps, {seconds:.0f} s, "
                 f"final CE {last.get('ce', float('nan')):.4f}{lc_adv}) -> {run.report.output}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
