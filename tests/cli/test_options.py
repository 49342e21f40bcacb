"""Options declared once: one meaning per flag across commands, every sanitize setting on ``sanitize``
and ``gate`` (generated from ``SanitizeConfig``), and the old spellings still accepted."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.cli.options import LEGACY_SPELLINGS
from crowguard.cli.sanitize_options import flag
from crowguard.sanitize.config import SanitizeConfig, setting_fields

runner = CliRunner()
SHORT_FLAGS = {"-o": "--out", "-r": "--report", "-f": "--format", "-p": "--policy", "-k": "--key",
               "-q": "--quiet"}


def _commands() -> Iterator[tuple[str, typer.core.TyperCommand]]:
    def walk(command: object, prefix: str) -> Iterator[tuple[str, typer.core.TyperCommand]]:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            yield prefix, command  # type: ignore[misc]
            return
        for name, sub in subcommands.items():
            yield from walk(sub, f"{prefix} {name}".strip())

    yield from walk(typer.main.get_command(app), "")


def _command(name: str) -> typer.core.TyperCommand:
    return dict(_commands())[name]


def _long_names(command: typer.core.TyperCommand) -> set[str]:
    return {opt for param in command.params for opt in [*param.opts, *param.secondary_opts] if opt.startswith("--")}


def test_each_short_flag_means_one_option_everywhere() -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    for name, command in _commands():
        for param in command.params:
            if not isinstance(param, typer.core.TyperOption):
                continue
            shorts = [o for o in param.opts if not o.startswith("--")]
            longs = [o for o in param.opts if o.startswith("--")]
            for short in shorts:
                seen[short].add(longs[0] if longs else f"{name}: {param.name}")
    assert {short: sorted(longs) for short, longs in seen.items()} == \
        {short: [long] for short, long in SHORT_FLAGS.items() if short in seen}
    assert set(seen) == set(SHORT_FLAGS)


def test_no_command_is_registered_twice() -> None:
    names = [info.name for info in app.registered_commands] + [info.name for info in app.registered_groups]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", ["sanitize", "gate"])
def test_every_sanitize_setting_is_an_option(name: str) -> None:
    longs = _long_names(_command(name))
    assert {flag(f.name) for f in setting_fields()} <= longs
    assert "--config-file" not in longs  # where the settings came from is a record, not a setting
    assert "--sanitize-config" in longs
    shown = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"}).stdout
    for field in setting_fields():
        assert flag(field.name) in shown, field.name
    assert "--sanitize-config" in shown and "[default: 5.5; refusal 11]" in shown


def test_shared_options_are_on_the_gate() -> None:
    assert {"--triggered", "--clean-test", "--task", "--keyword", "--eval-limit", "--eval-template",
            "--eval-max-new-tokens", "--lab-card", "--device", "--threads", "--dtype", "--revision", "--endpoint",
            "--gguf", "--clean-data"} <= _long_names(_command("gate"))


@pytest.mark.parametrize("command,old,new", [(c, old, new) for c, table in LEGACY_SPELLINGS.items()
                                             for old, new in table.items()])
def test_old_spellings_still_parse(command: str, old: str, new: str) -> None:
    cmd = _command(command)
    assert new in _long_names(cmd) and old not in _long_names(cmd)
    param = next(p for p in cmd.params if new in p.opts)
    arguments = ["DIR"] if command != "eval" else ["MODEL"]
    context = cmd.make_context(command, [*arguments, old, "7"], resilient_parsing=True)
    assert str(context.params[param.name]) == "7"


def test_legacy_scan_report_flag(tmp_path: Path) -> None:
    model = tmp_path / "empty"
    model.mkdir()
    result = runner.invoke(app, ["scan", str(model), "-o", str(tmp_path / "r.json"), "--no-behaviour"])
    assert result.exit_code == 2 and "is empty" in result.stderr  # parsed; refused for the folder, not the flag


def _config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sanitize.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["sanitize", "gate"])
@pytest.mark.parametrize("text,message", [
    ("lr: 0.01\nlearning_rate: 0.1\n", "unknown key(s) learning_rate"),
    ("epochs: many\n", "epochs must be a whole number, got 'many'"),
    ("method: distill\n", "method must be one of crow, finetune, guided, prune"),
    ("eps: -1\n", "eps must be a number >= 0"),
    ("gradient_checkpointing: yes please\n", "gradient_checkpointing must be true or false"),
    ("- lr\n", "must be a mapping"),
    ("lr: &a 1\neps: *a\n", "anchors are not allowed"),
])
def test_bad_sanitize_config_file_exits_2_naming_file_and_key(name: str, text: str, message: str,
                                                              tmp_path: Path) -> None:
    path = _config_file(tmp_path, text)
    result = runner.invoke(app, [name, str(tmp_path), "--out", str(tmp_path / "o"), "--sanitize-config", str(path)])
    assert result.exit_code == 2, result.output
    assert str(path) in result.stderr and message in result.stderr and "Traceback" not in result.stderr


def test_gate_report_records_the_file_and_the_flags(tiny_model_dir: Path, tmp_path: Path) -> None:
    import json

    from crowguard.sign import generate_keypair

    policy = tmp_path / "files-only.yaml"
    policy.write_text("name: files-only\nbehaviour_scan: {enabled: false}\n")
    path = _config_file(tmp_path, "preset: refusal\nlr: 1e-4\nepochs: 2\nlora_targets: [q_proj, v_proj]\n"
                                  "max_shard_size: 500MB\n")
    key = generate_keypair(tmp_path / "k").private
    out = tmp_path / "gated"
    result = runner.invoke(app, ["gate", str(tiny_model_dir), "-o", str(out), "-p", str(policy), "-k", str(key),
                                 "--sanitize-config", str(path), "--epochs", "3", "--threads", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    settings = json.loads((out / "report.json").read_text())["settings"]["sanitize"]
    assert settings["preset"] == "refusal" and settings["alpha"] == 11.0  # the file's preset
    assert settings["lr"] == 1e-4 and settings["lora_targets"] == ["q_proj", "v_proj"]
    assert settings["max_shard_size"] == "500MB"
    assert settings["epochs"] == 3  # the flag beats the file
    assert settings["config_file"] == {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def test_sanitize_report_records_the_file_and_the_flags(tiny_model_dir: Path, tmp_path: Path) -> None:
    import json

    path = _config_file(tmp_path, "alpha: 2.5\nnum_samples: 2\nmax_steps: 1\nmicro_batch: 1\ngrad_accum: 1\n"
                                  "distill_max_new_tokens: 4\nseed: 9\nmax_length: 64\n")
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["sanitize", str(tiny_model_dir), "-o", str(tmp_path / "o"), "--sanitize-config",
                                 str(path), "--seed", "3", "--lora-targets", "q_proj, o_proj", "--no-scan", "--no-eval",
                                 "--threads", "1", "-r",
                                 str(report), "-q"])
    assert result.exit_code == 0, result.output
    settings = json.loads(report.read_text())["settings"]
    assert settings["alpha"] == 2.5 and settings["max_length"] == 64 and settings["max_steps"] == 1
    assert settings["seed"] == 3  # the flag beats the file
    assert settings["lora_targets"] == ["q_proj", "o_proj"]
    assert settings["config_file"] == {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def test_precedence_defaults_preset_file_flags(tmp_path: Path) -> None:
    from crowguard.sanitize.config_file import build_config

    path = _config_file(tmp_path, "alpha: 8\nlr: 0.002\n")
    assert build_config(None, {"preset": "refusal"}).alpha == 11.0
    assert build_config(path, {"preset": "refusal"}).alpha == 8.0  # a value the file names beats the preset
    assert build_config(path, {"alpha": 3.0, "lr": None}) == \
        SanitizeConfig(alpha=3.0, lr=0.002)  # None means "not given"


def test_the_config_records_its_file_by_path_and_sha256(tmp_path: Path) -> None:
    import hashlib

    from crowguard.sanitize.config_file import build_config

    path = _config_file(tmp_path, "alpha: 8\n")
    config = build_config(path, {})
    assert config.config_file is not None and config.config_file.path == str(path)
    assert config.config_file.sha256 == hashlib.sha256(b"alpha: 8\n").hexdigest()
    assert config.as_dict()["config_file"] == {"path": str(path), "sha256": config.config_file.sha256}
    assert build_config(None, {}).as_dict()["config_file"] is None
    assert "config_file" not in config.training_fingerprint()  # a resume may name the same settings elsewhere
    empty = _config_file(tmp_path, "")
    assert build_config(empty, {}).config_file.sha256 == hashlib.sha256(b"").hexdigest()
