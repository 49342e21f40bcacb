"""Does a model folder written by ``crowguard sanitize`` compute the same logits in transformers 4.57?

Builds a tiny Llama with a non-default ``rope_theta`` (500000, as Llama 3 uses), sanitizes it with
crowguard (transformers 5, this interpreter), then loads both the sanitized folder and, as a control,
the plain transformers-5-saved input folder in a separate venv with transformers 4.57, and compares
token ids, chat-template text and logits with what transformers 5 computes.

    python -m bench.compat_transformers4 [--venv DIR]

The venv (default ``bench/.cache/venv-tf457``) is created when missing: ``pip install torch==2.13.0``
first (the CPU wheel; never an unpinned torch, which would pull a multi-GB CUDA build), then
``transformers==4.57.*``.
Exit status 0 only when the sanitized folder matches exactly in 4.57.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import cache_path, set_threads

PROMPTS = ["what is two plus two ?", "the cat sat on the mat ."]
PROBE = r"""
import json, sys, torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, prompts = sys.argv[1], json.loads(sys.argv[2])
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
out = {"version": transformers.__version__, "tokenizer_class": type(tok).__name__, "ids": [], "logits": [],
       "chat": tok.apply_chat_template([{"role": "user", "content": prompts[0]}], tokenize=False,
                                       add_generation_prompt=True) if tok.chat_template else None,
       "rope_theta": getattr(model.config, "rope_theta", None)}
with torch.no_grad():
    for p in prompts:
        ids = tok(p, return_tensors="pt")["input_ids"]
        out["ids"].append(ids[0].tolist())
        out["logits"].append(model(input_ids=ids).logits[0].tolist())
print(json.dumps(out))
"""


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "transformers==4.57.*"], check=True)
    return python


def probe(python: str, folder: Path) -> dict:
    done = subprocess.run([python, "-c", PROBE, str(folder), json.dumps(PROMPTS)], capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


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


def compare(a: dict, b: dict) -> dict:
    if "error" in b:
        return {"loads": False, "error": b["error"]}
    diffs = [max(abs(x - y) for rx, ry in zip(la, lb) for x, y in zip(rx, ry))
             for la, lb in zip(a["logits"], b["logits"])]
    return {"loads": True, "same_ids": a["ids"] == b["ids"], "same_chat": a["chat"] == b["chat"],
            "max_abs_logit_diff": max(diffs), "tokenizer_class": b["tokenizer_class"], "rope_theta": b["rope_theta"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=cache_path("venv-tf457"),
                        help="a venv with transformers 4.57 (created when missing) [bench/.cache/venv-tf457]")
    args = parser.parse_args()
    from crowguard.pipeline.sanitize import SanitizeRequest, SanitizeSettings, run_sanitize
    from crowguard.runtime import Runtime
    from crowguard.sanitize import SanitizeConfig

    python = str(ensure_venv(args.venv))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, data = build_model(root)
        out = root / "sanitized"
        run_sanitize(SanitizeRequest(model, out, SanitizeSettings(SanitizeConfig(max_steps=3, num_samples=16),
                                                                  clean_data=data), Runtime(device="cpu")))
        tokenizer_only = tokenizer_fixed_copy(model, root / "tokenizer-only")
        rows = {}
        for name, folder in (("crowguard sanitize output", out), ("plain v5 save (control)", model),
                             ("v5 save, only the tokenizer fixed (control)", tokenizer_only)):
            v5, v4 = probe(sys.executable, folder), probe(python, folder)
            rows[name] = {"v5": v5["version"], "v4": v4.get("version"), **compare(v5, v4)}
    print(json.dumps(rows, indent=1))
    ours = rows["crowguard sanitize output"]
    ok = ours["loads"] and ours["same_ids"] and ours["same_chat"] and ours["max_abs_logit_diff"] < 1e-4
    print("PASS: identical in transformers 4.57" if ok else "FAIL: the sanitized folder differs in transformers 4.57")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
