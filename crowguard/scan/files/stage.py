"""The file-scan stage: inventory once, run every file scanner, return one StageResult.

Findings whose rules no policy may accept (path escapes, executables, malformed safetensors,
polyglots, ambiguous archives, unlisted pickle imports) are raised to CRITICAL here, so they fail
every policy whatever severity their scanner gave them (``policy.FLOOR_CRITICAL_RULES``).
Any error (an unreadable file, a scanner that stopped or crashed) fails the stage, and so the gate
closes with exit 3 while the report still lists everything that was found. Metrics carry the read
throughput of the inventory and a chart of bytes per format for the HTML report.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crowguard.policy import with_severity_floor
from crowguard.report.charts import CHARTS_KEY, bar_chart
from crowguard.report.model import Finding, SkippedFile, StageName, StageResult
from crowguard.scan.files.gguf_header import GgufHeaderScanner
from crowguard.scan.files.inventory import build_inventory
from crowguard.scan.files.paths import PathScanner
from crowguard.scan.files.pickle_opcodes import PickleOpcodeScanner
from crowguard.scan.files.remote_code import RemoteCodeScanner
from crowguard.scan.files.safetensors_header import SafetensorsHeaderScanner
from crowguard.scan.files.templates import ChatTemplateScanner
from crowguard.scan.files.weight_formats import WeightFormatScanner
from crowguard.scan.files.weights_present import WeightsPresentScanner
from crowguard.scan.interface import FileScanner, Inventory, ScannerError

if TYPE_CHECKING:
    from crowguard.policy import Policy

SCANNERS: tuple[FileScanner, ...] = (WeightFormatScanner(), SafetensorsHeaderScanner(), PickleOpcodeScanner(),
                                     RemoteCodeScanner(), ChatTemplateScanner(), PathScanner(), WeightsPresentScanner(),
                                     GgufHeaderScanner())


@dataclass(frozen=True)
class FileScanResult:
    """The inventory (for the report's source) and the stage result."""

    inventory: Inventory
    stage: StageResult


def run_file_scan(folder: Path, policy: Policy, scanners: tuple[FileScanner, ...] = SCANNERS) -> FileScanResult:
    """Inventory ``folder`` and run ``scanners`` over it; never raises for what it finds."""
    started = time.perf_counter()
    inventory, inventory_errors = build_inventory(folder)
    read_seconds = time.perf_counter() - started
    findings: list[Finding] = []
    skipped: list[SkippedFile] = list(inventory.skipped)
    errors = list(inventory_errors)
    for scanner in scanners:
        try:
            outcome = scanner.scan(folder, inventory, policy)
        except ScannerError as exc:
            errors.append(f"{scanner.name}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - a crashed scanner must fail the stage closed, not vanish
            errors.append(f"{scanner.name} crashed: {type(exc).__name__}: {exc}")
            continue
        findings += [with_severity_floor(f) for f in outcome.findings]
        skipped += outcome.skipped
        errors += [f"{scanner.name}: {e}" for e in outcome.errors]
    findings.sort(key=lambda f: (-f.severity.rank, f.file or "", f.rule_id, f.location or ""))
    stage = StageResult(name=StageName.FILE_SCAN, status="failed" if errors else "completed", findings=tuple(findings),
                        errors=tuple(errors), skipped=tuple(skipped), metrics=_metrics(inventory, read_seconds),
                        seconds=round(time.perf_counter() - started, 3))
    return FileScanResult(inventory=inventory, stage=stage)


def _metrics(inventory: Inventory, read_seconds: float) -> dict:
    total = sum(f.size for f in inventory.files)
    by_format: Counter[str] = Counter()
    for file in inventory.files:
        by_format[file.format] += file.size
    formats = sorted(by_format, key=lambda k: -by_format[k])
    return {
        "files": len(inventory.files),
        "links": len(inventory.links),
        "bytes": total,
        "read_seconds": round(read_seconds, 3),
        "read_mb_per_s": round(total / read_seconds / 1e6, 1) if read_seconds > 0 else 0.0,
        CHARTS_KEY: [bar_chart("Bytes per format (by content)", formats, [by_format[k] for k in formats],
                               unit="bytes")],
    }
