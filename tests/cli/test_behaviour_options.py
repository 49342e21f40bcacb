"""The behavioural scan's options, declared once: ``scan``, ``sanitize`` and ``gate`` take the same flags, and
the values reach the ``BehaviourOptions`` each command's pipeline is given (captured here, so no model runs)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.cli.behaviour_options import FLAGS
from crowguard.cli.options import PANEL_BEHAVIOUR
from crowguard.scan.behaviour import BehaviourOptions

runner = CliRunner()
COMMANDS = ("scan", "sanitize", "gate")


def _capture(monkeypatch: pytest.MonkeyPatch, command: str) -> list[BehaviourOptions | None]:
    """Replace the command's pipeline entry by one that records the options it was given and exits 0."""
    seen: list[BehaviourOptions | None] = []

    def stop(options: BehaviourOptions | None) -> None:
        seen.append(options)
        raise typer.Exit(0)

    if command == "scan":
        import crowguard.scan.behaviour

        monkeypatch.setattr(crowguard.scan.behaviour, "behaviour_stage", lambda options, *_: stop(options))
    elif command == "sanitize":
        import crowguard.pipeline.sanitize

        monkeypatch.setattr(crowguard.pipeline.sanitize, "run_sanitize",
                            lambda request, *_: stop(request.behaviour and request.behaviour.options))
    else:
        import crowguard.pipeline.gate

        monkeypatch.setattr(crowguard.pipeline.gate, "run_gate", lambda request, *_: stop(request.behaviour))
    return seen


def _invoke(command: str, tmp_path: Path, *extra: str) -> Any:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    args = {"scan": ["--behaviour"], "sanitize": ["--out", str(tmp_path / "o"), "--no-eval"],
            "gate": ["--out", str(tmp_path / "o")]}[command]
    return runner.invoke(app, [command, str(model), *args, "-q", *extra])


def _probes(tmp_path: Path) -> Path:
    path = tmp_path / "probes.jsonl"
    path.write_text(json.dumps({"instruction": "say hello"}) + "\n")
    return path


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_shows_the_same_options_in_one_panel(command: str) -> None:
    from tests.cli.test_options import _command

    params = {opt: param for param in _command(command).params for opt in param.opts}
    for name, (flag, _) in FLAGS.items():
        assert params[flag].rich_help_panel == PANEL_BEHAVIOUR, flag  # type: ignore[attr-defined]
        assert params[flag].default == getattr(BehaviourOptions(), name), flag  # the dataclass's default, once


@pytest.mark.parametrize("command", COMMANDS)
def test_the_values_reach_the_options_the_pipeline_gets(command: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _capture(monkeypatch, command)
    probes = _probes(tmp_path)
    result = _invoke(command, tmp_path, "--probes", str(probes), "--probe-count", "5", "--vocab-budget", "7",
                     "--scan-template", "raw", "--scan-seed", "3")
    assert result.exit_code == 0, result.output
    assert seen == [BehaviourOptions(probes=probes, probe_count=5, vocab_budget=7, template="raw", seed=3)]


@pytest.mark.parametrize("command", COMMANDS)
def test_no_flags_mean_the_default_options(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _capture(monkeypatch, command)
    result = _invoke(command, tmp_path)
    assert result.exit_code == 0, result.output
    assert seen == [BehaviourOptions()]


def test_sanitize_seed_stays_the_training_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import crowguard.pipeline.sanitize

    requests: list[Any] = []

    def stop(request: Any, *_: Any) -> None:
        requests.append(request)
        raise typer.Exit(0)

    monkeypatch.setattr(crowguard.pipeline.sanitize, "run_sanitize", stop)
    result = _invoke("sanitize", tmp_path, "--seed", "9", "--scan-seed", "4")
    assert result.exit_code == 0, result.output
    (request,) = requests
    assert request.settings.config.seed == 9 and request.behaviour.options.seed == 4
    assert _invoke("sanitize", tmp_path, "--no-scan").exit_code == 0 and requests[-1].behaviour is None


def test_scan_keeps_its_old_seed_and_template_spellings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _capture(monkeypatch, "scan")
    result = _invoke("scan", tmp_path, "--seed", "2", "--template", "alpaca")
    assert result.exit_code == 0, result.output
    assert seen == [dataclasses.replace(BehaviourOptions(), seed=2, template="alpaca")]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("extra,message", [
    (["--probe-count", "1"], "probe_count"),
    (["--scan-template", "fancy"], "template"),
    (["--probes", "nope.jsonl"], "probe file nope.jsonl does not exist"),
])
def test_bad_values_exit_2_before_any_work(command: str, extra: list[str], message: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _capture(monkeypatch, command)
    result = _invoke(command, tmp_path, *extra)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr
    assert seen == []
