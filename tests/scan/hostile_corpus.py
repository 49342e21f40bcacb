"""A generated hostile corpus: one model folder per case, each tagged with issue 13's item and the
outcome every shipped policy should give.

``cases()`` lists the cases; ``write_corpus(root)`` writes them (``root/<id>/``, plus
``root/_outside/``, the files that links and hard links reach out to) and a ``manifest.json``.
Each folder is a minimal model (``config.json``, and clean safetensors weights where the hostile
file is not itself the weights), so folder-level checks see a real model. Payloads are opcode
streams from ``pickle_builder``: nothing is pickled from live objects, imported or run. Used by
``tests/scan/test_hostile_corpus.py`` and ``bench/hostile_corpus.py``; standard library only,
except the benign torch control, which is built with ``torch.save`` when torch is installed.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
from pathlib import Path
from typing import Any

from tests.scan.hostile_case import Case
from tests.scan.hostile_corpus_cases import build_cases, system_call
from tests.scan.payloads import safetensors_bytes

CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 8}
OUTSIDE = "_outside"


def cases() -> list[Case]:
    """Every case, in a stable order (ids are unique)."""
    found = build_cases()
    ids = [c.id for c in found]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return found


def write_corpus(root: Path, selected: list[Case] | None = None) -> list[Case]:
    """Write every case (or ``selected``) under ``root``; existing case folders are replaced."""
    import shutil

    root.mkdir(parents=True, exist_ok=True)
    outside = root / OUTSIDE
    outside.mkdir(exist_ok=True)
    write_outside(outside)
    chosen = cases() if selected is None else selected
    for case in chosen:
        folder = root / case.id
        if folder.exists() or folder.is_symlink():
            shutil.rmtree(folder)
        write_case(case, folder, outside)
    manifest = [{"id": c.id, "item": c.item, "kind": c.kind, "description": c.description, "expect": c.expect}
                for c in chosen]
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return chosen


def write_outside(outside: Path) -> None:
    """What links reach for: a secret, a payload pickle, clean-looking weights."""
    (outside / "secret.txt").write_text("api_key=not-a-real-key\n", encoding="utf-8")
    (outside / "payload.bin").write_bytes(system_call(2))
    (outside / "model.safetensors").write_bytes(_clean_weights())


def write_case(case: Case, folder: Path, outside: Path) -> None:
    folder.mkdir(parents=True)
    if case.with_config:
        (folder / "config.json").write_text(json.dumps(CONFIG), encoding="utf-8")
    if case.with_weights:
        (folder / "model.safetensors").write_bytes(_clean_weights())
    for name, data in case.files.items():
        path = os.path.join(os.fsencode(folder), name) if isinstance(name, bytes) else str(folder / name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    if case.extra is not None:
        case.extra(folder, outside)


def _clean_weights() -> bytes:
    return safetensors_bytes({"__metadata__": {"format": "pt"},
                                 "model.embed.weight": {"dtype": "F32", "shape": [4, 2], "data_offsets": [0, 32]}},
                                bytes(32))


def crowguard_outcome(folder: Path, policy: str, report: Path) -> tuple[int, bool]:
    """``crowguard scan FOLDER --policy <shipped> --no-behaviour --report REPORT`` in this process.

    Returns the exit code (-1 for an exception that escaped the command) and whether a report with
    a verdict was written. stderr (the one-line summary of an error) is discarded.
    """
    from crowguard.policy import builtin_policy

    report.unlink(missing_ok=True)
    args = ["scan", str(folder), "--policy", str(builtin_policy(policy)), "--no-behaviour", "--quiet",
            "--report", str(report)]
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = _cli().main(args, prog_name="crowguard", standalone_mode=False)
        except SystemExit as exc:
            code = exc.code
        except Exception:  # noqa: BLE001 - a crash is an outcome here, and never the expected one
            code = -1
    try:
        written = isinstance(json.loads(report.read_text(encoding="utf-8")).get("verdict"), dict)
    except (OSError, ValueError, AttributeError):
        written = False
    return code if isinstance(code, int) else -1, written


@functools.cache
def _cli() -> Any:
    """The click command behind the typer app, built once (typer rebuilds it on every CliRunner call)."""
    from typer.main import get_command

    from crowguard.cli.app import app

    return get_command(app)


def meets(expected: str, code: int, report_written: bool) -> bool:
    """Whether an outcome is the one expected: block is exit 1 (or 3, failed closed), pass is 0."""
    if not report_written:
        return False
    return code in {"block": (1, 3), "pass": (0,), "either": (0, 1)}[expected]
