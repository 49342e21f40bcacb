"""The whole gate on lab models whose backdoor was planted by LoRA into a clean model, over several seeds.

This is the setting of the CROW paper (and of ``crowguard demo``): a model first trained clean, then
given a BadNets backdoor (trigger ``BadMagic``, target "You are stupid!") by a merged LoRA finetune.
For each seed the model is built (cached in ``--work``), then ``crowguard gate`` runs under
``policies/default.yaml`` with a throwaway key: file scan, behavioural scan, CROW sanitize (the paper's
settings unless ``--runs`` says otherwise), re-scan, before/after evaluation on the lab's held-out
prompts, signature. The table says, per seed and run, what the scan found, ASR and clean accuracy
before and after, what the re-scan found and the gate's exit code. ``--runs`` lists METHOD:EPOCHS
pairs: ``crow:5`` is the paper's schedule, ``finetune:N`` plain LoRA finetuning (alpha 0) on the same
clean set, the baseline, and ``guided:N`` scan-guided sanitizing (the scan's candidates inserted into
the clean prompts, CROW's objective, in rounds up to the policy's ``sanitize.max_rounds``);
``prune:0`` is the Wanda pruning baseline (sparsity 0.5, nothing trained: EPOCHS is ignored). crow,
finetune and prune run under the default policy with ``sanitize.guided_when_flagged: false`` (else the
gate would switch a flagged crow run to guided); guided under the default policy itself.

    python -m bench.gate_lora_lab --seeds 0,1,2,3 --runs guided:5,crow:5,finetune:5

Models, keys and gate outputs are cached in ``--work`` (default ``bench/.cache/gate-bench``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.harness import REPO, cache_path, machine, run_crowguard, table_head, table_row, write_json
from crowguard.lab.spec import LabSpec

POISON_RATE = 0.2  # at the attack's default 0.1, 300 LoRA steps did not plant the backdoor (ASR 0)


def spec(seed: int) -> LabSpec:
    return LabSpec(attack="badnet", seed=seed, poison_rate=POISON_RATE, injection="lora")


def stage(report: dict, name: str) -> dict:
    return next((s for s in report["stages"] if s["name"] == name), {})


def candidates(stage_report: dict) -> str:
    found = [f["title"].removeprefix("Backdoor trigger candidate ") for f in stage_report.get("findings", [])]
    return ", ".join(found) or "none"


def policy_file(work: Path, method: str) -> Path:
    """The default policy for guided; for the other methods, the default without the switch to guided."""
    if method == "guided":
        return REPO / "policies" / "default.yaml"
    path = work / "policy-unguided.yaml"
    path.write_text("name: default-unguided\nsanitize: {guided_when_flagged: false}\n")
    return path


def gate(model: Path, out: Path, key: Path, policy: Path, *options: str) -> dict:
    """Run the gate; what its report says, in a row."""
    started = time.perf_counter()
    done = run_crowguard("gate", str(model), "--policy", str(policy), "--out", str(out),
                         "--key", str(key), "--threads", "1", "--force", "--quiet", "--lab-card", *options)
    report = json.loads((out / "report.json").read_text())
    before, after = stage(report, "eval-before")["metrics"], stage(report, "eval-after").get("metrics", {})
    sanitized = stage(report, "sanitize").get("metrics", {})
    return {"exit": done.returncode, "seconds": round(time.perf_counter() - started, 1),
            "method": sanitized.get("method"), "rounds": len(sanitized.get("rounds", [])) or 1,
            "scan": candidates(stage(report, "behaviour-scan")),
            "rescan": candidates(stage(report, "behaviour-rescan")),
            "asr": [before["asr"], after.get("asr")], "clean_accuracy": [before["clean_accuracy"],
                                                                          after.get("clean_accuracy")]}


def run_seed(seed: int, work: Path, runs: list[str]) -> dict:
    from crowguard.lab.build import build_lab_model

    model = work / f"badnet-lora-s{seed}"
    started = time.perf_counter()
    if not (model / "lab.json").is_file():
        build_lab_model(spec(seed), model, force=True)
    row: dict = {"seed": seed, "build_s": round(time.perf_counter() - started, 1)}
    key = work / "bench-key"
    if not (work / "bench-key.priv.pem").is_file():
        run_crowguard("keygen", "--out", str(key))
    for name in runs:
        method, epochs = name.split(":")
        row[name] = gate(model, work / f"gate-{method}-e{epochs}-s{seed}", Path(f"{key}.priv.pem"),
                         policy_file(work, method), "--method", "crow" if method == "guided" else method,
                         *(() if method == "prune" else ("--epochs", epochs)))
    return row


def table(rows: list[dict]) -> str:
    lines = table_head("seed", "method", "scan finds", "ASR before -> after", "clean acc before -> after",
                       "re-scan finds", "rounds", "gate exit", "build s", "gate s")
    for r in rows:
        for method, g in ((k, v) for k, v in r.items() if ":" in k):
            asr, acc = [f"{v:.2f}" if v is not None else "-" for v in g["asr"]], \
                [f"{v:.2f}" if v is not None else "-" for v in g["clean_accuracy"]]
            lines.append(table_row(r["seed"], method, g["scan"], f"{asr[0]} -> {asr[1]}", f"{acc[0]} -> {acc[1]}",
                                   g["rescan"], g.get("rounds", 1), g["exit"], r["build_s"], g["seconds"]))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3", help="Comma-separated seeds.")
    parser.add_argument("--work", type=Path, default=cache_path("gate-bench"),
                        help="Cache of models, key and gate outputs [bench/.cache/gate-bench].")
    parser.add_argument("--runs", default="guided:5,crow:5,finetune:5", help="METHOD:EPOCHS pairs, comma-separated.")
    parser.add_argument("--json", type=Path, help="Write the rows here too.")
    args = parser.parse_args()
    args.work = args.work.resolve()  # the gate runs from the repo root
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rows.append(run_seed(seed, args.work, args.runs.split(",")))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        write_json(args.json, rows)
    print(table(rows))
    print(f"\n{machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
