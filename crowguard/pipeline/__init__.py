"""Commands as functions: each runs its stages and returns a Report; none prints or exits."""

from crowguard.pipeline.scan import ScanStage, run_scan

__all__ = ["ScanStage", "run_scan"]
