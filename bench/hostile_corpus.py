"""The hostile corpus of ``tests/scan/hostile_corpus.py`` through crowguard and four other scanners.

Writes the corpus (``--out``, default ``bench/.cache/hostile-corpus/corpus``), runs
``crowguard scan --no-behaviour`` under the three shipped policies in this process, and ModelAudit,
picklescan (default and ``--strict``), fickling and modelscan by their CLIs from their own venv
(``--venv``, created with pinned versions when missing), one case at a time with a time limit.
External verdicts are cached per case content and tool version (``results-external.json``), so a
rerun after a crowguard change costs only crowguard's own scans (about a minute). Prints a markdown
table, rows = kinds, cells = cases flagged / cases; writes every verdict to ``results.json``.

    .venv/bin/python -m bench.hostile_corpus                 # everything
    .venv/bin/python -m bench.hostile_corpus --no-external   # crowguard only
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import time
from pathlib import Path

from bench.external_scanners import CLEAN, ERROR, FLAGGED, PACKAGE, TOOLS, ensure_venv, run_tool
from bench.harness import cache_path, machine, read_json, table_head, table_row, write_json
from tests.scan.hostile_case import KIND_TITLES, POLICIES, Case
from tests.scan.hostile_corpus import cases, crowguard_outcome, meets, write_corpus

CACHE = cache_path("hostile-corpus")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CACHE / "corpus", help="where the corpus is written")
    parser.add_argument("--venv", type=Path, default=cache_path("venv-scanners"),
                        help="the external scanners' venv [bench/.cache/venv-scanners]")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per tool per case")
    parser.add_argument("--no-external", action="store_true", help="crowguard only (external verdicts from cache)")
    parser.add_argument("--only", default="", help="comma-separated case id prefixes")
    args = parser.parse_args()

    selected = [c for c in cases() if not args.only or c.id.startswith(tuple(args.only.split(",")))]
    if args.out.exists():
        shutil.rmtree(args.out)
    CACHE.mkdir(parents=True, exist_ok=True)
    write_corpus(args.out, selected)
    results: dict[str, dict[str, dict]] = {c.id: {} for c in selected}
    started = time.perf_counter()
    for case in selected:
        for policy in POLICIES:
            code, written = crowguard_outcome(args.out / case.id, policy, CACHE / "report.json")
            results[case.id][f"crowguard {policy}"] = {
                "verdict": FLAGGED if written and code in (1, 3) else CLEAN if written and code == 0 else ERROR,
                "exit": code, "report": written, "as_expected": meets(case.expect[policy], code, written)}
    crowguard_seconds = time.perf_counter() - started
    versions = {} if args.no_external else ensure_venv(args.venv)
    external = _external(selected, args, versions, results)
    write_json(CACHE / "results.json", {"versions": versions, "results": results})
    print(_table(selected, results, external))
    print(f"\ncrowguard: {crowguard_seconds:.0f}s for {len(selected)} cases x {len(POLICIES)} policies; "
          f"external tools: {', '.join(f'{k} {v}' for k, v in versions.items()) or 'cached'}; "
          f"{machine()}")


def _external(selected: list[Case], args: argparse.Namespace, versions: dict[str, str],
              results: dict[str, dict[str, dict]]) -> list[str]:
    verdicts_path = CACHE / "results-external.json"
    cache: dict[str, dict] = read_json(verdicts_path, {})
    tools = [t for t in TOOLS if args.no_external or PACKAGE[t] in versions]
    for case in selected:
        digest = _digest(args.out / case.id)
        for tool in tools:
            key = f"{tool}|{versions.get(PACKAGE[tool], '?')}|{case.id}|{digest}"
            hit = cache.get(key) if not args.no_external else next(
                (v for k, v in cache.items() if k.startswith(f"{tool}|") and k.endswith(f"|{case.id}|{digest}")), None)
            if hit is None and not args.no_external:
                verdict = run_tool(tool, args.venv, args.out / case.id, args.timeout)
                hit = cache[key] = {"verdict": verdict.verdict, "detail": verdict.detail}
                write_json(verdicts_path, cache, indent=0)
            if hit is not None:
                results[case.id][tool] = hit
    return tools


def _digest(folder: Path) -> str:
    """Names, link targets and bytes of a case folder (links are not followed)."""
    digest = hashlib.sha256()
    for root, dirs, names in sorted(os.walk(os.fsencode(folder))):
        dirs.sort()
        for name in sorted(names + [d for d in dirs if os.path.islink(os.path.join(root, d))]):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, os.fsencode(folder)) + b"\0")
            if os.path.islink(path):
                digest.update(b"link:" + os.fsencode(os.readlink(path)))
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()[:16]


def _table(selected: list[Case], results: dict[str, dict[str, dict]], external: list[str]) -> str:
    columns = [f"crowguard {p}" for p in POLICIES] + external
    head = ["kind", "cases", *columns, "crowguard as expected (all 3 policies)"]
    lines = table_head(*head)
    for item, title in KIND_TITLES.items():
        group = [c for c in selected if c.item == item]
        if not group:
            continue
        cells = [title + (" (flagged = false positive)" if item == 100 else ""), str(len(group))]
        for column in columns:
            verdicts = [results[c.id].get(column, {}).get("verdict") for c in group]
            errors = verdicts.count(ERROR)
            cell = f"{verdicts.count(FLAGGED)}/{len(group)}" + (f" ({errors} err)" if errors else "")
            cells.append(cell if any(v in (FLAGGED, CLEAN, ERROR) for v in verdicts) else "-")
        expected = sum(all(results[c.id][f"crowguard {p}"]["as_expected"] for p in POLICIES) for c in group)
        cells.append(f"{expected}/{len(group)}")
        lines.append(table_row(*cells))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
