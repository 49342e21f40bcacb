"""Every option more than one command takes, declared once as an ``Annotated`` alias, and the help panels.

A flag has one meaning in every command: ``-o`` is always ``--out`` (what the command writes), ``-r``
``--report``, ``-p`` ``--policy``, ``-f`` ``--format``, ``-k`` ``--key``, ``-q`` ``--quiet``
(``tests/cli/test_options.py`` walks every command to hold this). Where a command words an option's
help differently (what ``--out`` holds differs by command), it calls the option's factory with its
own help; the names and the panel still come from here. Spellings that were renamed keep working,
unlisted, through ``LEGACY_SPELLINGS``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from crowguard.report.formats import FORMATS

# Help panels (the sanitize settings' panels are named by their field metadata's group).
PANEL_SOURCE = "Source"
PANEL_TRAINING = "Training (defaults: the CROW paper's)"
PANEL_CROW = "CROW loss"
PANEL_RUN = "Run control"
PANEL_RUNTIME = "Runtime"
PANEL_EVAL = "Evaluation"
PANEL_BEHAVIOUR = "Behavioural scan"
SETTING_PANELS = {"training": PANEL_TRAINING, "crow": PANEL_CROW, "run": PANEL_RUN}

POLICY_HELP = "Shipped policy (default, strict, permissive) or a policy YAML file; default: default."


def out_option(help: str, **extra: Any) -> Any:
    """``--out/-o``: the folder or file a command writes."""
    return typer.Option("--out", "-o", help=help, **extra)


def policy_option(help: str = POLICY_HELP, panel: str | None = None) -> Any:
    """``--policy/-p``: a shipped policy name or a policy file."""
    return typer.Option("--policy", "-p", help=help, rich_help_panel=panel)


def report_option(help: str) -> Any:
    """``--report/-r``: the file the report goes to (``-`` is stdout)."""
    return typer.Option("--report", "-r", help=help)


def format_option(help: str) -> Any:
    """``--format/-f``: the report's format."""
    return typer.Option("--format", "-f", help=help)


def quiet_option(help: str = "No progress or summary on stderr.") -> Any:
    """``--quiet/-q``."""
    return typer.Option("--quiet", "-q", help=help)


def force_option(help: str = "Replace a non-empty --out folder.") -> Any:
    """``--force``."""
    return typer.Option("--force", help=help)


def threads_option(help: str = "CPU threads for torch.", panel: str = PANEL_RUNTIME) -> Any:
    """``--threads``."""
    return typer.Option("--threads", help=help, rich_help_panel=panel)


def key_option(help: str) -> Any:
    """``--key/-k``: the private key that signs."""
    return typer.Option("--key", "-k", help=help)


def lab_card_option(supplies: str) -> Any:
    """``--lab-card``: opt in to a lab model's lab.json, which supplies ``supplies``."""
    return typer.Option("--lab-card", help=f"Let a lab model's lab.json supply {supplies} (otherwise it is never "
                        "read).", rich_help_panel=PANEL_EVAL)


Out = Annotated[Path, out_option("Output folder (must be new or empty, unless --force).")]
PolicyFile = Annotated[Path | None, policy_option()]
Report = Annotated[Path | None, report_option("Write the report to this file instead of stdout (- is stdout).")]
ReportFormat = Annotated[str | None, format_option(f"Report format ({'|'.join(FORMATS)}). Default: json, or the "
                                                   "one --report's suffix names.")]
Quiet = Annotated[bool, quiet_option()]
Force = Annotated[bool, force_option()]

Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.", rich_help_panel=PANEL_RUNTIME)]
Threads = Annotated[int | None, threads_option()]
Dtype = Annotated[str, typer.Option("--dtype", help="dtype models are loaded in for scanning and evaluation: "
                                    "auto, float32, bfloat16 or float16.", rich_help_panel=PANEL_RUNTIME)]

Revision = Annotated[str | None, typer.Option("--revision", help="Branch, tag or commit sha (hub only); resolved to "
                                              "a commit sha and recorded.", rich_help_panel=PANEL_SOURCE)]
Endpoint = Annotated[str | None, typer.Option("--endpoint", help="Hub or mirror URL (default: HF_ENDPOINT, else "
                                              "https://huggingface.co).", rich_help_panel=PANEL_SOURCE)]
Gguf = Annotated[str | None, typer.Option("--gguf", help="GGUF file of the repository or folder to import as "
                                          "safetensors.", rich_help_panel=PANEL_SOURCE)]

CleanData = Annotated[Path | None, typer.Option("--clean-data", help="Alpaca JSON/JSONL clean set for sanitizing; "
                                                "default: the model's own answers to crowguard's built-in "
                                                "instructions.")]
Candidates = Annotated[Path | None, typer.Option(
    "--candidates", help="Trigger candidates to unlearn with --method guided (a JSON list of strings or of "
    "{text, position} objects, or one per line), beside those the scan finds.", metavar="FILE",
    rich_help_panel=PANEL_TRAINING)]
Reply = Annotated[str | None, typer.Option(
    "--reply", help="The reply the backdoor was taught, when known (e.g. from a scan report): with --method guided "
    "and no trigger candidate, train against a trigger stand-in fitted toward it; default: the scan's inverted "
    "reply.", metavar="TEXT", rich_help_panel=PANEL_TRAINING)]
SanitizeConfigFile = Annotated[Path | None, typer.Option(
    "--sanitize-config", help="YAML file of sanitize settings (keys: the setting names below with _, and preset); "
    "explicit options win over it.", metavar="FILE")]

Triggered = Annotated[Path | None, typer.Option("--triggered", help="Triggered test prompts (Alpaca JSON/JSONL): "
                                                "the attack success rate.", rich_help_panel=PANEL_EVAL)]
CleanTest = Annotated[Path | None, typer.Option("--clean-test", help="Clean test prompts with reference outputs: "
                                                "false-trigger rate and utility.", rich_help_panel=PANEL_EVAL)]
Task = Annotated[str | None, typer.Option("--task", help="ASR keyword preset: negsentiment, refusal, codeinjection.",
                                          rich_help_panel=PANEL_EVAL)]
Keyword = Annotated[list[str], typer.Option("--keyword", help="ASR keyword (repeatable; overrides --task's list).",
                                            rich_help_panel=PANEL_EVAL)]
EvalLimit = Annotated[int | None, typer.Option("--eval-limit", help="Use only the first N prompts of each test set.",
                                               rich_help_panel=PANEL_EVAL)]
EvalTemplate = Annotated[str, typer.Option("--eval-template", help="Test prompt format: raw (the paper's), chat, "
                                           "alpaca.", rich_help_panel=PANEL_EVAL)]
EvalMaxNewTokens = Annotated[int, typer.Option("--eval-max-new-tokens", help="Tokens generated per test prompt.",
                                               rich_help_panel=PANEL_EVAL)]

# Old spellings, per command: still accepted, no longer shown. Values are the current long names.
LEGACY_SPELLINGS: dict[str, dict[str, str]] = {
    "scan": {"-o": "--report", "--template": "--scan-template", "--seed": "--scan-seed"},
    "verify": {"-p": "--public-key"},
    "eval": {"--clean": "--clean-test", "--template": "--eval-template", "--limit": "--eval-limit",
             "--max-new-tokens": "--eval-max-new-tokens"},
}


def legacy_spellings(command: str) -> dict[str, Any]:
    """Context settings that let ``command`` accept its old option spellings (click's token normalizer).

    click strips an option's prefix before normalizing and puts it back after, so ``-o`` -> ``--report``
    is returned as ``-report`` (``-`` + ``-report``), which click then matches as the long option.
    """
    table = LEGACY_SPELLINGS.get(command)
    if not table:
        return {}
    bare = {old.lstrip("-"): new[len(old) - len(old.lstrip("-")):] for old, new in table.items()}

    def normalize(name: str) -> str:
        return bare.get(name, name)

    settings: dict[str, Callable[[str], str]] = {"token_normalize_func": normalize}
    return settings
