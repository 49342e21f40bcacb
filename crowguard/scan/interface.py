"""The scanner interface: what a file scanner receives, what it returns, and how it fails.

A scanner looks at a model folder through its ``Inventory`` (built once, never following links) and
returns a ``ScanOutcome``: findings, files it skipped with the reason, and errors. A file that
cannot be parsed is a finding, not an error: errors are for what the scanner itself could not do
(an unreadable file, a library failure). Any error fails the stage closed and the gate exits 3; a
scanner reports errors per file so that one bad file does not hide the rest, and raises
``ScannerError`` when it cannot go on at all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from crowguard.report.model import Finding, SkippedFile, StageResult

if TYPE_CHECKING:
    from crowguard.policy import Policy


class ScannerError(Exception):
    """A scanner could not finish; the scan must fail closed (exit 3)."""


@dataclass(frozen=True)
class InventoryFile:
    """A regular file of the model folder: relative POSIX path, size, sha256, format told by content."""

    path: str
    absolute: Path
    size: int
    sha256: str
    format: str
    executable: bool = False
    hard_links: int = 1  # st_nlink: above 1, the same data is reachable under another name, maybe outside
    also: tuple[str, ...] = ()  # other formats the same bytes load as (a polyglot), see file_formats.also_formats


@dataclass(frozen=True)
class InventoryLink:
    """A symbolic link, recorded and never followed."""

    path: str
    target: str


@dataclass(frozen=True)
class InventorySpecial:
    """Something that is neither a file, a folder nor a link (FIFO, socket, device): never opened."""

    path: str
    kind: str


@dataclass(frozen=True)
class Inventory:
    """Everything in a model folder, as received."""

    root: Path
    files: tuple[InventoryFile, ...] = ()
    links: tuple[InventoryLink, ...] = ()
    specials: tuple[InventorySpecial, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()


@dataclass(frozen=True)
class ScanOutcome:
    """What one scanner produced."""

    findings: tuple[Finding, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()
    errors: tuple[str, ...] = ()


class FileScanner(ABC):
    """One check over the model's files. Scanners never load a model and never run its code."""

    name: str

    @abstractmethod
    def scan(self, folder: Path, inventory: Inventory, policy: Policy) -> ScanOutcome:
        """Examine the inventoried files; raise ScannerError only when the scanner cannot go on."""


class ScanStage(Protocol):
    """A scan stage after the file scan (the behavioural scan): it gets the folder, the policy and the
    stages run so far (so it can decline to load a model whose files failed) and returns one stage."""

    def __call__(self, folder: Path, policy: Policy, prior: tuple[StageResult, ...], /) -> StageResult: ...
