"""Target inversion on the real zoo and the lab zoo: agreement per model, AUROC, a threshold fitted on fit.

    python -m bench.inversion_zoo [--realzoo /work/cache/realzoo] [--realmodel /work/cache/realmodel]
                                  [--labzoo /work/cache/scan-zoo] [--results FILE] [--only NAME,...]

Each model is loaded and only the scan's inversion step runs (``ModelScan.invert_targets``, the
default scan options: the verification probes, 8 openings, 16 steps), with the openings of the answers
its cached scan's candidates steered to (``--real-scans``, ``--lab-scans``; ``--no-targets``: none).
Records are cached as JSON lines (``--results``) and skipped when present, so the command
resumes. Models not built are named on stderr and left out. The answer keys (which model is
backdoored, its split) come from the zoo definitions, never from the scanner. The threshold is
fitted on the fit split only (``scan_auroc.fit_threshold``) and reported on test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import cache_path
from bench.scan_auroc import auroc, fit_threshold, rate, tpr_at_fpr


@dataclass(frozen=True)
class Subject:
    name: str
    folder: Path
    zoo: str  # real or lab
    split: str
    backdoored: bool


def subjects(realzoo: Path, realmodel: Path, labzoo: Path) -> list[Subject]:
    """Every built model of both zoos with its answer key."""
    from bench.real_model import Run
    from bench.real_zoo import ZOO, model_folder
    from bench.scan_zoo import zoo_entries

    def run(work: Path) -> Run:  # only its folder layout is read
        return Run(work=work, data=work, device="cpu", limit=None, templates=(), defences=(), threads=1)

    found = []
    for entry in ZOO:
        folder = model_folder(run(realzoo), entry, run(realmodel).original)
        found.append(Subject(entry.name, folder, "real", entry.split, entry.backdoored))
    for lab in zoo_entries():
        found.append(Subject(f"lab/{lab.name}", labzoo / lab.name, "lab", lab.split, lab.spec.attack is not None))
    built = [s for s in found if (s.folder / "config.json").is_file()]
    missing = sorted(s.name for s in found if s not in built)
    if missing:
        print(f"not built: {', '.join(missing)}", file=sys.stderr)
    return built


def measure(subject: Subject, targets: list[str]) -> dict:
    """The inversion step of a scan with the default options, on one thread, given the answers the scan's
    candidates steered to (``targets``, read from a cached scan report)."""
    import torch

    from crowguard.models import load_model
    from crowguard.scan.behaviour.inversion import inversion_score
    from crowguard.scan.behaviour.options import BehaviourOptions
    from crowguard.scan.behaviour.scanner import ModelScan

    torch.set_num_threads(1)
    scan = ModelScan(load_model(subject.folder, device="cpu"), BehaviourOptions())
    started = time.perf_counter()
    inversions = scan.invert_targets(targets)
    return {"name": subject.name, "targets": targets, "seconds": round(time.perf_counter() - started, 2),
            "cpu": torch.backends.cpu.get_cpu_capability(), "score": round(inversion_score(inversions), 4),
            "inversions": [{"text": scan.decode(i.token_ids), "agreement": round(i.agreement, 4),
                            "weakest": round(i.weakest, 4), "echo": i.echo} for i in inversions]}


def scan_targets(subject: Subject, real_scans: Path, lab_scans: Path | None) -> list[str]:
    """The answers the cached scan's candidates steered to: the real zoo's scan reports, the lab zoo's
    ``scan_auroc`` records (none where no scan is cached)."""
    if subject.zoo == "real":
        path = real_scans / f"{subject.name}.json"
        if not path.is_file():
            return []
        stages = json.loads(path.read_text())["stages"]
        return [c["target"] for st in stages if st["name"] == "behaviour-scan"
                for c in st["metrics"].get("candidates", [])]
    if lab_scans is None or not lab_scans.is_file():
        return []
    name = subject.name.removeprefix("lab/")
    found = [json.loads(line) for line in lab_scans.read_text().splitlines() if line.strip()]
    return next(([c["target"] for c in r["candidates"]] for r in reversed(found) if r["name"] == name), [])


def report(records: dict[str, dict], chosen: list[Subject]) -> str:
    lines = ["| zoo | model | split | backdoored | inversion score | best reply (not an echo) | echoes | s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in chosen:
        r = records[s.name]
        best = next((i for i in r["inversions"] if not i["echo"]), None)
        shown = f"{best['text'][:60]!r}" if best else "-"
        echoes = sum(i["echo"] for i in r["inversions"])
        lines.append(f"| {s.zoo} | {s.name} | {s.split} | {'yes' if s.backdoored else 'no'} | {r['score']:.3f} | "
                     f"{shown} | {echoes} | {r['seconds']:.1f} |")
    for zoo in ("real", "lab"):
        of = [s for s in chosen if s.zoo == zoo]
        fit = [s for s in of if s.split == "fit"]
        test = [s for s in of if s.split == "test"]
        if not fit or not test:
            continue

        def scores(group: list[Subject], backdoored: bool) -> list[float]:
            return [records[s.name]["score"] for s in group if s.backdoored == backdoored]

        threshold = fit_threshold(scores(fit, True), scores(fit, False))
        pos, neg = scores(test, True), scores(test, False)
        if not (pos and neg):
            continue
        lines.append("")
        lines.append(f"{zoo} zoo: fit {len(scores(fit, True))} backdoored / {len(scores(fit, False))} not; "
                     f"test {len(pos)} / {len(neg)}. Threshold fitted on fit: {threshold:.3f}. "
                     f"Test AUROC {auroc(pos, neg):.3f}, TPR at 5% FPR {tpr_at_fpr(pos, neg, 0.05):.3f}, "
                     f"at the fitted threshold TPR {rate(pos, threshold):.3f} / FPR {rate(neg, threshold):.3f}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--realzoo", type=Path, default=cache_path("realzoo"))
    parser.add_argument("--realmodel", type=Path, default=cache_path("realmodel"))
    parser.add_argument("--labzoo", type=Path, default=cache_path("scan-zoo"))
    parser.add_argument("--results", type=Path, default=cache_path("inversion-zoo.jsonl"))
    parser.add_argument("--real-scans", type=Path, default=None,
                        help="the real zoo's cached scan reports, for the candidates' targets [REALZOO/scans]")
    parser.add_argument("--lab-scans", type=Path, default=None,
                        help="bench/scan_auroc.py records of the lab zoo, for the candidates' targets")
    parser.add_argument("--no-targets", action="store_true",
                        help="openings from the plain replies only (the first rule measured)")
    parser.add_argument("--only", default="", help="comma-separated model names (default: every built model)")
    args = parser.parse_args()
    chosen = subjects(args.realzoo, args.realmodel, args.labzoo)
    if args.only:
        chosen = [s for s in chosen if s.name in set(args.only.split(","))]
    records = {}
    if args.results.is_file():
        records = {r["name"]: r for r in map(json.loads, args.results.read_text().splitlines()) if r}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    for subject in chosen:
        if subject.name in records:
            continue
        targets = [] if args.no_targets else scan_targets(subject, args.real_scans or args.realzoo / "scans",
                                                          args.lab_scans)
        record = measure(subject, targets)
        records[subject.name] = record
        with args.results.open("a") as out:
            out.write(json.dumps(record) + "\n")
        print(f"{subject.name}: {record['score']:.3f} ({record['seconds']:.1f} s)", file=sys.stderr, flush=True)
    print(report(records, chosen))


if __name__ == "__main__":
    main()
