"""The typer application: global options and one sub-module per command.

Command modules import only the core; torch and transformers load inside the commands that need
them, so ``crowguard --help`` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import typer

from crowguard import __version__
from crowguard.cli import (
    demo_cmd,
    eval_cmd,
    gate_cmd,
    lab_cmd,
    policy_cmd,
    pull_cmd,
    report_cmd,
    sanitize_cmd,
    scan_cmd,
    scan_files_cmd,
    sign_cmd,
)
from crowguard.cli.guard import is_debug, report_error, set_debug, stop_on_sigterm
from crowguard.cli.library_noise import quiet_libraries
from crowguard.cli.options import legacy_spellings

app = typer.Typer(
    name="crowguard",
    help="Scan third-party LLMs for unsafe files and backdoors, remove backdoors with CROW, sign the result.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(policy_cmd.app, name="policy")
app.add_typer(report_cmd.app, name="report")
app.add_typer(lab_cmd.app, name="lab")
COMMANDS: dict[str, Callable[..., Any]] = {  # each registered once, in this order (the README's too)
    "pull": pull_cmd.pull,
    "sanitize": sanitize_cmd.sanitize,
    "keygen": sign_cmd.keygen,
    "sign": sign_cmd.sign,
    "verify": sign_cmd.verify,
    "eval": eval_cmd.eval_command,
    "scan": scan_cmd.scan,
    "scan-files": scan_files_cmd.scan_files,
    "gate": gate_cmd.gate,
    "demo": demo_cmd.demo,
}
for _name, _command in COMMANDS.items():
    app.command(_name, context_settings=legacy_spellings(_name))(_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crowguard {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks (never with local variables) and the "
                               "libraries' own chatter."),
) -> None:
    set_debug(debug)
    quiet_libraries(is_debug)


def main() -> None:
    """Console entry point; a last-resort guard so nothing escapes as exit 1."""
    quiet_libraries(is_debug)
    stop_on_sigterm()
    try:
        app()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001
        sys.exit(report_error(exc))
