"""One command-line option per ``SanitizeConfig`` setting, generated from the field's metadata.

``@with_sanitize_settings`` replaces a command's ``config: SanitizeConfig`` parameter with
``--sanitize-config FILE`` and one option per field (``lora_targets`` -> ``--lora-targets``), its help
and panel from the field's metadata and its shown default from the field's default (and the presets
that change it). typer reads the signature, so the generated parameters are real ones, placed where
``config`` was. Every option defaults to None, meaning "not given", so that a value from the file or
the preset is kept; the command receives the merged ``SanitizeConfig``
(``crowguard.sanitize.config_file.build_config``).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
import typer.core

from crowguard.cli.option_groups import replace_parameter
from crowguard.cli.options import SETTING_PANELS, SanitizeConfigFile
from crowguard.sanitize.config import PRESETS, SanitizeConfig, setting_fields
from crowguard.sanitize.config_file import build_config, field_types, optional_inner, split_names

F = TypeVar("F", bound=Callable[..., Any])
CONFIG_PARAMETER = "config"
FILE_PARAMETER = "sanitize_config"


def flag(name: str) -> str:
    """The option a field is set by: ``max_grad_norm`` -> ``--max-grad-norm``."""
    return "--" + name.replace("_", "-")


def setting_parameters() -> list[inspect.Parameter]:
    """``--sanitize-config`` and one keyword parameter per SanitizeConfig field, for typer."""
    params = [inspect.Parameter(FILE_PARAMETER, inspect.Parameter.KEYWORD_ONLY, default=None,
                                annotation=SanitizeConfigFile)]
    kinds = field_types()
    for field in setting_fields():
        cli_type, decls = _cli_type(field.name, kinds[field.name])
        panel = SETTING_PANELS.get(field.metadata.get("group", ""))
        option = typer.Option(*decls, help=_help(field), rich_help_panel=panel)
        params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[cli_type | None, option]))
    return params


def with_sanitize_settings(command: F) -> F:
    """Give ``command`` every sanitize setting as an option; it is called with ``config=SanitizeConfig``."""
    tuple_fields = {name for name, kind in field_types().items() if _is_names(kind)}

    def build(given: dict[str, Any]) -> SanitizeConfig:
        path = given.pop(FILE_PARAMETER)
        for name in tuple_fields:
            if given[name] is not None:
                given[name] = split_names(given[name])
        return build_config(path, given)

    return replace_parameter(command, CONFIG_PARAMETER, setting_parameters(), build, what="sanitize settings")


def _cli_type(name: str, kind: Any) -> tuple[Any, tuple[str, ...]]:
    inner, _ = optional_inner(kind)
    if inner is bool:
        return bool, (f"{flag(name)}/--no-{flag(name)[2:]}",)
    if typing.get_origin(inner) is typing.Literal or _is_names(inner):
        return str, (flag(name),)  # validated by SanitizeConfig, whose message names the choices
    return inner, (flag(name),)


def _is_names(kind: Any) -> bool:
    inner, _ = optional_inner(kind)
    return inner is tuple or typing.get_origin(inner) is tuple


def _help(field: dataclasses.Field[Any]) -> str:
    """The field's help and its default, shown as typer shows a default (the option's own default is None)."""
    if "shown" in field.metadata:
        shown = str(field.metadata["shown"])
    elif field.default is None:
        return str(field.metadata["help"])
    else:
        changed = [f"{preset} {_text(values[field.name])}" for preset, values in PRESETS.items()
                   if field.name in values]
        shown = "; ".join([_text(field.default), *changed])
    bracket = "\\[" if typer.core.HAS_RICH else "["  # rich markup would read [default: ...] as a style tag
    return f"{field.metadata['help']} {bracket}default: {shown}]"


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
