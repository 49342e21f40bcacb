"""The interface every pull source implements, and what a pull returns.

A source pins its reference (``resolve``), lists what it holds (``list_files``) and copies the
files chosen by the allow-list into a folder, each checked and hashed (``fetch``). Choosing files,
staging the output and importing GGUF are the same for every source and live in ``pulling``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import JsonValue

from crowguard.report.model import FileEntry, SkippedFile, Source, StageName, StageResult


class PullSource(ABC):
    """A place a model comes from."""

    kind: Literal["local", "hub"]

    def __init__(self, reference: str) -> None:
        self.reference = reference

    @abstractmethod
    def resolve(self) -> str | None:
        """Pin the reference (a commit sha for a hub repo, None for a local path); called once, first."""

    @abstractmethod
    def list_files(self) -> list[str]:
        """Paths the source holds, relative to its root (a trailing ``/`` marks a whole subfolder)."""

    @abstractmethod
    def fetch(self, names: Sequence[str], dest: Path) -> tuple[FileEntry, ...]:
        """Place the named files under ``dest``, checked against what the source publishes, and record them."""

    def local_file(self, name: str) -> Path | None:
        """The file itself when it is already on local disk (read in place, never modified), else None."""
        return None


@dataclass(frozen=True)
class PullSettings:
    """Where a hub model or GGUF file comes from (a local folder needs none of these)."""

    revision: str | None = None  # branch, tag or commit (hub only); resolved to a commit sha
    endpoint: str | None = None  # hub or mirror URL; None: HF_ENDPOINT, else the real hub
    gguf_file: str | None = None  # a GGUF file of the repository or folder to import as safetensors


@dataclass(frozen=True)
class PullResult:
    """What a pull produced: the pinned source with every file received, the output folder, and what was left."""

    source: Source
    output: Path
    skipped: tuple[SkippedFile, ...] = ()
    imported_from_gguf: str | None = None
    endpoint: str | None = None  # the hub or mirror, without credentials; None for local sources

    def stage(self, seconds: float = 0.0) -> StageResult:
        """The pull as a report stage."""
        metrics: dict[str, JsonValue] = {
            "files": len(self.source.files),
            "bytes": sum(f.size for f in self.source.files),
            "revision": self.source.revision,
        }
        if self.endpoint:
            metrics["endpoint"] = self.endpoint
        if self.imported_from_gguf:
            metrics["imported_from_gguf"] = self.imported_from_gguf
        return StageResult(name=StageName.PULL, skipped=self.skipped, metrics=metrics, seconds=round(seconds, 3))
