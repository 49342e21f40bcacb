"""``crowguard gate MODEL --out DIR``: pull, scan, sanitize, re-scan, evaluate, sign; exit by the policy."""

from __future__ import annotations

from pathlib import Path

import typer

from crowguard.cli.guard import guarded, stderr
from crowguard.cli.output import emit_report, format_for_path
from crowguard.cli.progress import TrainingProgress, silence_library_bars
from crowguard.policy import builtin_policy, load_policy
from crowguard.report.formats import get_format

HELP_SOURCE = "Source"
HELP_SANITIZE = "Sanitizing (defaults: the CROW paper's)"
HELP_EVAL = "Evaluation"


@guarded
def gate(
    model: str = typer.Argument(..., help="Hub repo id (ORG/NAME), local model folder, or .gguf file."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: the signed model and its reports on a pass, "
                             "only the reports on a fail."),
    policy: Path = typer.Option(None, "--policy", "-p", help="Shipped policy (default, strict, permissive) "
                                 "or a policy YAML file [default]."),
    key: Path = typer.Option(None, "--key", help="EC P-256 private key (crowguard keygen) to sign a passing model."),
    revision: str = typer.Option(None, "--revision", help="Branch, tag or commit (hub models).",
                                 rich_help_panel=HELP_SOURCE),
    endpoint: str = typer.Option(None, "--endpoint", help="Hub mirror URL [HF_ENDPOINT].", rich_help_panel=HELP_SOURCE),
    gguf: str = typer.Option(None, "--gguf", help="GGUF file to import from the repo or folder.",
                             rich_help_panel=HELP_SOURCE),
    clean_data: Path = typer.Option(None, "--clean-data", help="Clean set for sanitizing (Alpaca JSON/JSONL).",
                                    rich_help_panel=HELP_SANITIZE),
    method: str = typer.Option(None, "--method", help="crow, or finetune.", rich_help_panel=HELP_SANITIZE),
    preset: str = typer.Option("default", "--preset", help="default, or refusal (alpha 11).",
                               rich_help_panel=HELP_SANITIZE),
    lr: float = typer.Option(None, "--lr", help="Learning rate [1e-3].", rich_help_panel=HELP_SANITIZE),
    epochs: int = typer.Option(None, "--epochs", help="Epochs [5].", rich_help_panel=HELP_SANITIZE),
    eps: float = typer.Option(None, "--eps", help="FGSM step size [0.1].", rich_help_panel=HELP_SANITIZE),
    eps_mode: str = typer.Option(None, "--eps-mode", help="absolute, or relative to the embedding scale.",
                                 rich_help_panel=HELP_SANITIZE),
    num_samples: int = typer.Option(None, "--num-samples", help="Clean samples [100].", rich_help_panel=HELP_SANITIZE),
    triggered: Path = typer.Option(None, "--triggered", help="Triggered test prompts: ASR.", rich_help_panel=HELP_EVAL),
    clean_test: Path = typer.Option(None, "--clean-test", help="Clean test prompts with reference outputs: "
                                    "false-trigger rate and utility.", rich_help_panel=HELP_EVAL),
    task: str = typer.Option(None, "--task", help="negsentiment, refusal or codeinjection keywords.",
                             rich_help_panel=HELP_EVAL),
    keyword: list[str] = typer.Option([], "--keyword", help="ASR keyword (repeatable).", rich_help_panel=HELP_EVAL),
    eval_limit: int = typer.Option(None, "--eval-limit", help="First N prompts of each test set.",
                                   rich_help_panel=HELP_EVAL),
    eval_template: str = typer.Option("raw", "--eval-template", help="raw (the paper's), chat or alpaca.",
                                      rich_help_panel=HELP_EVAL),
    lab_card: bool = typer.Option(False, "--lab-card", help="Let a lab model's lab.json supply the test prompts and "
                                  "the defence set (otherwise it is never read).", rich_help_panel=HELP_EVAL),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for torch."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    report: Path = typer.Option(None, "--report", help="Also write the report here (format from the suffix; "
                                "- is stdout)."),
    fmt: str = typer.Option(None, "--format", "-f", help="Format of the report on stdout/--report [json]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary on stderr."),
) -> int:
    """Gate MODEL: exit 0 with a signed model in --out, or 1 (policy failed), 2, 3 or 4; see the README."""
    from crowguard.pipeline.evaluation import evaluation_spec
    from crowguard.pipeline.gate import GateRequest, PullSettings, run_gate
    from crowguard.pipeline.sanitize import SanitizeSettings
    from crowguard.runtime import Runtime
    from crowguard.sanitize import SanitizeConfig

    fmt = fmt or format_for_path(report)
    get_format(fmt)
    loaded = load_policy(policy if policy is not None else builtin_policy("default"))
    config = SanitizeConfig.from_options(preset, method=method, lr=lr, epochs=epochs, eps=eps, eps_mode=eps_mode,
                                         num_samples=num_samples)
    local = Path(model)
    evaluation = evaluation_spec(local, triggered=triggered, clean_test=clean_test, task=task,
                                 keywords=tuple(keyword), limit=eval_limit, template=eval_template,
                                 use_lab_card=lab_card)
    request = GateRequest(model=model, out=out, policy=loaded, key=key,
                          source=PullSettings(revision=revision, endpoint=endpoint, gguf_file=gguf),
                          sanitize=SanitizeSettings(config, clean_data=clean_data, evaluation=evaluation,
                                                    use_lab_card=lab_card),
                          runtime=Runtime(device=device, threads=threads), force=force)
    silence_library_bars()
    with TrainingProgress(enabled=not quiet) as display:
        result = run_gate(request, display)
    code = emit_report(result, fmt=fmt, report_path=report, quiet=quiet)
    if not quiet:
        passed = result.verdict is not None and result.verdict.passed
        where = "signed model and reports" if passed else "reports only, nothing signed"
        stderr.print(f"{out}: {where}", markup=False)
    return code
