"""Render chat templates the way transformers does, in a child process with CPU and memory caps.

A chat template is a program: rendering it is how a template shows what text it adds to every
prompt. It runs in a sandboxed Jinja environment built like transformers' own (immutable sandbox,
``trim_blocks``/``lstrip_blocks``, loop controls, the ``generation`` tag, ``tojson``,
``raise_exception``, ``strftime_now``, a namespace that refuses underscore names; a test renders
templates both ways and compares), in a separate process limited in CPU seconds, memory and wall
time, so a template built to loop or to allocate cannot stall or exhaust the scan. Importing
transformers would cost the child seconds; jinja2 alone starts in a fraction of one. The child reads
a JSON request on stdin and writes one JSON answer on stdout; it is started isolated (``python -I``
on this file's absolute path, in an empty temporary cwd, see ``crowguard.isolated``), so nothing in
the scanned folder or the cwd can be imported by it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

CPU_SECONDS = 20
WALL_SECONDS = 60
MEMORY_BYTES = 3 * 1024**3
MAX_OUTPUT_CHARS = 256 * 1024


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
    # Imported here so that the child, which runs this file as a script, needs only jinja2.
    from crowguard.isolated import run_python_script

    try:
        done = run_python_script(Path(__file__).resolve(), input_text=json.dumps(request),
                                 timeout=WALL_SECONDS, extra_env={"OMP_NUM_THREADS": "1"})
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


def sandbox_template(template: str) -> Any:
    """Compile ``template`` in an environment that behaves like transformers' chat-template one."""
    import json as jsonlib
    from datetime import datetime

    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return caller()

    class Namespace(jinja2.utils.Namespace):
        def __init__(*args: Any, **kwargs: Any) -> None:
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                Namespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            Namespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"underscore-prefixed namespace attribute {name!r}")

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        return jsonlib.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, strftime_now=lambda fmt: datetime.now().strftime(fmt),
                       dict=dict, namespace=Namespace)
    return env.from_string(template)


def _child() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    request = json.load(sys.stdin)
    outputs: dict[str, Any] = {}
    try:
        compiled = sandbox_template(request["template"])
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a template that does not compile is reported to the parent
        failure = {"error": type(exc).__name__, "message": str(exc)[:300]}
        json.dump({"outputs": dict.fromkeys(request["conversations"], failure)}, sys.stdout)
        return
    for name, messages in request["conversations"].items():
        try:
            text = compiled.render(messages=messages, tools=None, documents=None, add_generation_prompt=True,
                                   **request["variables"])
            outputs[name] = text[:MAX_OUTPUT_CHARS]
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - every template failure is reported to the parent
            outputs[name] = {"error": type(exc).__name__, "message": str(exc)[:300]}
    json.dump({"outputs": outputs}, sys.stdout)


if __name__ == "__main__":
    _child()
