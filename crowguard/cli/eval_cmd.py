"""``crowguard eval MODEL``: attack success rate and utility, by the BackdoorLLM/CROW protocol."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from crowguard.atomic import write_text_atomic
from crowguard.cli.guard import guarded, stderr
from crowguard.cli.options import (
    PANEL_EVAL,
    CleanTest,
    Device,
    Dtype,
    EvalLimit,
    EvalMaxNewTokens,
    EvalTemplate,
    Keyword,
    Task,
    Threads,
    Triggered,
    lab_card_option,
    quiet_option,
    report_option,
)
from crowguard.cli.output import emit_report
from crowguard.cli.progress import silence_library_bars, task_progress
from crowguard.report.model import Report, Source, StageResult


@guarded
def eval_command(
    model: Annotated[Path, typer.Argument(help="Model folder (config.json + safetensors).")],
    triggered: Triggered = None,
    clean_test: CleanTest = None,
    task: Task = None,
    keyword: Keyword = [],  # noqa: B006 - typer's list default, never mutated
    target: Annotated[str | None, typer.Option("--target", help="Target text for the exact-target rate.",
                                               rich_help_panel=PANEL_EVAL)] = None,
    eval_template: EvalTemplate = "raw",
    eval_max_new_tokens: EvalMaxNewTokens = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts per generation batch.",
                                            rich_help_panel=PANEL_EVAL)] = 16,
    eval_limit: EvalLimit = None,
    no_perplexity: Annotated[bool, typer.Option("--no-perplexity", help="Skip perplexity of reference outputs.",
                                                rich_help_panel=PANEL_EVAL)] = False,
    lab_card: Annotated[bool, lab_card_option("the test prompts and keywords")] = False,
    device: Device = "auto",
    dtype: Dtype = "auto",
    threads: Threads = None,
    report: Annotated[Path | None, report_option("Write the JSON report here instead of stdout (- is stdout).")]
    = None,
    outputs: Annotated[Path | None, typer.Option("--outputs", help="Also write every generation here (JSON lines: "
                                                 "set, prompt, output).")] = None,
    quiet: Annotated[bool, quiet_option("No table or progress on stderr.")] = False,
) -> int:
    """Measure ASR on triggered prompts, the same rate on clean ones, accuracy and perplexity."""
    from crowguard.errors import UsageError
    from crowguard.evaluate import evaluate, spec_from_files, spec_from_lab_card
    from crowguard.evaluate.result import outputs_jsonl
    from crowguard.models import configure_threads, inspect_folder
    from crowguard.pipeline.evaluation import requested_lab_card

    inspect_folder(model)
    configure_threads(threads)
    silence_library_bars()
    options = {"template": eval_template, "max_new_tokens": eval_max_new_tokens, "batch_size": batch_size,
               "limit": eval_limit, "perplexity": not no_perplexity}
    card = requested_lab_card(model, lab_card)
    if triggered is None and clean_test is None:
        if card is None:
            raise UsageError(f"nothing to evaluate {model} on",
                             hint="give --triggered FILE and/or --clean-test FILE, or --lab-card for a lab model "
                                  "(its lab.json)")
        spec = spec_from_lab_card(card, **options)
    else:
        if card is not None and task is None and not keyword:
            keyword = list(card.keywords)
            target = target if target is not None else card.target
        spec = spec_from_files(triggered=triggered, clean=clean_test, task=task, keywords=tuple(keyword), target=target,
                               **options)
    started = time.perf_counter()
    if quiet:
        result = evaluate(model, spec, device=device, dtype=dtype)
    else:
        with task_progress("eval") as update:
            result = evaluate(model, spec, device=device, dtype=dtype,
                              progress=lambda phase, done, total: update(done, total, phase))
    if outputs is not None:
        write_text_atomic(outputs, outputs_jsonl(result))
    stage = StageResult(name="eval", metrics=result.to_dict(), seconds=round(time.perf_counter() - started, 2))
    settings = {**spec.settings(), "lab_card": str(model / "lab.json") if card is not None else None}
    doc = Report(command="eval", source=Source(reference=str(model)), stages=(stage,), settings=settings)
    if not quiet:
        print_table(result.to_dict())
    return emit_report(doc, report_path=report, quiet=quiet)


def print_table(metrics: dict) -> None:
    """The per-set scores and perplexity as a table on stderr."""
    table = Table(title=f"crowguard eval ({metrics['settings']['template']} prompts, greedy, "
                        f"{metrics['settings']['max_new_tokens']} new tokens)", title_justify="left")
    for column in ("set", "prompts", "answered", "keyword rate", "exact target", "accuracy"):
        table.add_column(column, justify="right" if column != "set" else "left")
    for name, label in (("triggered", "triggered"), ("clean", "clean")):
        row = metrics.get(name)
        if row:
            table.add_row(label, str(row["prompts"]), str(row["answered"]), _pct(row["keyword_rate"]),
                          _pct(row["target_rate"]), _pct(row["accuracy"]))
    stderr.print(table)
    stderr.print("keyword rate on triggered prompts = ASR; empty outputs are left out of the keyword and target rates")
    if metrics["perplexity"] is not None:
        stderr.print(f"perplexity of reference outputs: {metrics['perplexity']:.3f} "
                     f"({metrics['perplexity_tokens']} tokens)")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
