#!/usr/bin/env bash
# Build crowguard's wheel, install it into a fresh virtualenv (not editable, no system site-packages)
# and run the installed `crowguard` from an empty folder, asserting exit codes: what a user who runs
# `pip install crowguard-*.whl && crowguard scan DIR` gets. Called by .ci/run before the test suite.
# torch is installed first and pinned, as in scripts/setup.sh (CROWGUARD_TORCH overrides it).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
PY=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/crowguard-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

fail() { echo "wheel smoke test FAILED: $*" >&2; exit 1; }
expect() {  # expect CODE LABEL COMMAND...: run COMMAND, fail unless it exits CODE; stderr kept in $work/err
  local want=$1 label=$2; shift 2
  local got=0
  "$@" >"$work/out" 2>"$work/err" || got=$?
  if [ "$got" != "$want" ]; then
    cat "$work/err" >&2
    fail "$label exited $got, expected $want"
  fi
  echo "ok: $label (exit $got)"
}

echo "building the wheel"
"$PY" -m pip wheel -q --no-deps -w "$work/dist" "$repo"
wheel=$(ls "$work"/dist/crowguard-*.whl)
"$PY" - "$wheel" <<'EOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["crowguard/policies/default.yaml", "crowguard/policies/strict.yaml", "crowguard/policies/permissive.yaml",
        "crowguard/report/report.schema.json", "crowguard/scan/behaviour/probes.json",
        "crowguard/sanitize/instructions.json", "crowguard/policy.schema.json", "crowguard/py.typed"]
missing = [n for n in need if n not in names]
sys.exit(f"the wheel lacks {missing}" if missing else 0)
EOF

echo "installing it into a fresh venv"
"$PY" -m venv "$work/venv"
venv="$work/venv/bin"
# shellcheck disable=SC2086
"$venv/python" -m pip install -q ${CROWGUARD_TORCH:-torch==2.13.0}
"$venv/python" -m pip install -q "$wheel"

# From an empty folder, so that nothing of the checkout can be imported by accident.
mkdir "$work/cwd" && cd "$work/cwd"
"$venv/python" -I -c 'import crowguard, sys; sys.exit(0 if "site-packages" in crowguard.__file__ else crowguard.__file__)' \
  || fail "crowguard was not imported from the installed wheel"
"$venv/python" -I - <<'EOF' || fail "the installed package cannot read its data files"
from crowguard.report.schema import SCHEMA_PATH
from crowguard.sanitize.data import shipped_instructions
from crowguard.scan.behaviour.probes import builtin_probes
assert SCHEMA_PATH.is_file() and builtin_probes() and shipped_instructions()
EOF

# A tiny clean safetensors folder, and one holding a pickle that imports os.system (never loaded).
"$venv/python" -I - "$work" <<'EOF'
import json, pickle, sys
from pathlib import Path
import torch
from safetensors.torch import save_file
work = Path(sys.argv[1])
for name in ("clean", "pickled"):
    folder = work / name
    folder.mkdir()
    save_file({"w": torch.zeros(4, 4)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
class Payload:
    def __reduce__(self):
        import os
        return os.system, ("true",)
(work / "pickled" / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(), protocol=2))
EOF

cg="$venv/crowguard"
expect 0 "crowguard --help" "$cg" --help
expect 0 "crowguard policy check default" "$cg" policy check default
expect 0 "crowguard policy check strict" "$cg" policy check strict
printf 'fail_on: huge\n' >"$work/bad.yaml"
expect 2 "crowguard policy check (a bad policy file)" "$cg" policy check "$work/bad.yaml"
expect 0 "crowguard scan (clean folder, default policy)" "$cg" scan "$work/clean" --no-behaviour
expect 0 "crowguard scan (clean folder, --policy permissive, all report formats)" \
  "$cg" scan "$work/clean" --no-behaviour --policy permissive --report-dir "$work/reports"
for f in report.json report.md report.html report.sarif; do
  [ -s "$work/reports/$f" ] || fail "scan --report-dir did not write $f"
done
expect 1 "crowguard scan (a pickle importing os.system)" "$cg" scan "$work/pickled" --no-behaviour
if grep -q "gemm_4bit_forward\|Traceback" "$work/err"; then cat "$work/err" >&2; fail "library noise on stderr"; fi
echo "wheel smoke test passed in $(( $(date +%s) - start )) s"
