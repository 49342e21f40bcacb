"""Run a composite GitHub Action's steps locally, in order, the way a runner would (no runner offline).

What it does, and no more: reads ``action.yml``; substitutes ``${{ ... }}`` expressions for inputs
(with their defaults), ``github.action_path``, ``github.workspace``, ``runner.temp``, ``runner.os`` and
``steps.<id>.outputs.<name>``; evaluates ``if:`` conditions made of ``always()``, ``success()``,
``failure()`` and ``==`` / ``!=`` comparisons joined by ``&&``; runs each ``run:`` step with
``bash --noprofile --norc -eo pipefail`` in the workspace, with the step's ``env:``, a fresh
``GITHUB_OUTPUT`` file per step (parsed into step outputs, ``name=value`` and ``name<<DELIM`` forms)
and one ``GITHUB_STEP_SUMMARY`` file; after a failed step only ``always()`` steps run. ``uses:`` steps
are recorded as skipped, never run. With ``reuse_venv`` the ``install`` step is skipped too and
``$RUNNER_TEMP/crowguard-venv`` links to the running interpreter's virtualenv (a cache hit). Any other
expression is an error, so the action cannot silently rely on something this runner does not model.

    python -m tests.action_runner --input model=path --input policy=default [--reuse-venv]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_COMPARE = re.compile(r"^(.+?)\s*(==|!=)\s*(.+)$")


@dataclass
class StepRun:
    name: str
    status: str  # "ran", "skipped (uses: X)", "skipped (if)", "skipped (reuse venv)"
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    github_output: str = ""


@dataclass
class ActionRun:
    exit_code: int  # the first failing step's exit code, else 0
    steps: list[StepRun]
    outputs: dict[str, str]
    summary: str
    log: str
    runner_temp: Path


def run_action(inputs: dict[str, str], *, workspace: Path, action_dir: Path = REPO, reuse_venv: bool = False,
               env: dict[str, str] | None = None, timeout: float = 600) -> ActionRun:
    """Run ``action_dir/action.yml`` with ``inputs`` in ``workspace``; return what each step did."""
    action = yaml.safe_load((action_dir / "action.yml").read_text())
    if action["runs"]["using"] != "composite":
        raise ValueError("only composite actions can be run")
    declared = action.get("inputs", {})
    unknown = set(inputs) - set(declared)
    if unknown:
        raise ValueError(f"inputs not declared in action.yml: {sorted(unknown)}")
    values = {name: str(inputs.get(name, spec.get("default", ""))) for name, spec in declared.items()}
    missing = [n for n, spec in declared.items() if spec.get("required") and not values[n]]
    if missing:
        raise ValueError(f"required inputs missing: {missing}")
    temp = Path(tempfile.mkdtemp(prefix="runner-temp-"))
    summary = temp / "step_summary.md"
    summary.touch()
    if reuse_venv:
        (temp / "crowguard-venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    context: dict[str, Any] = {
        "inputs": values, "steps": {},
        "github": {"action_path": str(action_dir), "workspace": str(workspace)},
        "runner": {"temp": str(temp), "os": "Linux"},
    }
    base_env = {**os.environ, **(env or {}), "GITHUB_ACTION_PATH": str(action_dir),
                "GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(temp), "RUNNER_OS": "Linux",
                "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_ACTIONS": "true", "CI": "true"}
    runs: list[StepRun] = []
    failed_code = 0
    log: list[str] = []
    for index, step in enumerate(action["runs"]["steps"]):
        name = step.get("name", step.get("id", f"step {index}"))
        condition = step.get("if", "success()")
        if not _condition(condition, context, failed=failed_code != 0):
            runs.append(StepRun(name, "skipped (if)"))
            continue
        if "uses" in step:
            runs.append(StepRun(name, f"skipped (uses: {step['uses']})"))
            continue
        if reuse_venv and step.get("id") == "install":
            runs.append(StepRun(name, "skipped (reuse venv)"))
            continue
        if step.get("shell") != "bash":
            raise ValueError(f"step {name!r}: only shell: bash is modelled")
        output_file = temp / f"output-{index}"
        output_file.touch()
        script = temp / f"step-{index}.sh"
        script.write_text(_substitute(step["run"], context))
        step_env = {**base_env, "GITHUB_OUTPUT": str(output_file),
                    **{k: _substitute(str(v), context) for k, v in (step.get("env") or {}).items()}}
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=workspace,
                              env=step_env, capture_output=True, text=True, timeout=timeout)
        log.append(f"--- {name} (exit {done.returncode})\n{done.stdout}{done.stderr}")
        text = output_file.read_text()
        outputs = _parse_outputs(text)
        if step.get("id"):
            context["steps"][step["id"]] = {"outputs": outputs}
        runs.append(StepRun(name, "ran", done.returncode, outputs, text))
        if done.returncode and not failed_code:
            failed_code = done.returncode
    outputs = {name: _substitute(str(spec["value"]), context) for name, spec in action.get("outputs", {}).items()}
    return ActionRun(failed_code, runs, outputs, summary.read_text(), "\n".join(log), temp)


def _lookup(path: str, context: dict[str, Any]) -> str:
    """``inputs.x``, ``steps.id.outputs.name``, ``github.action_path``...: a missing step output is ''."""
    head, *rest = path.split(".")
    if head not in context:
        raise ValueError(f"expression {path!r} is not modelled by this runner")
    value: Any = context[head]
    for part in rest:
        if not isinstance(value, dict):
            raise ValueError(f"expression {path!r} is not modelled by this runner")
        if part not in value:
            if head == "steps":
                return ""
            raise ValueError(f"expression {path!r}: no {part!r}")
        value = value[part]
    return str(value)


def _operand(text: str, context: dict[str, Any]) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    return _lookup(text, context)


def _substitute(text: str, context: dict[str, Any]) -> str:
    return _EXPR.sub(lambda m: _lookup(m.group(1), context), text)


def _condition(condition: str, context: dict[str, Any], *, failed: bool) -> bool:
    """Evaluate an ``if:``; as on a runner, a condition without a status function implies success()."""
    text = _EXPR.sub(lambda m: m.group(1), str(condition)).strip()
    status_checked, result = False, True
    for term in (t.strip() for t in text.split("&&")):
        if term in ("always()", "success()", "failure()"):
            status_checked = True
            result = result and {"always()": True, "success()": not failed, "failure()": failed}[term]
            continue
        match = _COMPARE.match(term)
        if not match:
            raise ValueError(f"condition {condition!r} is not modelled by this runner")
        left, op, right = _operand(match.group(1), context), match.group(2), _operand(match.group(3), context)
        result = result and ((left == right) if op == "==" else (left != right))
    return result if status_checked else result and not failed


def _parse_outputs(text: str) -> dict[str, str]:
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            outputs[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--workspace", type=Path, default=Path.cwd())
    parser.add_argument("--reuse-venv", action="store_true", help="skip the install step; use this virtualenv")
    args = parser.parse_args()
    inputs = dict(item.split("=", 1) for item in args.input)
    run = run_action(inputs, workspace=args.workspace, reuse_venv=args.reuse_venv)
    sys.stderr.write(run.log + "\n")
    print(json.dumps({"exit_code": run.exit_code, "outputs": run.outputs,
                      "steps": [(s.name, s.status, s.exit_code) for s in run.steps]}, indent=2))
    return run.exit_code


if __name__ == "__main__":
    sys.exit(main())
