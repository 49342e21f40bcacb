"""The README's exit-code table holds for every command: each case of ``exit_code_cases`` exits as it says.

The guards below read the README: every command it documents has cases, every code in its table is
reached by some command, and every code a command's help promises is tested. A code covered by
another test (``REFERENCES``, model runs) must still be asserted there.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.cli.help_docs import command_names
from crowguard.errors import ExitCode
from tests.cli.exit_code_cases import CASES, REFERENCES, VERDICT_COMMANDS, Ctx
from tests.conftest import REPO
from tests.pull.conftest import hermetic_hf, hub  # noqa: F401 - the loopback hub, for the checksum cases

runner = CliRunner()
README = (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("command", "code"), sorted(CASES), ids=[f"{c}-{n}" for c, n in sorted(CASES)])
def test_exit_code(command: str, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   request: pytest.FixtureRequest) -> None:
    args = [str(a) for a in CASES[(command, code)](Ctx(tmp_path, monkeypatch, request))]
    result = runner.invoke(app, args)
    assert result.exit_code == code, f"{' '.join(args)}\n{result.output}"
    assert "Traceback" not in result.output
    if code == ExitCode.INTERRUPTED:
        assert "interrupted" in result.stderr
        assert not [p for p in tmp_path.rglob("*") if p.name in ("never.json", "out", "gated")]  # nothing complete
    elif code in (ExitCode.USAGE, ExitCode.INTEGRITY):
        assert re.search(r"^error: .+\nhint: ", result.stderr, re.MULTILINE), result.stderr  # a message and a fix
    elif code == ExitCode.TOOL_ERROR:
        assert "error" in result.stderr, result.stderr  # the error, or the stage that could not finish
        assert not (tmp_path / "out").exists()  # sanitize: no half-written model


@pytest.mark.parametrize(("command", "code"), sorted(REFERENCES))
def test_referenced_test_still_asserts_the_code(command: str, code: int) -> None:
    path, name = REFERENCES[(command, code)].split("::")
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    (function,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name]
    source = ast.unparse(function)
    assert re.search(rf"(exit_code|returncode) == {code}\b", source), f"{path}::{name} no longer asserts exit {code}"
    assert (command, code) not in CASES  # tested in one place


def readme_exit_codes() -> dict[int, str]:
    """The README's exit-code table: code -> meaning."""
    section = README.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    return {int(code): meaning for code, meaning in re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.MULTILINE)}


def readme_help() -> dict[str, str]:
    """Each command's help as the README shows it (its generated block): command -> description."""
    blocks = re.findall(r"<!-- BEGIN generated: help ([a-z][a-z -]*?) -->\n(.*?)<!-- END generated", README, re.DOTALL)
    return {name: body.split("Usage:", 1)[1].split("╭─", 1)[0] for name, body in blocks}


def _covered() -> dict[str, set[int]]:
    covered: dict[str, set[int]] = {}
    for command, code in [*CASES, *REFERENCES]:
        covered.setdefault(command, set()).add(code)
    return covered


def test_the_table_is_the_one_the_cli_uses() -> None:
    assert readme_exit_codes().keys() == {int(code) for code in ExitCode}


def test_every_documented_command_has_cases_and_every_code_is_hit() -> None:
    covered = _covered()
    assert sorted(readme_help()) == sorted(command_names()) == sorted(covered)
    assert set().union(*covered.values()) == set(readme_exit_codes())
    for command, codes in covered.items():
        assert {0, 2} <= codes, command  # every command can succeed and be misused
        assert (1 in codes) == (command in VERDICT_COMMANDS), command  # exit 1 is only ever a policy's verdict


def test_every_code_a_command_help_promises_is_tested() -> None:
    covered, table = _covered(), readme_exit_codes()
    for command, text in readme_help().items():
        sentences = [s for s in re.split(r"(?<=\.)\s+", " ".join(text.split())) if re.search(r"\bexits?\b", s, re.I)]
        promised = {int(n) for s in sentences for n in re.findall(r"\b\d+\b", s) if int(n) in table}
        assert promised <= covered[command], f"{command}: its help names exit {sorted(promised - covered[command])}"
