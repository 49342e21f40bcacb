"""``crowguard scan-files FILE...``: the file scan of every model folder that holds one of FILES.

Built for the pre-commit hook (``.pre-commit-hooks.yaml``), which passes the names of the files added
or changed in a commit. The file scan works on a model folder as a whole (weights beside their config,
tokenizer and templates), so each file stands for the folder it lies in, and that folder is scanned
entirely, by content, exactly as ``crowguard scan --no-behaviour`` would: nothing is loaded or run.
A folder that lies inside another one being scanned is covered by it and not scanned twice. The exit
code is the worst of the folders' (0 when all pass).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from crowguard.cli.guard import guarded, stderr
from crowguard.cli.options import PolicyFile, quiet_option
from crowguard.cli.output import print_summary
from crowguard.policy import builtin_policy, load_policy


@guarded
def scan_files(
    files: Annotated[list[Path] | None, typer.Argument(help="Files (as a pre-commit hook passes them); each one's "
                                                       "folder is scanned.")] = None,
    policy: PolicyFile = None,
    quiet: Annotated[bool, quiet_option("Print only failing folders.")] = False,
) -> int:
    """File-scan the model folder of each FILE (no model loading); exit 0 when every folder passes."""
    from crowguard.pipeline import run_scan

    loaded = load_policy(policy if policy is not None else builtin_policy("default"))
    worst = 0
    for folder in model_folders(files or []):
        result = run_scan(folder, loaded)
        code = result.verdict.exit_code if result.verdict else 0
        if code or not quiet:
            count = len(result.source.files) if result.source else 0
            stderr.print(f"{folder}: file scan of {count} files", markup=False)  # a name may hold [markup]
            print_summary(result)
        worst = max(worst, code)
    return worst


def model_folders(files: list[Path]) -> list[Path]:
    """The distinct folders holding ``files`` (paths as given, links not resolved), outermost only, sorted."""
    folders = sorted({Path(os.path.normpath(Path(f).parent)) for f in files})
    kept: list[Path] = []
    for folder in folders:
        if not any(folder == outer or outer in folder.parents or outer == Path(".") for outer in kept):
            kept.append(folder)
    return kept
