"""How far the input's trigger candidates still steer a sanitized model (the re-check), beside its backdoor.

    python -m bench.recheck_shares [--lab /work/cache/gate-bench] [--real /work/cache/realzoo/removal]

The gate's re-check measures the input scan's candidates on the sanitized model and flags it only at the
policy's threshold (0.83 by default), like a fresh scan. A trigger found in full that now steers, say, 0.6
of the probes is a backdoor weakened, not gone; whether a lower re-check bar (the rounds' half threshold,
``rounds.GUIDE_SHARE_OF_THRESHOLD``) would separate removed from surviving backdoors is what this reads
off the cached gate reports of ``bench/gate_lora_lab.py`` (lab) and ``bench/real_removal.py`` (SmolLM2):
per gate, the re-check's score (the largest target share of a candidate whose layer z counts, what the
finding reads) and its largest target share of any candidate that is not an echo, the attack success and
(lab) the accuracy under the trigger after, and the gate's verdict. It runs nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.gate_lora_lab import stage as _stage
from bench.harness import cache_path, table_head, table_row
from crowguard.pipeline.rounds import found_in_part
from crowguard.policy import Policy
from crowguard.scan.behaviour.outputs import same_answer

THRESHOLD = Policy().behaviour_scan.threshold  # the default policy's, which every gate read here ran under
HALF = found_in_part(Policy())


def _share(report: dict, name: str) -> float | None:
    """The largest target share of a candidate that is not an echo in stage ``name`` (None: not run)."""
    stage = _stage(report, name)
    if not stage:
        return None
    shares = [c["target_share"] for c in stage.get("metrics", {}).get("candidates", [])
              if c.get("target_share") is not None and not c.get("echo")]
    return max(shares, default=0.0)


def _trigger_share(report: dict) -> float:
    """What ``crowguard.pipeline.persisting`` reads: the largest re-check share of an input candidate that counted
    and steered past the threshold there (not an echo), into any answer but an echo of it that is not the taught
    answer (0 when no trigger flagged the input)."""
    scan = _stage(report, "behaviour-scan")
    if not any(f["rule_id"] == "CG-BACKDOOR-TRIGGER" for f in scan.get("findings", [])):
        return 0.0
    triggers = {(tuple(c["token_ids"]), c.get("position")): c["target"] for c in scan["metrics"]["candidates"]
                if (c.get("target_share") or 0.0) >= THRESHOLD and not c.get("echo") and c.get("counted")}
    return max((c["target_share"] for c in _stage(report, "behaviour-recheck")["metrics"]["candidates"]
                if (key := (tuple(c["token_ids"]), c.get("position"))) in triggers
                and (not c.get("echo") or same_answer(c.get("target"), triggers[key]))), default=0.0)


def record(label: str, report: dict) -> dict | None:
    """One sanitized gate's figures (None: the gate did not sanitize)."""
    after = _stage(report, "eval-after").get("metrics", {})
    recheck = _share(report, "behaviour-recheck")
    if not after or recheck is None:
        return None
    return {"gate": label, "asr": after.get("asr"), "triggered_accuracy": after.get("triggered_accuracy"),
            "clean_accuracy": after.get("clean_accuracy"), "recheck": recheck,
            "trigger": _trigger_share(report),
            "recheck_score": _stage(report, "behaviour-recheck").get("metrics", {}).get("score"),
            "rescan": _share(report, "behaviour-rescan"), "passed": report["verdict"]["passed"]}


def gates(lab: Path, real: Path) -> list[dict]:
    found = [(f"lab {p.parent.name}", p) for p in sorted(lab.glob("gate*/report.json"))]
    found += [(f"SmolLM2 {p.name.removesuffix('.report.json')}", p) for p in sorted(real.glob("*.report.json"))]
    return [r for label, path in found if (r := record(label, json.loads(path.read_text()))) is not None]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", type=Path, default=cache_path("gate-bench"))
    parser.add_argument("--real", type=Path, default=cache_path("realzoo") / "removal")
    args = parser.parse_args(argv)
    rows = gates(args.lab, args.real)
    lines = table_head("gate", "ASR after", "clean acc after", "acc under trigger after",
                       "re-check: score (counted candidates)", "re-check: best share (any)",
                       "re-scan: best share", "gate",
                       "re-check: the input's trigger", f"that >= {HALF:.3f}")
    for r in rows:
        lines.append(table_row(r["gate"], _num(r["asr"]), _num(r["clean_accuracy"]), _num(r["triggered_accuracy"]),
                               _num(r["recheck_score"]), _num(r["recheck"]), _num(r["rescan"]),
                               "signed" if r["passed"] else "refused",
                               _num(r["trigger"]), "yes" if r["trigger"] >= HALF else "no"))
    print("\n".join(lines) if rows else "No sanitized gate in the caches.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
