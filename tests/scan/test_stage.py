"""The file-scan stage: clean folders pass, a scanner that fails or crashes fails the stage closed."""

from pathlib import Path

from crowguard.scan.files.stage import SCANNERS, run_file_scan
from crowguard.scan.interface import FileScanner, ScannerError, ScanOutcome
from tests.scan import payloads
from tests.scan.conftest import policy


class _Broken(FileScanner):
    name = "broken"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def scan(self, folder, inventory, policy) -> ScanOutcome:
        raise self.exc


def test_clean_folder_metrics_and_chart(tiny_model_dir: Path) -> None:
    result = run_file_scan(tiny_model_dir, policy())
    stage = result.stage
    assert (stage.name, stage.status, stage.findings, stage.errors) == ("file-scan", "completed", (), ())
    assert stage.metrics["files"] == len(result.inventory.files) >= 5
    assert stage.metrics["bytes"] == sum(f.size for f in result.inventory.files)
    chart = stage.metrics["charts"][0]
    assert chart["kind"] == "bar" and "safetensors" in chart["labels"]


def test_scanner_error_and_crash_fail_closed_but_keep_findings(tmp_path: Path) -> None:
    payloads.write(tmp_path, "model.pkl", payloads.system_pickle())
    scanners = (*SCANNERS, _Broken(ScannerError("renderer missing")), _Broken(KeyError("oops")))
    stage = run_file_scan(tmp_path, policy(), scanners).stage
    assert stage.status == "failed"
    assert stage.errors == ("broken: renderer missing", "broken crashed: KeyError: 'oops'")
    assert "CG-PICKLE-DANGEROUS-IMPORT" in {f.rule_id for f in stage.findings}


def test_findings_sorted_most_severe_first(tmp_path: Path) -> None:
    payloads.write(tmp_path, "a.pkl", payloads.UNKNOWN_IMPORT)
    payloads.write(tmp_path, "b.pkl", payloads.system_pickle())
    ranks = [f.severity.rank for f in run_file_scan(tmp_path, policy("permissive")).stage.findings]
    assert ranks == sorted(ranks, reverse=True) and len(ranks) == 2
