"""Every command's ``--help``, rendered into the README and kept in step with the CLI.

The README holds one block per command between ``<!-- BEGIN generated: help <command> -->`` and
``<!-- END generated: help <command> -->``. After changing an option or a help text, regenerate them:

    python -m crowguard.cli.help_docs --write

``--check`` exits 1 naming the blocks that differ (``tests/cli/test_readme_help.py`` runs the same
check). Help is rendered at a fixed width, without colour and as if to no terminal, whatever
``COLUMNS``, ``TERM``, ``FORCE_COLOR`` or ``GITHUB_ACTIONS`` say, so the text is the same on every
machine and CI runner. (``TYPER_USE_RICH=0`` switches typer to click's plain help when it is
imported; rendering refuses to run under it rather than write that into the README.)
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
import typer.core
import typer.rich_utils
from typer.testing import CliRunner

from crowguard.cli.app import app

HELP_WIDTH = 100
README_PATH = Path(__file__).resolve().parents[2] / "README.md"
WRITE_COMMAND = "python -m crowguard.cli.help_docs --write"
_BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN generated: help (?P<name>[a-z][a-z -]*?) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<end><!-- END generated: help (?P=name) -->)",
    re.DOTALL,
)


def command_names() -> list[str]:
    """Every runnable command, sub-commands as ``"lab build"``, in the order the app registers them."""
    names: list[str] = []

    def walk(command: object, prefix: str) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            names.append(prefix)
            return
        for name, sub in subcommands.items():
            if not getattr(sub, "hidden", False):
                walk(sub, f"{prefix} {name}".strip())

    walk(typer.main.get_command(app), "")
    return names


@contextmanager
def _fixed_console() -> Iterator[None]:
    """typer reads its console settings from the environment at import; pin them for the rendering."""
    if not typer.core.HAS_RICH:
        raise RuntimeError("TYPER_USE_RICH turns typer's rich help off; render the README's help without it")
    saved = (typer.rich_utils.MAX_WIDTH, typer.rich_utils.FORCE_TERMINAL, typer.rich_utils.COLOR_SYSTEM)
    typer.rich_utils.MAX_WIDTH = HELP_WIDTH
    typer.rich_utils.FORCE_TERMINAL = False
    typer.rich_utils.COLOR_SYSTEM = None
    try:
        yield
    finally:
        typer.rich_utils.MAX_WIDTH, typer.rich_utils.FORCE_TERMINAL, typer.rich_utils.COLOR_SYSTEM = saved


def render_help(name: str) -> str:
    """``crowguard <name> --help`` as plain text, trailing spaces and blank edges removed."""
    with _fixed_console():
        result = CliRunner().invoke(app, [*name.split(), "--help"], prog_name="crowguard",
                                    env={"COLUMNS": str(HELP_WIDTH), "TERM": "dumb", "NO_COLOR": "1"})
    if result.exit_code != 0:
        raise RuntimeError(f"`crowguard {name} --help` exited {result.exit_code}: {result.output}")
    lines = [line.rstrip() for line in result.output.splitlines()]
    return "\n".join(lines).strip("\n")


def help_block(name: str) -> str:
    """The README text between one command's markers: its help, folded, as fenced text."""
    return (f"<details><summary><code>crowguard {name} --help</code></summary>\n\n"
            f"```text\n{render_help(name)}\n```\n\n</details>\n")


def regenerate(readme: str) -> tuple[str, list[str]]:
    """The README with every help block rewritten, and the problems that need a person.

    A problem is a command without a block (give it a section and the two marker lines) or a block
    naming no command (remove it).
    """
    names = command_names()
    seen: set[str] = set()
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in names:
            problems.append(f"the README has a help block for `{name}`, which is no crowguard command")
            return match[0]
        seen.add(name)
        return match["begin"] + help_block(name) + match["end"]

    updated = _BLOCK.sub(replace, readme)
    problems += [f"`crowguard {name}` has no help block in the README: add "
                 f"`<!-- BEGIN generated: help {name} -->` and `<!-- END generated: help {name} -->` "
                 f"to its section" for name in names if name not in seen]
    return updated, problems


def stale_blocks(readme: str) -> list[str]:
    """What differs between the README's help blocks and the CLI; empty when they agree."""
    updated, problems = regenerate(readme)
    current = {m["name"]: m["body"] for m in _BLOCK.finditer(readme)}
    fresh = {m["name"]: m["body"] for m in _BLOCK.finditer(updated)}
    return problems + [f"the README's `crowguard {name} --help` differs from the CLI's"
                       for name in fresh if current.get(name) != fresh[name]]


def main(argv: list[str] | None = None) -> int:
    """Write, check or print the help blocks; 0 when the README agrees (or was written), else 1."""
    parser = argparse.ArgumentParser(prog="python -m crowguard.cli.help_docs", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the README's help blocks")
    mode.add_argument("--check", action="store_true", help="exit 1 naming the blocks that differ")
    parser.add_argument("--readme", type=Path, default=README_PATH, help="the README to update or check")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        sys.stdout.write("".join(f"## crowguard {name}\n\n{help_block(name)}\n" for name in command_names()))
        return 0
    readme = args.readme.read_text(encoding="utf-8")
    if args.write:
        updated, problems = regenerate(readme)
        if updated != readme:
            args.readme.write_text(updated, encoding="utf-8")
    else:
        problems = stale_blocks(readme)
        if problems:
            problems.append(f"regenerate with `{WRITE_COMMAND}`")
    for problem in problems:
        print(f"{args.readme}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
