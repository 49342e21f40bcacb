"""Sanitize settings from a YAML file (``--sanitize-config``) and from command-line values, merged.

The file is a mapping whose keys are ``SanitizeConfig`` field names (``preset`` included), read with
the strict loader. Precedence, lowest first: the defaults, the preset, the file, explicit command-line
values. An unknown key, a value of the wrong type or one out of range is a ``ConfigError`` (exit 2)
naming the file, the key and what is allowed. The config records the file it was read from (path
as given, sha256), which the sanitize and gate reports carry in their settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

from crowguard.errors import ConfigError
from crowguard.safe_yaml import load_yaml_file
from crowguard.sanitize.config import ConfigFile, SanitizeConfig, setting_fields

WHAT = "sanitize config file"
EXAMPLE = "the README's `--sanitize-config` example"


@cache
def field_types() -> dict[str, Any]:
    """Each SanitizeConfig field's resolved type (``Literal``, ``int | None``, ``tuple[str, ...]``...)."""
    hints = typing.get_type_hints(SanitizeConfig)
    return {f.name: hints[f.name] for f in setting_fields()}


def optional_inner(kind: Any) -> tuple[Any, bool]:
    """``int | None`` -> (int, True); ``int`` -> (int, False)."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return kind, False


def split_names(text: str) -> tuple[str, ...]:
    """``"q_proj, v_proj"`` -> ``("q_proj", "v_proj")``: the form a tuple-of-names setting takes as text."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def load_sanitize_file(path: Path) -> dict[str, Any]:
    """The settings a sanitize config file gives, checked by name and type (ranges are checked later)."""
    data = load_yaml_file(path, what=WHAT, example=EXAMPLE)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{WHAT} {path} must be a mapping of setting names to values, got {type(data).__name__}",
                          hint="write one `name: value` line per setting, e.g. `lr: 0.0005`")
    kinds = field_types()
    unknown = sorted(str(k) for k in data if k not in kinds)
    if unknown:
        raise ConfigError(f"{WHAT} {path}: unknown key(s) {', '.join(unknown)}",
                          hint=f"the keys are the sanitize settings: {', '.join(kinds)}")
    return {name: _checked(path, name, value, kinds[name]) for name, value in data.items()}


def build_config(path: Path | None, explicit: dict[str, Any]) -> SanitizeConfig:
    """The effective SanitizeConfig: defaults < preset < the file at ``path`` < ``explicit`` values not None."""
    given = {k: v for k, v in explicit.items() if v is not None}
    from_file = load_sanitize_file(path) if path is not None else {}
    if from_file:
        file_preset = from_file.pop("preset", "default")
        try:  # judge the file on its own first, so a bad value is blamed on it
            SanitizeConfig.from_options(file_preset, **from_file)
        except ConfigError as exc:
            raise ConfigError(f"{WHAT} {path}: {exc.message}", hint=exc.hint) from None
        given.setdefault("preset", file_preset)
    preset = given.pop("preset", "default")
    config = SanitizeConfig.from_options(preset, **{**from_file, **given})
    if path is None:
        return config
    record = ConfigFile(path=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    return dataclasses.replace(config, config_file=record)


def _checked(path: Path, name: str, value: Any, kind: Any) -> Any:
    inner, optional = optional_inner(kind)
    if value is None and optional:
        return None
    if typing.get_origin(inner) is typing.Literal:
        allowed = typing.get_args(inner)
        if value not in allowed:
            _refuse(path, name, value, "one of " + ", ".join(map(str, allowed)))
        return value
    if inner is tuple or typing.get_origin(inner) is tuple:
        names = list(split_names(value)) if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            _refuse(path, name, value, "a list of module names (or one comma-separated string)")
        return tuple(n.strip() for n in names)
    if inner is bool:
        if not isinstance(value, bool):
            _refuse(path, name, value, "true or false")
    elif inner is int:
        if not isinstance(value, int) or isinstance(value, bool):
            _refuse(path, name, value, "a whole number" + (" or null" if optional else ""))
    elif inner is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                _refuse(path, name, value, "a number")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            _refuse(path, name, value, "a number")
        value = float(value)
    elif inner is str and not isinstance(value, str):
        _refuse(path, name, value, "a string")
    return value


def _refuse(path: Path, name: str, value: Any, allowed: str) -> typing.NoReturn:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise ConfigError(f"{WHAT} {path}: {name} must be {allowed}, got {shown}",
                      hint=f"fix {name} in {path}, or leave it out for the default")
