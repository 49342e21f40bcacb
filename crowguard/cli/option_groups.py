"""Replace one typed parameter of a command with a group of generated options (typer reads the signature).

``@with_sanitize_settings`` and ``@with_behaviour_options`` both hand a command one object
(``SanitizeConfig``, ``BehaviourOptions``) built from many options. ``replace_parameter`` does the
signature work once: the generated parameters go where the typed one was, the wrapper pops their
values and calls the command with the object ``build`` makes of them. A value ``build`` refuses
raises there, inside the command's ``guarded`` wrapper, so it is an exit code, not a traceback.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def replace_parameter(command: F, parameter: str, generated: Sequence[inspect.Parameter],
                      build: Callable[[dict[str, Any]], Any], *, what: str) -> F:
    """``command`` with ``parameter`` replaced by ``generated``; it is called with ``build(their values)``."""
    signature = inspect.signature(command, eval_str=True)
    own = list(signature.parameters.values())
    names = [p.name for p in own]
    if parameter not in names:
        raise TypeError(f"{command.__name__} has no {parameter!r} parameter to replace")
    popped = [p.name for p in generated]
    clash = set(popped) & (set(names) - {parameter})
    if clash:
        raise TypeError(f"{command.__name__} parameters clash with {what}: {sorted(clash)}")
    at = names.index(parameter)
    # typer accepts keyword-only parameters anywhere; inspect wants them after the positional ones.
    head = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[:at]]
    tail = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[at + 1:]]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in popped}
        return command(**kwargs, **{parameter: build(given)})

    params = [*head, *generated, *tail]
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params} | {"return": signature.return_annotation}
    return wrapper  # type: ignore[return-value]
