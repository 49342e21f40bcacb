"""The one YAML loader crowguard uses for files a user (or an attacker) hands it.

PyYAML's ``safe_load`` builds no Python objects beyond plain data, but it still expands aliases
(a "billion laughs" document of a few hundred bytes grows to gigabytes), keeps the last of two
equal keys without a word, recurses once per nesting level, and turns a 5000-digit integer into
a ``ValueError`` from Python's digit limit. ``load_yaml_file`` refuses all of these up front:
anchors, aliases and merge keys, duplicate keys, nesting deeper than ``MAX_DEPTH``, integers longer than
``MAX_INT_DIGITS`` and files larger than ``MAX_DOCUMENT_BYTES``, each as a ``ConfigError`` that
names the file, the line and the fix. Work and memory are then linear in the (capped) file size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

from crowguard.errors import ConfigError

MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_INT_DIGITS = 40


class StrictYamlError(yaml.YAMLError):
    """A construct the strict loader refuses; the message says which and where."""


class StrictLoader(yaml.SafeLoader):
    """SafeLoader without anchors, aliases or duplicate keys, with bounded nesting and integer size."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise StrictYamlError(f"alias *{event.anchor} at {_where(event)}: aliases are not allowed; "
                                  "write the value out")
        if getattr(event, "anchor", None) is not None:
            raise StrictYamlError(f"anchor &{event.anchor} at {_where(event)}: anchors are not allowed; "
                                  "write the value out")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise StrictYamlError(f"nesting deeper than {MAX_DEPTH} levels at {_where(event)}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise StrictYamlError(f"merge key '<<' at line {key_node.start_mark.line + 1}: merge keys are not "
                                      "allowed; write the fields out")
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                raise ConstructorError(None, None, "a mapping key must be a plain value",
                                       key_node.start_mark) from None
            if first is not None:
                raise StrictYamlError(f"key {key!r} is given twice (lines {first.start_mark.line + 1} and "
                                      f"{key_node.start_mark.line + 1}); keep one")
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        digits = sum(c.isalnum() for c in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise StrictYamlError(f"integer of {digits} digits at line {node.start_mark.line + 1}: "
                                  f"at most {MAX_INT_DIGITS} are accepted")
        return super().construct_yaml_int(node)


StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)


def load_yaml_file(path: Path, *, what: str, example: str) -> Any:
    """Parse the YAML file ``path`` (a ``what``, e.g. "policy file") strictly; errors are ConfigError.

    ``example`` names a valid file of the same kind for the hint.
    """
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise ConfigError(f"{what} {path} is {size} bytes, more than the {MAX_DOCUMENT_BYTES} accepted",
                              hint=f"a {what} is a few lines of YAML; see {example}")
        with path.open("rb") as handle:
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text: {exc.reason} at byte {exc.start}",
                          hint=f"save it as UTF-8; see {example}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}",
                          hint="check the path and its permissions") from None
    if len(raw) > MAX_DOCUMENT_BYTES:  # grew after the stat
        raise ConfigError(f"{what} {path} is more than {MAX_DOCUMENT_BYTES} bytes",
                          hint=f"a {what} is a few lines of YAML; see {example}")
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    except StrictYamlError as exc:
        raise ConfigError(f"{what} {path} is refused: {exc}", hint=f"see {example} for the format") from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {_one_line(exc)}",
                          hint=f"fix the YAML syntax; see {example}") from None
    finally:
        loader.dispose()


def _where(event: yaml.Event) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "an unknown place"


def _one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text[:300] or type(exc).__name__
