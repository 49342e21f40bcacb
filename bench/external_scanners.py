"""Other model scanners, run by their own CLIs from their own venv, each verdict normalised.

The venv (``bench/.cache/venv-scanners`` by default, see ``bench/hostile_corpus.py``) holds pinned
versions of ModelAudit, picklescan, fickling and modelscan, and no torch. Every run gets a time
limit, telemetry off and an empty working directory. A verdict is ``flagged`` (the tool reports a
problem), ``clean`` (it reports none, or finds nothing it scans) or ``error`` (it could not finish
and reported no problem).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PINS = {"modelaudit": "0.2.54", "picklescan": "1.0.5", "fickling": "0.1.12", "modelscan": "0.8.8"}
FLAGGED, CLEAN, ERROR = "flagged", "clean", "error"
_FICKLING_SAFE = "LIKELY_SAFE"
_ENV = {"PROMPTFOO_DISABLE_TELEMETRY": "1", "NO_ANALYTICS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass(frozen=True)
class Verdict:
    verdict: str
    detail: str


def ensure_venv(venv: Path) -> dict[str, str]:
    """Create ``venv`` with the pinned scanners unless it already has them; return the versions installed."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    versions = installed_versions(venv)
    if versions != PINS:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *(f"{k}=={v}" for k, v in PINS.items())],
                       check=True)
        versions = installed_versions(venv)
    return versions


def installed_versions(venv: Path) -> dict[str, str]:
    code = ("import importlib.metadata as m, json; v = {}\n"
            f"for n in {sorted(PINS)!r}:\n"
            "    try: v[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(v))")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    return dict(sorted(json.loads(done.stdout).items()))


def _run(argv: list[str], timeout: float, cwd: str) -> subprocess.CompletedProcess[str] | None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": cwd, **_ENV}
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env,
                              errors="replace")
    except subprocess.TimeoutExpired:
        return None


def _timed_out(timeout: float) -> Verdict:
    return Verdict(ERROR, f"timed out after {timeout:.0f}s")


def _json_issues(out: Path) -> list[dict]:
    """The ``issues`` list of a tool's JSON report (ModelAudit, modelscan); none when it wrote no readable report."""
    try:
        return json.loads(out.read_text()).get("issues", [])
    except (OSError, ValueError):
        return []


def modelaudit(venv: Path, folder: Path, timeout: float, scratch: str) -> Verdict:
    out = Path(scratch) / "modelaudit.json"
    done = _run([str(venv / "bin" / "modelaudit"), "scan", "--no-cache", "-f", "json", "-o", str(out), str(folder)],
                timeout, scratch)
    if done is None:
        return _timed_out(timeout)
    issues = _json_issues(out)
    serious = [i for i in issues if str(i.get("severity")).lower() in ("warning", "critical")]
    if done.returncode == 1 or serious:
        return Verdict(FLAGGED, "; ".join(sorted({str(i.get("message"))[:80] for i in serious}))[:300])
    if done.returncode == 0:
        return Verdict(CLEAN, "")
    return Verdict(ERROR, f"exit {done.returncode}: {(done.stderr or done.stdout)[-200:]}")


def _picklescan(strict: bool) -> Callable[[Path, Path, float, str], Verdict]:
    def run(venv: Path, folder: Path, timeout: float, scratch: str) -> Verdict:
        done = _run([str(venv / "bin" / "picklescan"), "-p", str(folder), *(["--strict"] if strict else [])],
                    timeout, scratch)
        if done is None:
            return _timed_out(timeout)
        infected = re.search(r"Infected files: (\d+)", done.stdout)
        if done.returncode == 1 or (infected and int(infected.group(1)) > 0):
            found = [line for line in done.stdout.splitlines() if "FOUND" in line]
            return Verdict(FLAGGED, "; ".join(found)[:300])
        if done.returncode == 0:
            return Verdict(CLEAN, "")
        return Verdict(ERROR, f"exit {done.returncode}: {(done.stderr or done.stdout)[-200:]}")

    return run


def modelscan(venv: Path, folder: Path, timeout: float, scratch: str) -> Verdict:
    out = Path(scratch) / "modelscan.json"
    done = _run([str(venv / "bin" / "modelscan"), "scan", "-p", str(folder), "-r", "json", "-o", str(out)],
                timeout, scratch)
    if done is None:
        return _timed_out(timeout)
    issues = _json_issues(out)
    if done.returncode == 1 or issues:
        return Verdict(FLAGGED, "; ".join(sorted({str(i.get("description"))[:80] for i in issues}))[:300])
    if done.returncode in (0, 3):  # 3: no file modelscan supports, so nothing it reports
        return Verdict(CLEAN, "nothing scanned" if done.returncode == 3 else "")
    return Verdict(ERROR, f"exit {done.returncode}: {(done.stderr or done.stdout)[-200:]}")


def fickling(venv: Path, folder: Path, timeout: float, scratch: str) -> Verdict:
    """``fickling --check-safety`` on every file a user would hand it: all but JSON and safetensors by name."""
    flagged, errors = [], []
    for path in sorted(_files(folder)):
        if path.name.lower().endswith((".json", ".safetensors")):
            continue
        out = Path(scratch) / "fickling.json"
        out.unlink(missing_ok=True)
        done = _run([str(venv / "bin" / "fickling"), "--check-safety", "--json-output", str(out), str(path)],
                    timeout, scratch)
        rel = os.fsdecode(path.relative_to(folder))
        if done is None:
            errors.append(f"{rel}: timed out")
            continue
        severities = _fickling_severities(out)
        if any(s != _FICKLING_SAFE for s in severities):
            flagged.append(f"{rel}: {','.join(sorted(set(severities)))}")
        elif done.returncode not in (0, 1) or not severities and done.returncode != 0:
            errors.append(f"{rel}: exit {done.returncode} {(done.stderr or done.stdout).strip()[-120:]}")
    if flagged:
        return Verdict(FLAGGED, "; ".join(flagged)[:300])
    return Verdict(ERROR, "; ".join(errors)[:300]) if errors else Verdict(CLEAN, "")


def _fickling_severities(out: Path) -> list[str]:
    """fickling writes one JSON object per pickle stream, concatenated."""
    try:
        text = out.read_text()
    except OSError:
        return []
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text):
        try:
            obj, end = decoder.raw_decode(text, at)
        except ValueError:
            break
        found.append(str(obj.get("severity")))
        at = end
        while at < len(text) and text[at].isspace():
            at += 1
    return found


def _files(folder: Path) -> list[Path]:
    """Files and file links below ``folder``, without entering linked folders (os.walk's default)."""
    return [Path(os.fsdecode(os.path.join(root, n))) for root, _dirs, names in os.walk(os.fsencode(folder))
            for n in names]


TOOLS: dict[str, Callable[[Path, Path, float, str], Verdict]] = {
    "modelaudit": modelaudit, "picklescan": _picklescan(False), "picklescan --strict": _picklescan(True),
    "fickling": fickling, "modelscan": modelscan}
PACKAGE = {"modelaudit": "modelaudit", "picklescan": "picklescan", "picklescan --strict": "picklescan",
           "fickling": "fickling", "modelscan": "modelscan"}


def run_tool(name: str, venv: Path, folder: Path, timeout: float) -> Verdict:
    with tempfile.TemporaryDirectory(prefix="cg-ext-") as scratch:
        return TOOLS[name](venv, folder, timeout, scratch)
