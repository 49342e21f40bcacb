"""The behavioural backdoor scan: trigger candidates found from layer inconsistency and checked on outputs.

See ``stage.py`` for the public API and ``../../../bench/RESULTS.md`` for its measured AUROC and cost.
"""

from crowguard.scan.behaviour.evidence import CandidateEvidence, TriggerCandidate
from crowguard.scan.behaviour.options import BehaviourOptions
from crowguard.scan.behaviour.stage import BehaviourScanResult, behaviour_scan, behaviour_stage, measure_candidates

__all__ = [
    "BehaviourOptions",
    "BehaviourScanResult",
    "CandidateEvidence",
    "TriggerCandidate",
    "behaviour_scan",
    "behaviour_stage",
    "measure_candidates",
]
