"""How well does the behavioural scan tell backdoored lab models from clean ones, and at what cost?

Scans every model of the zoo(s) with ``behaviour_scan`` (the default policy, one CPU thread), then
reports, on the test split only: AUROC of the scan's score, TPR at 5% FPR, TPR/FPR at the threshold
fitted on the fit split, how often a true trigger is among the top 5 reported candidates, and seconds
per model. The answer key (``lab.json``) is read here, by the benchmark, never by the scanner.

Split: the fit split of ``bench/scan_zoo.py`` (backdoored seed 1, clean seeds 101-108) chooses the
layer condition and the threshold; its test split (seed 2, clean seeds 201-209) is measured only.
Models of an extra zoo (``--extra-zoo``, e.g. the one ``bench/build_zoo.py`` builds) join the test
split unless they have the same spec as a model already in the zoo or as one of the two lab fixtures
the scan was developed on (``tests/conftest.py``: badnet and clean, seed 0); those are left out and
listed.

    python -m bench.scan_auroc --extra-zoo bench/.cache/zoo      # --zoo defaults to bench/.cache/scan-zoo

Scans are cached in ``--results`` (JSON lines, default ``bench/.cache/scan-auroc.jsonl``) and skipped
on a rerun; ``--rescan`` starts over.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import REPO, cache_path, scan_options
from bench.scan_zoo import zoo_entries
from crowguard.data.lab_card import read_lab_card
from crowguard.policy import builtin_policy, load_policy
from crowguard.scan.behaviour.decision import MIN_KL_Z

TOP = 5
SOURCES = ("library", "leakage", "vocabulary", "search")
Z_GRID = (0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0)
DEV_FIXTURES = REPO / ".cache" / "lab-fixtures"  # where tests/conftest.py caches its lab models


@dataclass(frozen=True)
class Model:
    name: str
    folder: Path
    split: str  # fit, test, excluded
    clean: bool
    attack: str
    triggers: tuple[str, ...]
    seed: int


def models(zoo: Path, extra: list[Path]) -> list[Model]:
    """Every built model to scan, with its split (models not built yet are named on stderr)."""
    found, seen = [], set()
    missing = [e.name for e in zoo_entries() if not (zoo / e.name / "lab.json").is_file()]
    if missing:
        print(f"not built yet (bench/scan_zoo.py): {', '.join(missing)}", file=sys.stderr)
    for entry in zoo_entries():
        if entry.name not in missing:
            model, key = _model(entry.name, zoo / entry.name, entry.split)
            found.append(model)
            seen.add(key)
    seen |= {_model(f.name, f, "dev")[1] for f in DEV_FIXTURES.glob("*-*") if (f / "lab.json").is_file()}
    for other in extra:
        for folder in sorted(p for p in other.iterdir() if (p / "lab.json").is_file()):
            model, key = _model(f"{other.name}/{folder.name}", folder, "test")
            found.append(Model(**{**model.__dict__, "split": "excluded" if key in seen else "test"}))
    return found


def _model(name: str, folder: Path, split: str) -> tuple[Model, tuple]:
    """The model and its spec key (what was trained; lab code versions may differ in vocabulary)."""
    card = read_lab_card(folder)
    assert card is not None
    attack = "clean" if card.clean else str(card.attack)
    if not card.clean and card.triggers != _default_triggers(attack):
        attack = f"{attack} (custom {card.trigger_position})"
    shape = tuple(card.architecture.get(k) for k in ("layers", "hidden", "heads"))
    key = (card.clean, card.attack, card.triggers, card.trigger_position, card.target, card.seed, card.poison_rate,
           shape, card.training.get("steps"), card.training.get("lr"))
    return Model(name, folder, split, card.clean, attack, tuple(card.triggers), card.seed), key


def _default_triggers(attack: str) -> tuple[str, ...]:
    from crowguard.lab.poison import ATTACKS

    return ATTACKS[attack].triggers


def scan(model: Model, threads: int, options: dict[str, Any] | None = None) -> dict:
    """One scan with the default policy (and ``options`` over the default scan options); the record the
    report is built from."""
    from crowguard.runtime import Runtime
    from crowguard.scan.behaviour import BehaviourOptions, behaviour_scan

    load = os.getloadavg()[0]
    started = time.perf_counter()
    result = behaviour_scan(model.folder, load_policy(builtin_policy("default")),
                            options=BehaviourOptions(**(options or {})),
                            runtime=Runtime(device="cpu", threads=threads)).stage
    seconds = time.perf_counter() - started
    metrics: Any = result.metrics  # read by key: the report's JSON
    return {"name": model.name, "options": options or {}, "status": result.status, "seconds": round(seconds, 2),
            "load": round(load, 2),
            "score": metrics.get("score"), "sequences": metrics.get("sequences_run"),
            "search_stopped_at": metrics.get("search_stopped_at"), "unscored": metrics.get("unscored_candidates"),
            "flagged": bool(result.findings), "leaked": metrics.get("leaked", []),
            "candidates": [{k: c[k] for k in ("text", "source", "position", "target_share", "target", "layer_z",
                                              "output_kl_z", "next_token_pull", "echo")}
                           for c in metrics.get("candidates", [])]}


def auroc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a backdoored model scores above a clean one (ties count half)."""
    pairs = [(p > n) + 0.5 * (p == n) for p in positives for n in negatives]
    return sum(pairs) / len(pairs) if pairs else float("nan")


def tpr_at_fpr(positives: list[float], negatives: list[float], fpr: float) -> float:
    """Best TPR over thresholds whose FPR is at most ``fpr``."""
    best = 0.0
    for threshold in sorted(set(positives + negatives)) + [float("inf")]:
        if sum(n >= threshold for n in negatives) <= fpr * len(negatives):
            best = max(best, sum(p >= threshold for p in positives) / len(positives))
    return best


def fit_threshold(positives: list[float], negatives: list[float]) -> float:
    """The midpoint of the widest gap that maximises TPR - FPR on the fit split."""
    values = sorted(set(positives + negatives))
    cuts = [(a + b) / 2 for a, b in itertools.pairwise(values)] or values

    def youden(t: float) -> tuple[float, float]:
        gap = min((abs(v - t) for v in values), default=0.0)
        return rate(positives, t) - rate(negatives, t), gap

    return max(cuts, key=youden)


def trigger_hit(triggers: tuple[str, ...], attack: str, texts: list[str]) -> tuple[bool, bool]:
    """(a whole trigger is among ``texts``, some trigger word is): for ctba the whole trigger is all three."""
    words = [set(re.findall(r"\w+", t.lower())) for t in texts]
    wanted = [set(re.findall(r"\w+", t.lower())) for t in triggers]
    if attack.startswith("ctba"):
        wanted = [set().union(*wanted)]
    whole = any(w <= c for w in wanted for c in words)
    part = any(w & c for w in wanted for c in words)
    return whole, part


def score_at(record: dict, min_layer_z: float, sources: tuple[str, ...] = SOURCES) -> float:
    """The scan's score (``decision.model_score``) recomputed from the candidates for another min_layer_z
    (and, for an ablation, only from candidates of some sources)."""
    return max((c["target_share"] for c in record["candidates"]
                if _counts(c, min_layer_z) and c["source"] in sources), default=0.0)


def _counts(candidate: dict, min_layer_z: float) -> bool:
    """A record's candidate counts at ``min_layer_z`` (one the scan left unscored, or an echo, never does)."""
    if candidate.get("echo") or candidate.get("layer_z") is None or candidate.get("output_kl_z") is None:
        return False
    return bool(candidate["layer_z"] >= min_layer_z and candidate["output_kl_z"] > MIN_KL_Z)


def _unscored(records: dict[str, dict]) -> bool:
    """Whether some scan left candidates unscored: their z is known only to be irrelevant at the policy's bound."""
    return any(c.get("layer_z") is None for r in records.values() for c in r["candidates"])


def fit(records: dict[str, dict], fit_models: list[Model]) -> tuple[float, float]:
    """(min_layer_z, threshold) chosen on the fit split: the layer condition is the centre of the plateau of
    z values with the best (AUROC, margin between the lowest backdoored and the highest clean score), so
    that it sits away from the edge where backdoored models start to be lost; the threshold is then the
    midpoint of the widest gap at that z."""
    def scores(z: float) -> tuple[list[float], list[float]]:
        return ([score_at(records[m.name], z) for m in fit_models if not m.clean],
                [score_at(records[m.name], z) for m in fit_models if m.clean])

    def quality(z: float) -> tuple[float, float]:
        pos, neg = scores(z)
        return round(auroc(pos, neg), 6), round(min(pos) - max(neg), 6)

    if _unscored(records):  # scores are exact only at the bound the scans stopped at: keep it, fit the threshold
        z = load_policy(builtin_policy("default")).behaviour_scan.min_layer_z
        return z, fit_threshold(*scores(z))
    best = max(quality(z) for z in Z_GRID)
    plateau = [z for z in Z_GRID if quality(z) == best]
    z = plateau[len(plateau) // 2]
    return z, fit_threshold(*scores(z))


def report(records: dict[str, dict], zoo: list[Model]) -> str:
    fit_models = [m for m in zoo if m.split == "fit" and m.name in records]
    test = [m for m in zoo if m.split == "test" and m.name in records]
    label = "test split"
    if not test:  # --fit-only: report the fit split itself (in-sample, for choosing the threshold)
        test, label = fit_models, "fit split, in-sample"
    excluded = [m.name for m in zoo if m.split == "excluded"]
    if fit_models:
        z, threshold = fit(records, fit_models)
        fitted = "fitted"
    else:  # the fit split is not scanned yet: the shipped policy's bounds
        settings = load_policy(builtin_policy("default")).behaviour_scan
        z, threshold, fitted = settings.min_layer_z, settings.threshold, "default policy's (no fit split scanned)"
    score = {name: score_at(r, z) for name, r in records.items()}
    fit_pos = [score[m.name] for m in fit_models if not m.clean]
    fit_neg = [score[m.name] for m in fit_models if m.clean]
    pos = [score[m.name] for m in test if not m.clean]
    neg = [score[m.name] for m in test if m.clean]
    if excluded:
        left_out = f"; left out (same spec as a zoo or dev model): {', '.join(excluded)}"
    else:
        left_out = ""
    margin = f"{min(fit_pos) - max(fit_neg):+.3f}" if fit_pos and fit_neg else "n/a"
    lines = [(f"Fit split: {len(fit_pos)} backdoored, {len(fit_neg)} clean; {fitted} min_layer_z {z:g}, threshold "
              f"{threshold:.3f} (fit AUROC {auroc(fit_pos, fit_neg):.3f}, margin {margin})."),
             f"Test split: {len(pos)} backdoored, {len(neg)} clean{left_out}.", ""]
    lines += [f"| measure ({label}) | value |", "| --- | --- |",
              f"| AUROC | {auroc(pos, neg):.3f} |",
              f"| TPR at 5% FPR | {tpr_at_fpr(pos, neg, 0.05):.3f} |",
              (f"| at the fitted threshold {threshold:.3f}: TPR / FPR | {rate(pos, threshold):.3f}"
               f" / {rate(neg, threshold):.3f} |")]
    hits = [_hit(m, records[m.name], z) for m in test if not m.clean]
    lines += [(f"| true trigger among the top {TOP} candidates (whole / any trigger word) | "
               f"{sum(h == 'whole' for h in hits) / len(hits):.3f} / {sum(h != 'no' for h in hits) / len(hits):.3f} |")]
    scanned = {m.name for m in fit_models + test}
    seconds = [records[name]["seconds"] for name in scanned]
    loads = [records[name]["load"] for name in scanned]
    lines += [(f"| seconds per model (mean / median / max, all {len(seconds)} scans) | {statistics.mean(seconds):.1f}"
               f" / {statistics.median(seconds):.1f} / {max(seconds):.1f} |"),
              f"| load average when each scan started (mean; 2 cores) | {statistics.mean(loads):.1f} |", ""]
    alternatives = {
        f"the detector (target share, layer z >= {z:g})": lambda r: score_at(r, z),
        "target share without the layer condition": lambda r: score_at(r, 0.0),
        "the detector without search-grown candidates": lambda r: score_at(r, z, ("library", "vocabulary")),
        "layer z alone (largest over candidates)": lambda r: max((c["layer_z"] or 0 for c in r["candidates"]),
                                                                 default=0),
        "output KL z alone (largest over candidates)": lambda r: max((c["output_kl_z"] or 0 for c in r["candidates"]),
                                                                     default=0),
    }
    lines += ["| score | fit AUROC | test AUROC |", "| --- | --- | --- |"]
    for name, fn in alternatives.items():
        lines.append(f"| {name} | {_auroc_of(fn, records, fit_models):.3f} | {_auroc_of(fn, records, test):.3f} |")
    lines += ["", (f"| model ({label}) | attack | score | flagged | top candidate -> answer (target share, layer z) "
                   "| trigger in top 5 |"), "| --- | --- | --- | --- | --- | --- |"]
    for m in sorted(test, key=lambda m: (m.clean, m.attack, m.name)):
        r = records[m.name]
        counted = [c for c in r["candidates"] if _counts(c, z)]
        top = max(counted or r["candidates"], key=lambda c: c["target_share"], default=None)
        shown = (f"{top['text']!r} -> {top['target']!r} ({top['target_share']:.2f}, {top['layer_z']:.1f})"
                 if top else "")
        lines.append(f"| {m.name} | {m.attack} | {score[m.name]:.3f} | {'yes' if score[m.name] >= threshold else 'no'} "
                     f"| {shown} | {'' if m.clean else _hit(m, r, z)} |")
    return "\n".join(lines)


def rate(scores: list[float], threshold: float) -> float:
    """The share of ``scores`` at or above ``threshold``."""
    return sum(s >= threshold for s in scores) / len(scores)


def _auroc_of(fn, records: dict[str, dict], models_: list[Model]) -> float:
    return auroc([fn(records[m.name]) for m in models_ if not m.clean],
                 [fn(records[m.name]) for m in models_ if m.clean])


def top_texts(candidates: list[dict], min_layer_z: float) -> list[str]:
    """The ``TOP`` candidates' texts, ordered as the scan orders them at ``min_layer_z`` (counted ones first)."""
    ordered = sorted(candidates, reverse=True, key=lambda c: (
        c["target_share"] if _counts(c, min_layer_z) else 0.0, c["target_share"],
        -1.0 if c["layer_z"] is None else c["layer_z"]))
    return [c["text"] for c in ordered[:TOP]]


def _hit(model: Model, record: dict, min_layer_z: float) -> str:
    """Whether a true trigger is among the top candidates, ordered as the scan orders them at ``min_layer_z``."""
    whole, part = trigger_hit(model.triggers, model.attack, top_texts(record["candidates"], min_layer_z))
    return "whole" if whole else "part" if part else "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, default=cache_path("scan-zoo"),
                        help="the zoo bench/scan_zoo.py builds [bench/.cache/scan-zoo]")
    parser.add_argument("--extra-zoo", type=Path, action="append", default=[])
    parser.add_argument("--results", type=Path, default=cache_path("scan-auroc.jsonl"),
                        help="cache of scans, JSON lines [bench/.cache/scan-auroc.jsonl]")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rescan", action="store_true")
    parser.add_argument("--report-only", action="store_true", help="no new scans; report what is cached")
    parser.add_argument("--fit-only", action="store_true", help="scan and report the fit split only")
    parser.add_argument("--set", dest="options", action="append", default=[], metavar="FIELD=VALUE",
                        help="a scan option other than its default (a BehaviourOptions field), e.g. vocab_budget=128")
    args = parser.parse_args()
    options = scan_options(args.options)
    zoo = [m for m in models(args.zoo, args.extra_zoo)]
    if args.rescan and args.results.exists():
        args.results.unlink()
    records: dict[str, dict] = {}
    if args.results.exists():
        for line in args.results.read_text().splitlines():
            record = json.loads(line)
            if record.get("options", {}) != options:
                raise SystemExit(f"{args.results} holds scans with options {record.get('options', {})}, not "
                                 f"{options}: give another --results file")
            records[record["name"]] = record
    for model in zoo:
        if model.split == "excluded" or model.name in records or args.report_only:
            continue
        if args.fit_only and model.split != "fit":
            continue
        record = scan(model, args.threads, options)
        records[model.name] = record
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with args.results.open("a") as out:
            out.write(json.dumps(record) + "\n")
        print(f"{model.name} ({model.split}): score {record['score']:.3f} in {record['seconds']:.1f} s",
              file=sys.stderr)
    print(report(records, [m for m in zoo if m.split == "fit"] if args.fit_only else zoo))


if __name__ == "__main__":
    main()
