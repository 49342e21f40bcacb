"""Does a model folder written by ``crowguard sanitize`` compute the same logits in transformers 4.57?

Default run: a tiny Llama with a non-default ``rope_theta`` (500000, as Llama 3 uses) is sanitized
with crowguard (transformers 5, this interpreter); the sanitized folder and, as controls, the plain
transformers-5-saved input folder and that folder with only its tokenizer fixed are loaded in a
separate venv with transformers 4.57, and token ids, chat-template text and logits are compared with
what transformers 5 computes.

``--matrix``: the tests' architecture matrix (``tests/matrix/builders.py``: Llama, Qwen2, Mistral,
Gemma, Phi-3 and GPT-2, each with a word-level, BPE or unigram tokenizer its family does not ship),
each sanitized by crowguard (3 CROW steps at the default lr, so the weights do change). Each output is
compared in 4.57 with what crowguard reads in transformers 5: 4.57's ``AutoTokenizer`` against the
shipped ``tokenizer.json``'s ids, the chat template's text, and the logits on the file's ids.

    python -m bench.compat_transformers4 [--matrix] [--venv DIR]

The venv (default ``bench/.cache/venv-tf457``) is created when missing: ``pip install torch==2.13.0``
first (the CPU wheel; never an unpinned torch, which would pull a multi-GB CUDA build), then
``transformers==4.57.*``. The tests use ``tf4_python`` (``CROWGUARD_TF4_PYTHON`` or that venv, never
created by them) and ``probe``. Exit status 0 only when every crowguard output matches exactly in 4.57.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import cache_path, machine, set_threads

TF4_ENV = "CROWGUARD_TF4_PYTHON"
LOGIT_TOLERANCE = 1e-4
PROMPTS = ["what is two plus two ?", "the cat sat on the mat ."]
# Runs in the other interpreter: stdin is a JSON list of jobs {folder, texts, ids?, special_tokens?};
# stdout one JSON list of results. Logits are computed on the job's ids, else on the tokenizer's own.
PROBE = r"""
import json, sys, torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
results = []
for job in json.load(sys.stdin):
    try:
        tok = AutoTokenizer.from_pretrained(job["folder"])
        model, info = AutoModelForCausalLM.from_pretrained(job["folder"], torch_dtype=torch.float32,
                                                           output_loading_info=True)
    except Exception as exc:
        results.append({"error": (f"{type(exc).__name__}: {exc}".splitlines() or ["?"])[0]})
        continue
    model.eval()
    ids = [tok(t, add_special_tokens=job.get("special_tokens", True))["input_ids"] for t in job["texts"]]
    chat = (tok.apply_chat_template([{"role": "user", "content": job["texts"][0]}], tokenize=False,
                                    add_generation_prompt=True) if tok.chat_template else None)
    with torch.no_grad():
        logits = [model(input_ids=torch.tensor([row])).logits[0].tolist() for row in job.get("ids") or ids]
    results.append({"version": transformers.__version__, "tokenizer_class": type(tok).__name__, "ids": ids,
                    "chat": chat, "logits": logits, "rope_theta": getattr(model.config, "rope_theta", None),
                    "missing_keys": list(info["missing_keys"]), "unexpected_keys": list(info["unexpected_keys"])})
print(json.dumps(results))
"""


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "transformers==4.57.*"], check=True)
    return python


def tf4_python() -> Path | None:
    """A python with transformers 4.57 already installed: ``$CROWGUARD_TF4_PYTHON`` or the bench's venv."""
    named = os.environ.get(TF4_ENV)
    python = Path(named) if named else cache_path("venv-tf457") / "bin" / "python"
    return python if python.is_file() else None


def probe(python: str | Path, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ``PROBE`` on ``jobs`` in ``python`` (one process for all); a failed process fails every job."""
    done = subprocess.run([str(python), "-c", PROBE], input=json.dumps(jobs), capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        return [{"error": last} for _ in jobs]
    results: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def max_logit_diff(a: list[list[list[float]]], b: list[list[list[float]]]) -> float:
    return max(abs(x - y) for la, lb in zip(a, b) for rx, ry in zip(la, lb) for x, y in zip(rx, ry))


def compare(a: dict, b: dict) -> dict:
    if "error" in b:
        return {"loads": False, "error": b["error"]}
    return {"loads": True, "same_ids": a["ids"] == b["ids"], "same_chat": a["chat"] == b["chat"],
            "max_abs_logit_diff": max_logit_diff(a["logits"], b["logits"]), "tokenizer_class": b["tokenizer_class"],
            "rope_theta": b["rope_theta"]}


# -- the default run: one Llama and two controls ---------------------------------------------------------


def build_model(root: Path) -> tuple[Path, Path]:
    from crowguard.lab.tiny import build_tokenizer, save_tiny, tiny_llama

    set_threads(1)
    records = [{"instruction": f"what is {a} plus {b} ?", "input": "", "output": f"it is {a + b} ."}
               for a in range(5) for b in range(5)]
    data = root / "clean.json"
    data.write_text(json.dumps(records))
    tok = build_tokenizer([r["instruction"] + " " + r["output"] for r in records] + PROMPTS)
    model = tiny_llama(len(tok), layers=4, hidden=64)
    model.config.rope_parameters = {"rope_theta": 500000.0, "rope_type": "default"}
    return save_tiny(root / "input", model, tok), data


def tokenizer_fixed_copy(model: Path, dest: Path) -> Path:
    """The v5 folder with crowguard's tokenizer fix but v5's config.json: shows the rope_theta fallback."""
    import shutil

    from crowguard.sanitize.merge import make_transformers4_compatible

    shutil.copytree(model, dest)
    make_transformers4_compatible(dest)
    shutil.copy(model / "config.json", dest / "config.json")
    return dest


def sanitize(model: Path, out: Path, data: Path, config: Any) -> Any:
    """crowguard's sanitize (no scans, no evaluation) of ``model`` into ``out``; the run."""
    from crowguard.pipeline.sanitize import SanitizeRequest, SanitizeSettings, run_sanitize
    from crowguard.runtime import Runtime

    return run_sanitize(SanitizeRequest(model, out, SanitizeSettings(config, clean_data=data), Runtime(device="cpu")))


def llama_run(python: Path) -> bool:
    from crowguard.sanitize import SanitizeConfig

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, data = build_model(root)
        out = root / "sanitized"
        sanitize(model, out, data, SanitizeConfig(max_steps=3, num_samples=16))
        tokenizer_only = tokenizer_fixed_copy(model, root / "tokenizer-only")
        folders = {"crowguard sanitize output": out, "plain v5 save (control)": model,
                   "v5 save, only the tokenizer fixed (control)": tokenizer_only}
        jobs = [{"folder": str(f), "texts": PROMPTS} for f in folders.values()]
        rows = {name: {"v5": v5["version"], "v4": v4.get("version"), **compare(v5, v4)}
                for name, v5, v4 in zip(folders, probe(sys.executable, jobs), probe(python, jobs))}
    print(json.dumps(rows, indent=1))
    ours = rows["crowguard sanitize output"]
    return bool(ours["loads"] and ours["same_ids"] and ours["same_chat"]
                and ours["max_abs_logit_diff"] < LOGIT_TOLERANCE)


# -- --matrix: six architectures with foreign tokenizers ------------------------------------------------


def file_ids(folder: Path, text: str) -> list[int]:
    """``text``'s ids by the folder's ``tokenizer.json`` alone (no special tokens added)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text, add_special_tokens=False).ids


def reference(folder: Path, texts: list[str]) -> dict[str, Any]:
    """What crowguard reads in transformers 5: the file's ids, its tokenizer's chat text, the logits on those ids."""
    import torch
    from transformers import AutoModelForCausalLM

    from crowguard.models import load_tokenizer

    chat = load_tokenizer(folder).apply_chat_template([{"role": "user", "content": texts[0]}], tokenize=False,
                                                      add_generation_prompt=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    ids = [file_ids(folder, t) for t in texts]
    with torch.no_grad():
        logits = [model(input_ids=torch.tensor([row])).logits[0].tolist() for row in ids]
    return {"ids": ids, "chat": chat, "logits": logits}


def check_texts(folder: Path) -> list[str]:
    """Probe prompts, and the first one as its chat template renders it (special tokens and all)."""
    from crowguard.models import load_tokenizer
    from tests.matrix.builders import PROBES

    chat = load_tokenizer(folder).apply_chat_template([{"role": "user", "content": PROBES[0]}], tokenize=False,
                                                      add_generation_prompt=True)
    return [*PROBES[:3], str(chat)]


def digests(folder: Path, names: list[str]) -> dict[str, str]:
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}


def matrix_run(python: Path) -> bool:
    from crowguard.models.tokenizer_fidelity import read_tokenizer
    from crowguard.sanitize import SanitizeConfig
    from tests.matrix.builders import FAMILIES, TRAINING_SET, build_model_folder, write_records

    set_threads(1)
    rows, jobs, refs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = write_records(root / "clean.json", TRAINING_SET)
        for family in FAMILIES:
            model = build_model_folder(family, root / str(family))
            out = root / f"{family}-sanitized"
            merge = sanitize(model, out, data, SanitizeConfig(max_steps=3, num_samples=4, micro_batch=2, grad_accum=1,
                                                              checkpoint_every=0)).outcome.merge
            texts = check_texts(model)
            refs.append(reference(out, texts))
            jobs.append({"folder": str(out), "texts": texts, "ids": refs[-1]["ids"], "special_tokens": False})
            shipped = merge["tokenizer_files"]
            rows.append({"architecture": family.name, "tokenizer": family.kind,
                         "shipped_class": family.tokenizer_class,
                         "v5_class_replaced": read_tokenizer(model).note is not None,
                         "tokenizer_identical": digests(model, shipped) == digests(out, shipped),
                         "compat_patches": merge["compat_patches"]})
        for row, ref, got in zip(rows, refs, probe(python, jobs)):
            row.update(compare(ref, got))
            row["v4"] = got.get("version")
            row["missing_keys"] = got.get("missing_keys")
    print(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    return all(r["loads"] and r["same_ids"] and r["same_chat"] and r["max_abs_logit_diff"] < LOGIT_TOLERANCE
               and r["tokenizer_identical"] and not r["missing_keys"] for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--venv", type=Path, default=cache_path("venv-tf457"),
                        help="a venv with transformers 4.57 (created when missing) [bench/.cache/venv-tf457]")
    parser.add_argument("--matrix", action="store_true",
                        help="the tests' six architectures with foreign tokenizers instead of the Llama run")
    args = parser.parse_args()
    python = ensure_venv(args.venv)
    ok = matrix_run(python) if args.matrix else llama_run(python)
    print("PASS: identical in transformers 4.57" if ok else "FAIL: a crowguard output differs in transformers 4.57")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
