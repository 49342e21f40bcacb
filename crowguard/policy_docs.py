"""Everything written about policies, generated from the model in ``crowguard/policy.py``.

The shipped YAML files (``crowguard/policies/NAME.yaml``) and their ``policies/`` copies, the JSON
Schema (``crowguard/policy.schema.json``) and the README's policy table are rendered from the
``Policy`` model's fields, defaults and descriptions and from the ``SHIPPED`` overrides. Regenerate
after changing any of them with ``python -m crowguard.policy_docs --write``; a test fails when a
committed file and the model drift apart.
"""

from __future__ import annotations

import json
import sys
import textwrap
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from annotated_types import Ge, Gt, Le
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from crowguard.policy import SHIPPED, Policy

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent
SCHEMA_PATH = PACKAGE / "policy.schema.json"
README_PATH = REPO / "README.md"
TABLE_BEGIN = "<!-- BEGIN generated: policy-table -->"
TABLE_END = "<!-- END generated: policy-table -->"
REGENERATE = "python -m crowguard.policy_docs --write"
# What a field defaults to in a policy file, where that is not the model's default.
_FILE_DEFAULTS = {"name": "the file name"}


def generate_schema() -> str:
    """The policy JSON Schema as canonical JSON text."""
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://crowguard.dev/schemas/policy-1.0.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def render_policy_yaml(name: str) -> str:
    """The YAML file of shipped policy ``name``: every field, each under a comment saying what it means."""
    shipped = SHIPPED[name]
    lines = _comment(shipped.summary, "")
    lines += _comment(f"Generated from crowguard/policy.py by `{REGENERATE}`. To make your own policy, "
                      "copy this file and pass it with --policy.", "")
    lines += _yaml_fields(Policy, shipped.policy.model_dump(mode="json"), Policy().model_dump(mode="json"), "")
    return "\n".join(lines) + "\n"


def render_table() -> str:
    """The README's policy table (markdown), one row per field, nested fields dotted."""
    rows = ["| field | type (default) | meaning |", "| --- | --- | --- |"]
    defaults = Policy().model_dump(mode="json")
    for dotted, info in _leaf_fields(Policy, ""):
        value: Any = defaults
        for part in dotted.split("."):
            value = value[part]
        default = _FILE_DEFAULTS.get(dotted) or f"`{_yaml_scalar(value)}`"
        rows.append(f"| `{dotted}` | {_type_text(info, markdown=True)} ({default}) | {info.description} |")
    return "\n".join(rows) + "\n"


def readme_with_table(readme: str) -> str:
    """``readme`` with the text between the policy-table markers replaced by the generated table."""
    begin, end = readme.find(TABLE_BEGIN), readme.find(TABLE_END)
    if begin < 0 or end < begin:
        raise ValueError(f"README.md lacks the marker lines {TABLE_BEGIN} ... {TABLE_END} in its Policies section")
    return readme[:begin] + TABLE_BEGIN + "\n" + render_table() + readme[end:]


def generated_files() -> dict[Path, str]:
    """Every generated file and the text it should hold now."""
    files: dict[Path, str] = {}
    for name in SHIPPED:
        text = render_policy_yaml(name)
        files[PACKAGE / "policies" / f"{name}.yaml"] = text
        files[REPO / "policies" / f"{name}.yaml"] = text
    files[SCHEMA_PATH] = generate_schema()
    files[README_PATH] = readme_with_table(README_PATH.read_text(encoding="utf-8"))
    return files


def _yaml_fields(model: type[BaseModel], values: dict[str, Any], defaults: dict[str, Any], indent: str) -> list[str]:
    lines: list[str] = []
    for key, info in model.model_fields.items():
        nested = _model_of(info)
        text = info.description or ""
        if nested is None and info.annotation not in (bool, str):
            text += f" Allowed: {_type_text(info, markdown=False)}."
        if nested is None and key not in _FILE_DEFAULTS and values[key] != defaults[key]:
            text += f" The default policy has {_yaml_scalar(defaults[key])}."
        lines += _comment(text, indent)
        if nested is None:
            lines.append(f"{indent}{key}: {_yaml_scalar(values[key])}")
        else:
            lines.append(f"{indent}{key}:")
            lines += _yaml_fields(nested, values[key], defaults[key], indent + "  ")
    return lines


def _leaf_fields(model: type[BaseModel], prefix: str) -> list[tuple[str, FieldInfo]]:
    leaves: list[tuple[str, FieldInfo]] = []
    for key, info in model.model_fields.items():
        nested = _model_of(info)
        leaves += _leaf_fields(nested, f"{prefix}{key}.") if nested else [(prefix + key, info)]
    return leaves


def _model_of(info: FieldInfo) -> type[BaseModel] | None:
    annotation = info.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _type_text(info: FieldInfo, *, markdown: bool) -> str:
    """What values a field takes, in words: ``bool``, ``0 < number <= 1``, ``one of a/b/c``."""
    def quote(value: object) -> str:
        return f"`{value}`" if markdown else str(value)

    annotation = info.annotation
    if annotation is bool:
        return "bool"
    if annotation is str:
        return "text"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "/".join(quote(member.value) for member in annotation)
    if typing.get_origin(annotation) is tuple:
        (literal, _) = typing.get_args(annotation)
        return "list of " + ", ".join(quote(v) for v in typing.get_args(literal))
    if annotation in (float, int):
        noun = "number" if annotation is float else "integer"
        low = [f"{m.gt} <" for m in info.metadata if isinstance(m, Gt)] + [
            f"{m.ge} <=" for m in info.metadata if isinstance(m, Ge)]
        high = [f"<= {m.le}" for m in info.metadata if isinstance(m, Le)]
        if low and not high:  # "number >= 0" reads better than "0 <= number"
            bound, _, op = low[0].partition(" ")
            return f"{noun} {op.replace('<', '>')} {bound}"
        return " ".join([*low, noun, *high])
    raise TypeError(f"policy_docs cannot describe the type of a field annotated {annotation!r}: teach _type_text")


def _yaml_scalar(value: Any) -> str:
    """``value`` as YAML on one line (lists in flow style): what the line ``key: value`` needs."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _comment(text: str, indent: str) -> list[str]:
    """``text`` as wrapped comment lines; a bound such as ``0 < number <= 1`` is never split."""
    for op in ("<=", "<", ">="):
        text = text.replace(f" {op} ", f"\0{op}\0")
    lines = textwrap.wrap(text, width=110 - len(indent), initial_indent=f"{indent}# ",
                          subsequent_indent=f"{indent}# ", break_on_hyphens=False)
    return [line.replace("\0", " ") for line in lines]


def main(argv: list[str]) -> int:
    """``--write``: regenerate every file; no argument: list the files that drifted (exit 1 if any)."""
    if argv not in ([], ["--write"]):
        sys.stderr.write(f"usage: {REGENERATE} (or no argument, to check)\n")
        return 2
    files = generated_files()
    if argv == ["--write"]:
        for path, text in files.items():
            path.write_text(text, encoding="utf-8")
        return 0
    drifted = [path for path, text in files.items() if not path.is_file() or path.read_text(encoding="utf-8") != text]
    for path in drifted:
        sys.stdout.write(f"{path.relative_to(REPO)} drifted from crowguard/policy.py: run {REGENERATE}\n")
    return 1 if drifted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
