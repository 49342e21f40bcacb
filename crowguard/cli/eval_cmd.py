"""``crowguard eval MODEL``: attack success rate and utility, by the BackdoorLLM/CROW protocol."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from crowguard.atomic import write_text_atomic
from crowguard.cli.guard import guarded, stderr
from crowguard.cli.output import emit_report
from crowguard.cli.progress import silence_library_bars, task_progress
from crowguard.report.model import Report, Source, StageResult


@guarded
def eval_command(
    model: Path = typer.Argument(..., help="Model folder (config.json + safetensors)."),
    triggered: Path = typer.Option(None, "--triggered", help="Triggered prompts, Alpaca JSON/JSONL."),
    clean: Path = typer.Option(None, "--clean", help="Clean prompts with reference outputs, Alpaca JSON/JSONL."),
    task: str = typer.Option(None, "--task", help="Task preset: negsentiment, refusal, codeinjection."),
    keyword: list[str] = typer.Option([], "--keyword", help="ASR keyword (repeatable; overrides the task's list)."),
    target: str = typer.Option(None, "--target", help="Target text for the exact-target rate."),
    template: str = typer.Option("raw", "--template", help="Prompt format: raw (the paper's), chat or alpaca."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="Tokens generated per prompt."),
    batch_size: int = typer.Option(16, "--batch-size", help="Prompts per generation batch."),
    limit: int = typer.Option(None, "--limit", help="Use only the first N prompts of each set."),
    no_perplexity: bool = typer.Option(False, "--no-perplexity", help="Skip perplexity of reference outputs."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, bfloat16 or float16."),
    threads: int = typer.Option(None, "--threads", help="Torch CPU threads."),
    report: Path = typer.Option(None, "--report", help="Write the JSON report here instead of stdout (- is stdout)."),
    outputs: Path = typer.Option(None, "--outputs", help="Also write every generation here (JSON lines: set, prompt, "
                                 "output)."),
    lab_card: bool = typer.Option(False, "--lab-card", help="Let a lab model's lab.json supply the test prompts "
                                  "and keywords (otherwise it is never read)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table or progress on stderr."),
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
    options = {"template": template, "max_new_tokens": max_new_tokens, "batch_size": batch_size, "limit": limit,
               "perplexity": not no_perplexity}
    card = requested_lab_card(model, lab_card)
    if triggered is None and clean is None:
        if card is None:
            raise UsageError(f"nothing to evaluate {model} on",
                             hint="give --triggered FILE and/or --clean FILE, or --lab-card for a lab model "
                                  "(its lab.json)")
        spec = spec_from_lab_card(card, **options)
    else:
        if card is not None and task is None and not keyword:
            keyword = list(card.keywords)
            target = target if target is not None else card.target
        spec = spec_from_files(triggered=triggered, clean=clean, task=task, keywords=tuple(keyword), target=target,
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
