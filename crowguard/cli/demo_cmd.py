"""``crowguard demo``: run the whole gate on the embedded demo model and show what happened."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from rich.table import Table

from crowguard.cli.guard import guarded, stderr
from crowguard.cli.options import force_option, out_option, threads_option
from crowguard.cli.output import print_summary
from crowguard.cli.progress import TrainingProgress, silence_library_bars
from crowguard.report.formats.summary import scan_result


@guarded
def demo(
    out: Annotated[Path, out_option("Folder for the demo's key pair, gated model and reports.")]
    = Path("crowguard-demo"),
    threads: Annotated[int, threads_option("CPU threads for torch (1 is fastest for this small model).")] = 1,
    force: Annotated[bool, force_option("Reuse a non-empty --out folder.")] = False,
) -> int:
    """Build a small model with a planted backdoor (offline, cached), gate it, verify the signature.

    Exits 0 when the demo ran to the end, whatever the gate decided (the summary says); 2 or 3 when
    it could not run.
    """
    from crowguard.pipeline.demo import run_demo

    silence_library_bars()
    with TrainingProgress(enabled=True) as display:
        outcome = run_demo(out, threads=threads, force=force, progress=display, build_progress=_build_bar(display))
    print_summary(outcome.report)
    _table(outcome)
    return 0


def _build_bar(display: TrainingProgress) -> Any:
    task: dict[str, Any] = {}

    def update(p: Any) -> None:
        if "id" not in task:
            task["id"] = display.bar.add_task("building demo model", total=p.total_steps, losses="", left="")
        display.bar.update(task["id"], completed=p.step, losses=f"loss {p.ce:.3f}")

    return update


def _table(outcome: Any) -> None:
    report = outcome.report
    stages = {s.name: s for s in report.stages}
    before = stages.get("eval-before") or stages.get("eval")
    after = stages.get("eval-after") or before
    table = Table(title="crowguard demo", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("result")
    table.add_row("model", f"{outcome.model_in} (lab model, trigger BadMagic)")
    scan = stages.get("behaviour-scan")
    flagged = bool(scan and scan.findings)
    table.add_row("file scan", "no known-unsafe construct" if not stages["file-scan"].findings else
                  f"{len(stages['file-scan'].findings)} finding(s)")
    table.add_row("behaviour scan", "not run" if scan is None or scan.status != "completed" else
                  ("backdoor flagged" if flagged else "nothing flagged"))
    sanitize = stages.get("sanitize")
    table.add_row("sanitized", "no" if sanitize is None else
                  f"yes ({sanitize.metrics.get('method')}, {sanitize.metrics.get('steps')} steps)")
    rescan = stages.get("behaviour-rescan")
    if rescan is not None:
        table.add_row("behaviour re-scan", scan_result(rescan))
    for key, label in (("asr", "attack success"), ("clean_accuracy", "clean accuracy"),
                       ("triggered_accuracy", "accuracy under trigger")):
        table.add_row(f"{label} before -> after", f"{_fmt(before, key)} -> {_fmt(after, key)}")
    verdict = report.verdict
    table.add_row("gate verdict", f"PASS (policy {verdict.policy})" if verdict.passed else
                  f"FAIL (exit {verdict.exit_code}, policy {verdict.policy}): nothing signed")
    table.add_row("signature", "verified with " + str(outcome.public_key) if outcome.verified else "none")
    table.add_row("output", str(outcome.gated))
    if sanitize is not None and not verdict.passed:
        table.add_row("note", "CROW did not clear this backdoor on this run; on this small model its result "
                              "varies with the seed and the CPU (bench/RESULTS.md), and the gate signs only a pass")
    stderr.print(table)


def _fmt(stage: Any, key: str) -> str:
    value = stage.metrics.get(key) if stage is not None else None
    return "-" if value is None else f"{value:.2f}"
