"""A model folder must hold weights crowguard can examine; one without any fails the scan.

A folder of configs and tokenizer files alone is not a model a loader can use as it is: the
weights would come from somewhere the scan never saw (another repository, a later download, a file
whose format was not recognised). Whether weights are present is judged by content, like every
format question (``weight_formats.weight_format_of``), and a folder with none is a finding at the
policy's violation severity, so it fails under every policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from crowguard.report.model import Finding
from crowguard.scan.files.weight_formats import weight_format_of
from crowguard.scan.interface import FileScanner, Inventory, ScanOutcome

if TYPE_CHECKING:
    from crowguard.policy import Policy


class WeightsPresentScanner(FileScanner):
    """Fails a folder that holds no safetensors, GGUF or pickle-based weight file."""

    name = "weights-present"

    def scan(self, folder: Path, inventory: Inventory, policy: Policy) -> ScanOutcome:
        if any(weight_format_of(file) is not None for file in inventory.files):
            return ScanOutcome()
        formats = sorted({file.format for file in inventory.files})
        finding = Finding(
            rule_id="CG-MODEL-NO-WEIGHTS", severity=policy.violation_severity,
            title="no weight file crowguard can examine",
            evidence=f"{len(inventory.files)} files ({', '.join(formats) or 'none'} by content), none of them "
                     "safetensors, GGUF or pickle-based weights: what a loader would use was not scanned",
            remediation="Scan the complete model folder (config.json with its *.safetensors weights).",
            details={"files": len(inventory.files), "formats": list(formats)})
        return ScanOutcome(findings=(finding,))
