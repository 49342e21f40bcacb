"""``crowguard gate MODEL --out DIR``: pull, scan, sanitize, re-scan, evaluate, sign; exit by the policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crowguard.cli.behaviour_options import with_behaviour_options
from crowguard.cli.guard import guarded, stderr
from crowguard.cli.options import (
    Candidates,
    CleanData,
    CleanTest,
    Device,
    Dtype,
    Endpoint,
    EvalLimit,
    EvalMaxNewTokens,
    EvalTemplate,
    Force,
    Gguf,
    Keyword,
    PolicyFile,
    Quiet,
    Reply,
    ReportFormat,
    Revision,
    Task,
    Threads,
    Triggered,
    key_option,
    lab_card_option,
    out_option,
    report_option,
)
from crowguard.cli.output import emit_report, format_for_path
from crowguard.cli.progress import TrainingProgress, silence_library_bars
from crowguard.cli.sanitize_options import with_sanitize_settings
from crowguard.policy import builtin_policy, load_policy
from crowguard.report.formats import get_format
from crowguard.sanitize.config import SanitizeConfig
from crowguard.scan.behaviour.options import BehaviourOptions


@guarded
@with_behaviour_options
@with_sanitize_settings
def gate(
    model: Annotated[str, typer.Argument(help="Hub repo id (ORG/NAME), local model folder, or .gguf file.")],
    out: Annotated[Path, out_option("Output folder: the signed model and its reports on a pass, only the reports "
                                    "on a fail.")],
    policy: PolicyFile = None,
    key: Annotated[Path | None, key_option("EC P-256 private key (crowguard keygen) to sign a passing model.")]
    = None,
    revision: Revision = None,
    endpoint: Endpoint = None,
    gguf: Gguf = None,
    clean_data: CleanData = None,
    candidates: Candidates = None,
    reply: Reply = None,
    *,
    config: SanitizeConfig,  # replaced by every sanitize setting and --sanitize-config
    behaviour_options: BehaviourOptions,  # replaced by the behavioural scan's options
    triggered: Triggered = None,
    clean_test: CleanTest = None,
    task: Task = None,
    keyword: Keyword = [],  # noqa: B006 - typer's list default, never mutated
    eval_limit: EvalLimit = None,
    eval_template: EvalTemplate = "raw",
    eval_max_new_tokens: EvalMaxNewTokens = 128,
    lab_card: Annotated[bool, lab_card_option("the test prompts and the defence set")] = False,
    device: Device = "auto",
    threads: Threads = None,
    dtype: Dtype = "auto",
    force: Force = False,
    report: Annotated[Path | None, report_option("Also write the report here (format from the suffix; - is "
                                                 "stdout).")] = None,
    fmt: ReportFormat = None,
    quiet: Quiet = False,
) -> int:
    """Gate MODEL: exit 0 with a signed model in --out, or 1 (policy failed), 2, 3 or 4; see the README."""
    from crowguard.pipeline.evaluation import evaluation_spec
    from crowguard.pipeline.gate import GateRequest, PullSettings, run_gate
    from crowguard.pipeline.sanitize import SanitizeSettings
    from crowguard.runtime import Runtime

    fmt = fmt or format_for_path(report)
    get_format(fmt)
    from crowguard.sanitize.guided import load_guides

    guides = load_guides(candidates) if candidates is not None else ()
    loaded = load_policy(policy if policy is not None else builtin_policy("default"))
    local = Path(model)
    evaluation = evaluation_spec(local, triggered=triggered, clean_test=clean_test, task=task,
                                 keywords=tuple(keyword), limit=eval_limit, template=eval_template,
                                 max_new_tokens=eval_max_new_tokens, use_lab_card=lab_card)
    request = GateRequest(model=model, out=out, policy=loaded, key=key,
                          source=PullSettings(revision=revision, endpoint=endpoint, gguf_file=gguf),
                          sanitize=SanitizeSettings(config, clean_data=clean_data, evaluation=evaluation, guides=guides,
                                                    reply=reply, use_lab_card=lab_card),
                          runtime=Runtime(device=device, threads=threads, dtype=dtype), behaviour=behaviour_options,
                          force=force)
    silence_library_bars()
    with TrainingProgress(enabled=not quiet) as display:
        result = run_gate(request, display)
    code = emit_report(result, fmt=fmt, report_path=report, quiet=quiet)
    if not quiet:
        passed = result.verdict is not None and result.verdict.passed
        where = "signed model and reports" if passed else "reports only, nothing signed"
        stderr.print(f"{out}: {where}", markup=False)
    return code
