"""What the benchmark scripts share: where the repo and the caches are, crowguard in a child process,
torch threads, the machine's description, atomic JSON and markdown table lines.

Every script runs from the repository root as a module (``python -m bench.NAME``); the folder is a
package, so no script edits ``sys.path``. Caches and outputs default to ``bench/.cache/NAME``
(git-ignored); ``CROWGUARD_BENCH_CACHE`` moves them all, and each script's own option moves one.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CACHE_ENV = "CROWGUARD_BENCH_CACHE"
SHARED_DATA = REPO.parent / "shared" / "data"  # the project's read-only reference data (../shared/data/README.md)


def cache_path(name: str) -> Path:
    """``bench/.cache/NAME``, or ``$CROWGUARD_BENCH_CACHE/NAME`` when that is set."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else REPO / "bench" / ".cache") / name


def crowguard_command(*args: str) -> list[str]:
    """``python -m crowguard ARGS`` with this interpreter (run with ``cwd=REPO``: the repo's crowguard)."""
    return [sys.executable, "-m", "crowguard", *args]


def child_env(threads: int = 1, **extra: str) -> dict[str, str]:
    """The environment of a child: this one, with ``threads`` OpenMP threads, offline, no tokenizer threads."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            **extra}


def run_crowguard(*args: str, threads: int = 1) -> subprocess.CompletedProcess[str]:
    """Run ``crowguard ARGS`` in a child from the repo root; its exit code, stdout and stderr (never raises on exit)."""
    return subprocess.run(crowguard_command(*args), check=False, capture_output=True, text=True,
                          env=child_env(threads), cwd=REPO)


def set_threads(count: int) -> None:
    """Torch's intra-op thread count for this process (one is fastest for small models on small CPUs)."""
    import torch

    torch.set_num_threads(count)


def machine() -> str:
    """One line for RESULTS: CPU capability (AVX2, AVX-512, ...), cores, torch and Python versions."""
    import torch

    return (f"cpu capability: {torch.backends.cpu.get_cpu_capability()}; {os.cpu_count()} CPUs; "
            f"torch {torch.__version__}; Python {platform.python_version()}")


def write_json(path: Path, data: object, *, indent: int | None = 1, sort_keys: bool = False) -> None:
    """Write ``data`` as JSON through a temporary file and a rename, so an interrupted run leaves the old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_json(path: Path, default: Any) -> Any:
    """The JSON in ``path``, or ``default`` when the file is not there yet (a fresh cache)."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default


def table_head(*columns: str) -> list[str]:
    """A markdown table's header and separator lines."""
    return [table_row(*columns), table_row(*("---" for _ in columns))]


def table_row(*cells: object) -> str:
    """One markdown table line."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def markdown_table(columns: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    """A whole markdown table."""
    return "\n".join([*table_head(*columns), *(table_row(*row) for row in rows)])


def scan_options(pairs: list[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` pairs as BehaviourOptions fields, each value converted to its field's type."""
    import dataclasses

    from crowguard.scan.behaviour import BehaviourOptions

    kinds = {f.name: f.type for f in dataclasses.fields(BehaviourOptions)}
    options: dict[str, Any] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in kinds or not value:
            raise SystemExit(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of {', '.join(kinds)}")
        kind = str(kinds[name])
        if kind == "bool":
            options[name] = value.lower() in ("1", "true", "yes")
        else:
            options[name] = int(value) if kind == "int" else float(value) if kind == "float" else value
    return options
