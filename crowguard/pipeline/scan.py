"""``run_scan``: the file scan, then any further scan stages, then the policy's verdict.

Further stages (the behavioural scan) plug in as ``ScanStage`` callables: each gets the folder, the
policy and the stages run so far (so it can decline to load a model whose files failed), and
returns one StageResult. The verdict covers every stage; a stage that could not finish fails the
gate closed (exit 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from crowguard.errors import ModelFolderError
from crowguard.policy import Policy
from crowguard.report.model import FileEntry, Report, Source, StageResult
from crowguard.scan.files.stage import run_file_scan
from crowguard.scan.interface import ScanStage


def run_scan(model_dir: str | Path, policy: Policy, *, stages: Sequence[ScanStage] = (),
             reference: str | None = None) -> Report:
    """Scan a local model folder under ``policy``; ``reference`` is what the user named (default: the path)."""
    folder = Path(model_dir)
    if not folder.exists() and not folder.is_symlink():
        raise ModelFolderError(f"model folder {folder} does not exist", hint="check the path")
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is not a folder", hint="give the folder that holds the model files")
    try:
        empty = next(folder.iterdir(), None) is None
    except OSError as exc:
        raise ModelFolderError(f"cannot list {folder}: {exc.strerror}", hint="check the folder's permissions") from None
    if empty:
        raise ModelFolderError(f"model folder {folder} is empty", hint="give the folder that holds the model files")
    file_scan = run_file_scan(folder, policy)
    results: tuple[StageResult, ...] = (file_scan.stage,)
    for stage in stages:
        results += (stage(folder, policy, results),)
    files = tuple(FileEntry(path=f.path, size=f.size, sha256=f.sha256, format=f.format)
                  for f in file_scan.inventory.files)
    return Report(command="scan", source=Source(reference=reference or str(model_dir), kind="local", files=files),
                  stages=results, settings={"policy": policy.model_dump(mode="json")},
                  verdict=policy.verdict(results))
