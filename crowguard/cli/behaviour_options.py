"""The behavioural scan's options, declared once for ``scan``, ``sanitize`` and ``gate``.

``@with_behaviour_options`` replaces a command's ``behaviour_options: BehaviourOptions`` parameter
with one option per entry of ``FLAGS`` under the "Behavioural scan" help panel, and calls the
command with the ``BehaviourOptions`` they make. Types and defaults are the dataclass fields' own,
so a default is written once; a value out of range is BehaviourOptions' ConfigError, which the
command's ``guarded`` wrapper turns into exit 2. Two flags carry a ``--scan-`` prefix because
``sanitize`` and ``gate`` already have a ``--seed`` (training) and prompt templates (evaluation);
``scan`` still accepts its old ``--seed`` and ``--template`` (``LEGACY_SPELLINGS``).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from crowguard.cli.option_groups import replace_parameter
from crowguard.cli.options import PANEL_BEHAVIOUR
from crowguard.scan.behaviour.options import BehaviourOptions

F = TypeVar("F", bound=Callable[..., Any])
OPTIONS_PARAMETER = "behaviour_options"
_PREFIX = "behaviour_"  # the generated parameters' names, apart from the commands' own (sanitize has ``seed``)

# BehaviourOptions field -> (flag, help). The other fields keep their defaults.
FLAGS: dict[str, tuple[str, str]] = {
    "probes": ("--probes", "Probe prompts (Alpaca JSON or JSONL) instead of the built-in set of 135 prompts over "
               "15 task types."),
    "probe_count": ("--probe-count", "Prompts each trigger candidate is verified on."),
    "vocab_budget": ("--vocab-budget", "Single vocabulary tokens ranked as candidates (all of them when the "
                     "vocabulary is smaller)."),
    "leak_samples": ("--leak-samples", "Texts the model writes unprompted, mined for recurring strings that are "
                     "tried as triggers (0: none; 48 is a start). Only a model finetuned with its prompts in the "
                     "loss writes its trigger this way."),
    "inversion_openings": ("--inversion-openings", "Replies, each begun with a token likely to begin the plain "
                           "replies, continued over all the prompts at once: one fixed reply they all follow is a "
                           "backdoor's taught answer (0: off)."),
    "template": ("--scan-template", "Probe prompt format: auto (chat template if the model has one), raw, chat or "
                 "alpaca."),
    "seed": ("--scan-seed", "Seed for the probe split, random insertions and the trigger search."),
}


def option_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per ``FLAGS`` entry, typed and defaulted as its BehaviourOptions field."""
    fields = {f.name: f for f in dataclasses.fields(BehaviourOptions)}
    kinds = typing.get_type_hints(BehaviourOptions)
    params = []
    for name, (flag, help) in FLAGS.items():
        option = typer.Option(flag, help=help, rich_help_panel=PANEL_BEHAVIOUR)
        params.append(inspect.Parameter(_PREFIX + name, inspect.Parameter.KEYWORD_ONLY, default=fields[name].default,
                                        annotation=Annotated[kinds[name], option]))
    return params


def with_behaviour_options(command: F) -> F:
    """Give ``command`` the behavioural scan's options; it is called with ``behaviour_options=BehaviourOptions``."""

    def build(given: dict[str, Any]) -> BehaviourOptions:
        return BehaviourOptions(**{name[len(_PREFIX):]: value for name, value in given.items()})

    return replace_parameter(command, OPTIONS_PARAMETER, option_parameters(), build, what="behavioural scan options")
