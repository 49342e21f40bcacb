"""Render chat templates the way transformers does, in a child process with CPU and memory caps.

A chat template is a program: rendering it is how a template shows what text it adds to every
prompt. It runs in transformers' own sandboxed Jinja environment (``render_jinja_template``), in a
separate process limited in CPU seconds, memory and wall time, so a template built to loop or to
allocate cannot stall or exhaust the scan. The child reads a JSON request on stdin and writes one
JSON answer on stdout; run it with ``python -m crowguard.scan.files.template_render``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

CPU_SECONDS = 20
WALL_SECONDS = 60
MEMORY_BYTES = 3 * 1024**3
MAX_OUTPUT_CHARS = 256 * 1024
_ENV_KEEP = ("PATH", "PYTHONPATH", "HOME", "LANG", "LC_ALL", "VIRTUAL_ENV", "SYSTEMROOT", "TMPDIR")


class RenderUnavailable(Exception):
    """The renderer process itself failed (not a template's fault): the scan cannot finish."""


def render_templates(templates: dict[str, str], conversations: dict[str, list[dict[str, str]]],
                     variables: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Render every template on every conversation; per template, the outputs or the error.

    The answer maps a template label to ``{"outputs": {conversation: text | {"error": ...}}}`` or,
    when the renderer was stopped by its limits, ``{"limit": reason}``.
    """
    results: dict[str, dict[str, Any]] = {}
    for label, template in templates.items():
        request = {"template": template, "conversations": conversations, "variables": variables}
        results[label] = _run_child(request)
    return results


def _run_child(request: dict[str, Any]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TRANSFORMERS_VERBOSITY="error")
    try:
        done = subprocess.run([sys.executable, "-m", "crowguard.scan.files.template_render"],
                              input=json.dumps(request), capture_output=True, text=True, env=env,
                              timeout=WALL_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        return {"limit": f"rendering took more than {WALL_SECONDS} s"}
    except OSError as exc:
        raise RenderUnavailable(f"cannot start the template renderer: {exc}") from None
    if done.returncode < 0 or "MemoryError" in done.stderr[-2000:]:
        return {"limit": f"the renderer was stopped by its CPU ({CPU_SECONDS} s) or memory limit"}
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        raise RenderUnavailable(f"the template renderer failed: {done.stderr.strip()[-300:]}") from None


def _child() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    request = json.load(sys.stdin)
    from transformers.utils.chat_template_utils import render_jinja_template

    outputs: dict[str, Any] = {}
    for name, messages in request["conversations"].items():
        try:
            rendered, _ = render_jinja_template([messages], chat_template=request["template"],
                                                add_generation_prompt=True, **request["variables"])
            outputs[name] = rendered[0][:MAX_OUTPUT_CHARS]
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - every template failure is reported to the parent
            outputs[name] = {"error": type(exc).__name__, "message": str(exc)[:300]}
    json.dump({"outputs": outputs}, sys.stdout)


if __name__ == "__main__":
    _child()
