"""``crowguard scan MODEL``: the file scan and the behavioural backdoor scan under a policy; exit by verdict."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from crowguard.cli.behaviour_options import with_behaviour_options
from crowguard.cli.guard import guarded, stderr
from crowguard.cli.options import (
    PANEL_BEHAVIOUR,
    Device,
    Dtype,
    Quiet,
    Report,
    ReportFormat,
    policy_option,
    threads_option,
)
from crowguard.cli.output import emit_report, format_for_path, print_summary
from crowguard.cli.progress import silence_library_bars, task_progress
from crowguard.policy import builtin_policy, load_policy
from crowguard.progress import Count
from crowguard.report.formats import get_format
from crowguard.report.write import write_report_dir
from crowguard.scan.behaviour.options import BehaviourOptions


@guarded
@with_behaviour_options
def scan(
    model: Annotated[Path, typer.Argument(help="Local model folder to scan.")],
    policy: Annotated[Path | None, policy_option("Shipped policy (default, strict, permissive) or a policy YAML "
                                                 "file. Default: default (fails on high, safetensors only, no "
                                                 "remote code).")] = None,
    fmt: ReportFormat = None,
    report: Report = None,
    report_dir: Annotated[Path | None, typer.Option("--report-dir", help="Also write report.json, .md, .html, "
                                                    ".sarif and .cdx.json here; with it and without "
                                                    "--format/--report, nothing goes to stdout.")] = None,
    behaviour: Annotated[bool | None, typer.Option("--behaviour/--no-behaviour", help="Run the behavioural backdoor "
                                                   "scan (loads the safetensors weights). Default: the policy's "
                                                   "behaviour_scan.enabled.", rich_help_panel=PANEL_BEHAVIOUR)]
    = None,
    *,
    behaviour_options: BehaviourOptions,  # replaced by the behavioural scan's options
    device: Device = "auto",
    threads: Annotated[int | None, threads_option("Torch CPU threads (one is fastest for tiny models).")] = None,
    dtype: Dtype = "auto",
    quiet: Quiet = False,
) -> int:
    """Scan MODEL's files for unsafe serialization, remote code, template tricks and path escapes, then
    (unless the files already fail) load its safetensors weights and search for a backdoor trigger.

    Exit 0: passed; 1: findings at or above the policy's fail_on; 2: usage error; 3: could not finish.
    """
    from crowguard.pipeline import run_scan

    if fmt is not None:
        get_format(fmt)  # an unknown format is a usage error before any work
    loaded = load_policy(policy if policy is not None else builtin_policy("default"))
    stages = []
    run_behaviour = loaded.behaviour_scan.enabled if behaviour is None else behaviour
    if run_behaviour:
        from crowguard.runtime import Runtime

        runtime = Runtime(device=device, threads=threads, dtype=dtype)
    with ExitStack() as bars:
        if run_behaviour:
            from crowguard.scan.behaviour import behaviour_stage

            silence_library_bars()
            stages.append(behaviour_stage(behaviour_options, runtime, None if quiet else _lazy_progress(bars)))
        result = run_scan(model, loaded, stages=stages)
    if report_dir is not None:
        for path in write_report_dir(result, report_dir):
            if not quiet:
                stderr.print(f"report written to {path}", markup=False)
    if report_dir is not None and fmt is None and report is None:
        if not quiet:
            print_summary(result)
        return result.verdict.exit_code if result.verdict else 0
    return emit_report(result, fmt=fmt or format_for_path(report), report_path=report, quiet=quiet)


def _lazy_progress(bars: ExitStack) -> Count:
    """A progress callback whose bars appear on the first update (an early error prints alone)."""
    update: list[Callable[..., None]] = []

    def progress(phase: str, done: int, total: int) -> None:
        if not update:
            update.append(bars.enter_context(task_progress("behaviour scan")))
        update[0](done, total, phase)

    return progress
