"""One case per command and exit code it can reach: the arguments that make ``crowguard`` exit so.

A case builds what it needs in its scratch folder and returns the command line; a failure that a
small test cannot provoke for real (out of memory, a full disk, Ctrl-C) is injected one level below
the command, so the command's own handling (cleanup, message, code) is what is tested. Codes whose
only honest test trains a model are left to the existing test named in ``REFERENCES``.
``tests/cli/test_exit_codes.py`` runs the cases and holds them to the README.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.scan.interface import ScannerError
from tests.pull.hub_server import FakeHub
from tests.scan import payloads

FILES_ONLY = "name: files-only\nbehaviour_scan: {enabled: false}\n"  # the tiny model's vocabulary has no probes
VERDICT_COMMANDS = {"scan", "scan-files", "sanitize", "gate"}  # those whose exit 1 is a policy's verdict


@dataclass
class Ctx:
    """What a case gets: a scratch folder, monkeypatch, and the session's fixtures on demand."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    request: pytest.FixtureRequest

    @property
    def tiny(self) -> Path:
        """A copy of the tiny model (cases may add files to it)."""
        copy = self.tmp / "tiny"
        if not copy.exists():
            shutil.copytree(self.request.getfixturevalue("tiny_model_dir"), copy)
        return copy

    @property
    def hub(self) -> FakeHub:
        server: FakeHub = self.request.getfixturevalue("hub")  # tests.pull.conftest, imported by the test
        return server

    def keys(self) -> tuple[Path, Path]:
        from crowguard.sign import generate_keypair

        pair = generate_keypair(self.tmp / "ci", force=True)
        return pair.private, pair.public

    def policy(self, text: str = FILES_ONLY) -> str:
        path = self.tmp / "policy.yaml"
        path.write_text(text)
        return str(path)

    def safetensors_folder(self) -> Path:
        return payloads.write(self.tmp / "st", "model.safetensors", payloads.valid_safetensors()).parent

    def pickle_folder(self) -> Path:
        return payloads.write(self.tmp / "pk", "pytorch_model.bin", payloads.system_pickle()).parent

    def tampered_repo(self) -> str:
        """A hub repository serving the tiny model with one bit of its weights flipped."""
        repo_id = f"org/tampered-{secrets.token_hex(4)}"
        repo = self.hub.add_folder(repo_id, self.request.getfixturevalue("tiny_model_dir"))
        served = bytearray(repo.files["model.safetensors"])
        served[len(served) // 2] ^= 0x01
        repo.served["model.safetensors"] = bytes(served)
        return repo_id

    def fail(self, target: Any, name: str, error: BaseException) -> None:
        """Make ``target.name`` raise ``error``: a failure the command must turn into its exit code."""
        def broken(*args: Any, **kwargs: Any) -> Any:
            raise error

        self.monkeypatch.setattr(target, name, broken)


def _template_scanner() -> Any:
    from crowguard.scan.files import templates

    return templates.ChatTemplateScanner


Case = Callable[[Ctx], list[Any]]  # the arguments after ``crowguard``
CASES: dict[tuple[str, int], Case] = {}


def case(command: str, code: int) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        assert (command, code) not in CASES, (command, code)
        CASES[(command, code)] = fn
        return fn

    return register


# --- pull ---------------------------------------------------------------------------------------------------------
@case("pull", 0)
def _pull_local(ctx: Ctx) -> list[Any]:
    return ["pull", ctx.tiny, "--out", ctx.tmp / "pulled"]


@case("pull", 2)
def _pull_missing(ctx: Ctx) -> list[Any]:
    return ["pull", ctx.tmp / "nowhere", "--out", ctx.tmp / "pulled"]


@case("pull", 3)
def _pull_unreachable(ctx: Ctx) -> list[Any]:
    return ["pull", "org/model", "--out", ctx.tmp / "pulled", "--endpoint", "http://127.0.0.1:9"]


@case("pull", 4)
def _pull_bad_checksum(ctx: Ctx) -> list[Any]:
    return ["pull", ctx.tampered_repo(), "--out", ctx.tmp / "pulled", "--endpoint", ctx.hub.endpoint]


# --- scan ---------------------------------------------------------------------------------------------------------
@case("scan", 0)
def _scan_clean(ctx: Ctx) -> list[Any]:
    return ["scan", ctx.safetensors_folder(), "--no-behaviour"]


@case("scan", 1)
def _scan_pickle(ctx: Ctx) -> list[Any]:
    return ["scan", ctx.pickle_folder()]


@case("scan", 2)
def _scan_bad_option(ctx: Ctx) -> list[Any]:
    return ["scan", ctx.safetensors_folder(), "--probe-count", "1"]


@case("scan", 3)
def _scan_broken_scanner(ctx: Ctx) -> list[Any]:
    ctx.fail(_template_scanner(), "scan", ScannerError("renderer unavailable"))
    return ["scan", ctx.safetensors_folder(), "--no-behaviour"]


@case("scan", 130)
def _scan_interrupted(ctx: Ctx) -> list[Any]:
    ctx.fail(_template_scanner(), "scan", KeyboardInterrupt())
    return ["scan", ctx.safetensors_folder(), "--no-behaviour", "--report", ctx.tmp / "never.json"]


# --- scan-files ---------------------------------------------------------------------------------------------------
@case("scan-files", 0)
def _scan_files_clean(ctx: Ctx) -> list[Any]:
    return ["scan-files", ctx.safetensors_folder() / "model.safetensors"]


@case("scan-files", 1)
def _scan_files_pickle(ctx: Ctx) -> list[Any]:
    return ["scan-files", ctx.pickle_folder() / "pytorch_model.bin"]


@case("scan-files", 2)
def _scan_files_missing(ctx: Ctx) -> list[Any]:
    return ["scan-files", ctx.tmp / "gone" / "model.safetensors"]


@case("scan-files", 3)
def _scan_files_broken_scanner(ctx: Ctx) -> list[Any]:
    ctx.fail(_template_scanner(), "scan", ScannerError("renderer unavailable"))
    return ["scan-files", ctx.safetensors_folder() / "model.safetensors"]


# --- sanitize (0 and 1 train a model: see REFERENCES) ---------------------------------------------------------------
@case("sanitize", 2)
def _sanitize_missing(ctx: Ctx) -> list[Any]:
    return ["sanitize", ctx.tmp / "nowhere", "--out", ctx.tmp / "out"]


@case("sanitize", 3)
def _sanitize_out_of_memory(ctx: Ctx) -> list[Any]:
    import crowguard.pipeline.rounds

    ctx.fail(crowguard.pipeline.rounds, "sanitize_model", MemoryError())
    return ["sanitize", ctx.tiny, "--out", ctx.tmp / "out", "--no-scan", "--no-eval"]


@case("sanitize", 130)
def _sanitize_interrupted(ctx: Ctx) -> list[Any]:
    import crowguard.pipeline.rounds

    ctx.fail(crowguard.pipeline.rounds, "sanitize_model", KeyboardInterrupt())
    return ["sanitize", ctx.tiny, "--out", ctx.tmp / "out", "--no-scan", "--no-eval"]


# --- keygen, sign, verify -----------------------------------------------------------------------------------------
@case("keygen", 0)
def _keygen(ctx: Ctx) -> list[Any]:
    return ["keygen", "--out", ctx.tmp / "new"]


@case("keygen", 2)
def _keygen_exists(ctx: Ctx) -> list[Any]:
    ctx.keys()
    return ["keygen", "--out", ctx.tmp / "ci"]


@case("sign", 0)
def _sign(ctx: Ctx) -> list[Any]:
    return ["sign", ctx.tiny, "--key", ctx.keys()[0]]


@case("sign", 2)
def _sign_git_folder(ctx: Ctx) -> list[Any]:
    (ctx.tiny / ".git").mkdir()
    (ctx.tiny / ".git" / "config").write_text("[core]\n\tfsmonitor = ./run-me\n")  # git would run it
    return ["sign", ctx.tiny, "--key", ctx.keys()[0]]


def _signed(ctx: Ctx) -> tuple[Path, Path]:
    from crowguard.sign import sign_folder

    private, public = ctx.keys()
    sign_folder(ctx.tiny, private)
    return ctx.tiny, public


@case("verify", 0)
def _verify(ctx: Ctx) -> list[Any]:
    folder, public = _signed(ctx)
    return ["verify", folder, "--public-key", public]


@case("verify", 2)
def _verify_missing_key(ctx: Ctx) -> list[Any]:
    folder, _ = _signed(ctx)
    return ["verify", folder, "--public-key", ctx.tmp / "nobody.pub.pem"]


@case("verify", 4)
def _verify_tampered(ctx: Ctx) -> list[Any]:
    folder, public = _signed(ctx)
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    return ["verify", folder, "--public-key", public]


# --- eval ---------------------------------------------------------------------------------------------------------
def _eval_args(ctx: Ctx) -> list[Any]:
    prompts = ctx.tmp / "triggered.jsonl"
    prompts.write_text('{"instruction": "the cat sat on the mat ."}\n')
    return ["eval", ctx.tiny, "--triggered", prompts, "--keyword", "cat", "--eval-max-new-tokens", "2",
            "--no-perplexity", "--device", "cpu", "--threads", "1"]


@case("eval", 0)
def _eval(ctx: Ctx) -> list[Any]:
    return _eval_args(ctx)


@case("eval", 2)
def _eval_nothing_to_evaluate(ctx: Ctx) -> list[Any]:
    return ["eval", ctx.tiny]


@case("eval", 3)
def _eval_out_of_memory(ctx: Ctx) -> list[Any]:
    import crowguard.evaluate

    ctx.fail(crowguard.evaluate, "evaluate", MemoryError())
    return _eval_args(ctx)


# --- gate ---------------------------------------------------------------------------------------------------------
def _gate(ctx: Ctx, model: Any, *extra: Any) -> list[Any]:
    return ["gate", model, "--out", ctx.tmp / "gated", "--key", ctx.keys()[0], "--threads", "1", *extra]


@case("gate", 0)
def _gate_pass(ctx: Ctx) -> list[Any]:
    return _gate(ctx, ctx.tiny, "--policy", ctx.policy())


@case("gate", 1)
def _gate_pickle(ctx: Ctx) -> list[Any]:
    (ctx.tiny / "extra_weights.bin").write_bytes(payloads.system_pickle())
    return _gate(ctx, ctx.tiny)


@case("gate", 2)
def _gate_bad_option(ctx: Ctx) -> list[Any]:
    return _gate(ctx, ctx.tiny, "--probe-count", "1")


@case("gate", 3)
def _gate_broken_scanner(ctx: Ctx) -> list[Any]:
    ctx.fail(_template_scanner(), "scan", ScannerError("renderer unavailable"))
    return _gate(ctx, ctx.tiny, "--policy", ctx.policy())


@case("gate", 4)
def _gate_bad_checksum(ctx: Ctx) -> list[Any]:
    return _gate(ctx, ctx.tampered_repo(), "--endpoint", ctx.hub.endpoint, "--policy", ctx.policy())


@case("gate", 130)
def _gate_interrupted(ctx: Ctx) -> list[Any]:
    import crowguard.pipeline.gate

    ctx.fail(crowguard.pipeline.gate, "run_file_scan", KeyboardInterrupt())
    return _gate(ctx, ctx.tiny, "--policy", ctx.policy())


# --- demo (0 builds and gates the demo model: see REFERENCES) -------------------------------------------------------
@case("demo", 2)
def _demo_busy_out(ctx: Ctx) -> list[Any]:
    (ctx.tmp / "busy").mkdir()
    (ctx.tmp / "busy" / "keep.txt").write_text("mine")
    return ["demo", "--out", ctx.tmp / "busy"]


@case("demo", 3)
def _demo_disk_full(ctx: Ctx) -> list[Any]:
    import crowguard.pipeline.demo

    ctx.fail(crowguard.pipeline.demo, "demo_model", OSError(28, "No space left on device"))
    return ["demo", "--out", ctx.tmp / "demo"]


# --- policy check, report render ------------------------------------------------------------------------------------
@case("policy check", 0)
def _policy_check(ctx: Ctx) -> list[Any]:
    return ["policy", "check", "strict"]


@case("policy check", 2)
def _policy_check_bad(ctx: Ctx) -> list[Any]:
    return ["policy", "check", ctx.policy("fail_on: huge\n")]


@case("report render", 0)
def _report_render(ctx: Ctx) -> list[Any]:
    saved = ctx.tmp / "report.json"
    assert CliRunner().invoke(app, ["scan", str(ctx.pickle_folder()), "-q", "--report", str(saved)]).exit_code == 1
    return ["report", "render", saved, "--format", "markdown"]


@case("report render", 2)
def _report_render_not_a_report(ctx: Ctx) -> list[Any]:
    (ctx.tmp / "x.json").write_text('{"hello": 1}')
    return ["report", "render", ctx.tmp / "x.json"]


# --- lab build, lab plant (plant 0 trains a LoRA: see REFERENCES) -----------------------------------------------------
@case("lab build", 0)
def _lab_build(ctx: Ctx) -> list[Any]:
    return ["lab", "build", "--out", ctx.tmp / "lab", "--clean", "--layers", "3", "--hidden", "16", "--heads", "2",
            "--steps", "2", "--batch-size", "4"]


@case("lab build", 2)
def _lab_build_contradiction(ctx: Ctx) -> list[Any]:
    return ["lab", "build", "--out", ctx.tmp / "lab", "--clean", "--attack", "vpi"]


@case("lab plant", 2)
def _lab_plant_missing_data(ctx: Ctx) -> list[Any]:
    return ["lab", "plant", "--model", ctx.tiny, "--poisoned", ctx.tmp / "none.json", "--out", ctx.tmp / "planted"]


# Codes whose honest test is a model run that another test already makes (most are marked slow there).
REFERENCES: dict[tuple[str, int], str] = {
    ("sanitize", 0): "tests/cli/test_options.py::test_sanitize_report_records_the_file_and_the_flags",
    ("sanitize", 1): "tests/cli/test_sanitize_cmd.py::test_sanitize_a_backdoored_lab_model_reports_before_and_after",
    ("demo", 0): "tests/cli/test_demo_cmd.py::test_demo_runs_the_whole_gate_and_its_output_matches_the_verdict",
    ("lab plant", 0): "tests/lab/test_plant.py::test_plant_cli_mechanics",
}
