"""Paths: links (never followed), hard links, special files, executables, names that hide or that
are paths in another OS's syntax, and index entries that point outside the folder.

A link is judged by where it would resolve, computed from link metadata only: nothing behind it is
opened. A link that leaves the folder (``model.safetensors -> /etc/passwd``) would make a loader,
a copy or a signer read outside the model; one that stays inside is reported for review. A regular
file with more than one hard link shares its data with another name, which may lie outside the
folder (and change after the scan); its other names cannot be found without searching the disk, so
every such file is reported. A name holding a backslash or a drive letter (``..\\..\\x``,
``C:evil``) is one file here but a path on Windows, where an unpacker or loader may write or read
outside the folder with it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from crowguard.report.model import Finding, Severity
from crowguard.scan.files.json_files import JsonFileError, load_json_file
from crowguard.scan.interface import FileScanner, Inventory, InventoryFile, InventoryLink, ScanOutcome

if TYPE_CHECKING:
    from crowguard.policy import Policy

NATIVE_FORMATS = {"elf": "ELF", "pe": "Windows PE", "macho": "Mach-O"}
# Control and bidirectional characters, and the lone surrogates that stand for bytes that are not UTF-8.
_ODD_NAME = re.compile("[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069\u200b-\u200f\udc80-\udcff]")
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_FOREIGN_PATH = re.compile(r"\\|(^|/)[A-Za-z]:")
_REAL_FILES = "Scan a folder of real files: `crowguard pull`, or copy the files after checking where the links point."


class PathScanner(FileScanner):
    """Links, special files, executables, odd names, and safetensors index entries."""

    name = "paths"

    def scan(self, folder: Path, inventory: Inventory, policy: Policy) -> ScanOutcome:
        root = Path(os.path.realpath(folder))
        findings = [_link(folder, root, link) for link in inventory.links]
        findings += [Finding(rule_id="CG-PATH-SPECIAL-FILE", severity=Severity.HIGH,
                             title=f"{special.kind} in the model folder", file=special.path,
                             evidence=f"a {special.kind} is not a model file; reading it can block or read a device",
                             remediation="Remove it; a model folder holds regular files only.")
                     for special in inventory.specials]
        for file in inventory.files:
            findings += _executable(file)
            findings += _hard_link(file)
            if file.path.endswith(".index.json"):
                findings += _index_entries(file, inventory)
        names = [f.path for f in inventory.files] + [link.path for link in inventory.links]
        findings += [Finding(rule_id="CG-PATH-ODD-NAME", severity=Severity.MEDIUM,
                             title="file name with control, bidirectional or undecodable characters", file=name,
                             evidence=_odd_name_evidence(name), remediation="Rename or remove the file.")
                     for name in names if _ODD_NAME.search(name)]
        findings += [Finding(rule_id="CG-PATH-FOREIGN-SYNTAX", severity=Severity.HIGH,
                             title="file name that is a path on another OS", file=name,
                             evidence=f"the name {name!r} holds a backslash or a drive letter: on Windows it "
                             "names a path, which may lead out of the folder",
                             remediation="Do not unpack or load this model on Windows; rename or remove the file.")
                     for name in names if _FOREIGN_PATH.search(name)]
        return ScanOutcome(findings=tuple(findings))


def _link(folder: Path, root: Path, link: InventoryLink) -> Finding:
    resolved = Path(os.path.realpath(folder / link.path))
    inside = resolved == root or root in resolved.parents
    if inside and resolved.exists():
        return Finding(rule_id="CG-PATH-SYMLINK", severity=Severity.MEDIUM, title="symbolic link inside the folder",
                       file=link.path, location=f"-> {link.target}",
                       evidence="the link was not followed; its target inside the folder is scanned as itself",
                       remediation=_REAL_FILES, details={"target": link.target})
    why = "points outside the model folder" if not inside else "points to nothing"
    return Finding(rule_id="CG-PATH-SYMLINK-ESCAPE", severity=Severity.HIGH, title=f"symbolic link that {why}",
                   file=link.path, location=f"-> {link.target}",
                   evidence=f"the link {why} ({link.target}); it was not followed, and a loader, copy or signer "
                   "that follows it would read a file that is not part of the model",
                   remediation=_REAL_FILES, details={"target": link.target})


def _odd_name_evidence(name: str) -> str:
    if _UNDECODABLE.search(name):
        return "the name is not valid UTF-8; reports show its undecodable bytes escaped (\\xNN)"
    return f"the name {name!r} displays differently from what it is"


def _hard_link(file: InventoryFile) -> list[Finding]:
    if file.hard_links <= 1:
        return []
    return [Finding(rule_id="CG-PATH-HARDLINK", severity=Severity.HIGH, title="file with several hard links",
                    file=file.path, evidence=f"{file.hard_links} names share this file's data; another name may "
                    "lie outside the model folder, and a write through it changes the model after the scan",
                    remediation="Copy the file (cp, not ln) so that it has one name, or use crowguard pull.",
                    details={"st_nlink": file.hard_links})]


def _executable(file: InventoryFile) -> list[Finding]:
    if file.format in NATIVE_FORMATS or file.format == "script":
        kind = NATIVE_FORMATS.get(file.format, "script with a #! line")
        return [Finding(rule_id="CG-PATH-EXECUTABLE", severity=Severity.HIGH,
                        title=f"executable ({kind}) in the folder", file=file.path,
                        evidence=f"{kind} content, {file.size} bytes; model folders hold no programs",
                        remediation="Remove it and ask the publisher why it is there.",
                        details={"sha256": file.sha256, "mode_executable": file.executable})]
    if file.executable:
        return [Finding(rule_id="CG-PATH-EXEC-BIT", severity=Severity.LOW, title="data file marked executable",
                        file=file.path, evidence=f"{file.format} content with an executable permission bit",
                        remediation="Clear the bit (chmod -x); data files need no execute permission.")]
    return []


def _index_entries(file: InventoryFile, inventory: Inventory) -> list[Finding]:
    try:
        data = load_json_file(file)
    except (JsonFileError, OSError):
        return []  # reported by the remote-code scanner, which parses every JSON file
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        return []
    base = PurePosixPath(file.path).parent
    present = {f.path for f in inventory.files} | {link.path for link in inventory.links}
    findings = []
    for shard in sorted({str(v) for v in weight_map.values()}):
        parts = PurePosixPath(shard).parts
        if shard.startswith("/") or "\\" in shard or ".." in parts or not parts:
            findings.append(Finding(rule_id="CG-PATH-ESCAPE", severity=Severity.HIGH,
                                    title="index names a shard outside the folder", file=file.path,
                                    location=f"weight_map -> {shard}",
                                    evidence=f"shard path {shard!r} is absolute or climbs out of the folder",
                                    remediation="Do not load this model; a loader would read a file outside it."))
        elif str(base / shard).removeprefix("./") not in present:
            findings.append(Finding(rule_id="CG-INDEX-MISSING-SHARD", severity=Severity.MEDIUM,
                                    title="index names a shard that is not in the folder", file=file.path,
                                    location=f"weight_map -> {shard}", evidence=f"{shard} is missing",
                                    remediation="Download the model again; it is incomplete."))
    return findings
