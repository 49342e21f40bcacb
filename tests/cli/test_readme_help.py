"""The README's ``--help`` blocks are the CLI's current help, rendered the same on every machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.rich_utils

from crowguard.cli import help_docs

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_help_blocks_match_the_cli() -> None:
    problems = help_docs.stale_blocks(README.read_text(encoding="utf-8"))
    assert not problems, "\n".join([*problems, f"regenerate with `{help_docs.WRITE_COMMAND}` and commit README.md"])


def test_every_command_has_a_block_in_its_section() -> None:
    readme = README.read_text(encoding="utf-8")
    for name in help_docs.command_names():
        begin = readme.index(f"<!-- BEGIN generated: help {name} -->")
        section = readme[:begin].rsplit("\n## ", 1)[1].split("\n", 1)[0]
        first = re.escape(name.split()[0])
        assert re.search(rf"(?<![\w-]){first}(?![\w-])", section), \
            f"`crowguard {name}`'s help sits under '## {section}'"


def test_rendering_ignores_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Width, colour and terminal detection come from the environment; none of it reaches the text."""
    plain = help_docs.render_help("gate")
    assert plain == help_docs.render_help("gate")
    for name, value in {"CI": "true", "GITHUB_ACTIONS": "true", "FORCE_COLOR": "1", "TTY_COMPATIBLE": "1",
                        "COLUMNS": "40", "TERM": "xterm-256color"}.items():
        monkeypatch.setenv(name, value)
    # What typer derived from such an environment when it was imported (GITHUB_ACTIONS forces a terminal).
    monkeypatch.setattr(typer.rich_utils, "FORCE_TERMINAL", True)
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 40)
    assert help_docs.render_help("gate") == plain
    assert "\x1b" not in plain and "Usage: crowguard gate" in plain
    assert max(len(line) for line in plain.splitlines()) == help_docs.HELP_WIDTH
    assert typer.rich_utils.MAX_WIDTH == 40, "the rendering restores typer's settings"


def test_write_rewrites_stale_blocks_and_names_what_a_person_must_add(tmp_path: Path) -> None:
    block = "<!-- BEGIN generated: help {0} -->\n{1}<!-- END generated: help {0} -->"
    readme = tmp_path / "README.md"
    readme.write_text("\n\n".join([block.format("scan", "old help\n"), block.format("frobnicate", "")]) + "\n")
    assert help_docs.main(["--check", "--readme", str(readme)]) == 1
    assert help_docs.main(["--write", "--readme", str(readme)]) == 1  # written, but commands lack blocks
    text = readme.read_text()
    assert "old help" not in text and help_docs.render_help("scan") in text
    _, problems = help_docs.regenerate(text)
    assert any("frobnicate" in p and "no crowguard command" in p for p in problems)
    assert any(re.search(r"`crowguard pull` has no help block", p) for p in problems)
    assert not any("`crowguard scan` has no help block" in p for p in problems)
