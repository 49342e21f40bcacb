"""Field checks for settings dataclasses, written once: every failure is a ConfigError of one shape.

A settings class checks itself in ``__post_init__``::

    check = FieldChecks("lab spec", self)
    check.at_least(1, "steps", "batch_size")
    check.choice("injection", INJECTIONS)

and a bad value reads ``lab spec: steps must be an integer >= 1; got steps=0``: who is complaining,
the field, what is allowed, and the value received (its ``repr``), with a hint naming the setting.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn

from crowguard.errors import ConfigError


def invalid(owner: str, field: str, value: object, allowed: str, *, hint: str | None = None) -> NoReturn:
    """Raise the one ConfigError shape: ``owner: field must be allowed; got field=value``."""
    raise ConfigError(f"{owner}: {field} must be {allowed}; got {field}={value!r}",
                      hint=hint or f"fix the {field.replace('_', '-')} setting")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class FieldChecks:
    """Checks on the fields of one settings object; each names the owner in its message."""

    def __init__(self, owner: str, settings: object) -> None:
        self.owner = owner
        self.settings = settings

    def fail(self, field: str, allowed: str, *, hint: str | None = None) -> NoReturn:
        """Reject ``field``'s current value; ``allowed`` says what would do."""
        invalid(self.owner, field, getattr(self.settings, field), allowed, hint=hint)

    def choice(self, field: str, allowed: Iterable[str], *, extra: str = "", hint: str | None = None) -> None:
        """The value is one of ``allowed`` (``extra`` adds words such as "(or a clean build)")."""
        options = tuple(allowed)
        if getattr(self.settings, field) not in options:
            self.fail(field, f"one of {', '.join(options)}{extra}",
                      hint=hint or f"set {field.replace('_', '-')} to one of: {', '.join(options)}")

    def at_least(self, low: int, *fields: str, optional: bool = False) -> None:
        """Whole numbers >= ``low`` (``optional``: None is allowed too)."""
        for field in fields:
            value = getattr(self.settings, field)
            if optional and value is None:
                continue
            if not _is_int(value) or value < low:
                self.fail(field, f"an integer >= {low}" + (", or unset" if optional else ""))

    def at_most(self, high: int, *fields: str, unit: str = "") -> None:
        """Whole numbers <= ``high`` (checked after ``at_least``)."""
        for field in fields:
            if getattr(self.settings, field) > high:
                self.fail(field, f"at most {high}{unit}")

    def positive(self, *fields: str) -> None:
        """Numbers > 0."""
        for field in fields:
            value = getattr(self.settings, field)
            if not _is_number(value) or not value > 0:
                self.fail(field, "a positive number")

    def non_negative(self, *fields: str) -> None:
        """Numbers >= 0."""
        for field in fields:
            value = getattr(self.settings, field)
            if not _is_number(value) or not value >= 0:
                self.fail(field, "a number >= 0")

    def fraction(self, *fields: str, include_zero: bool = True, optional: bool = False) -> None:
        """Numbers in [0, 1), or in (0, 1) without ``include_zero``; ``optional``: None too."""
        for field in fields:
            value = getattr(self.settings, field)
            if optional and value is None:
                continue
            low_ok = _is_number(value) and (value >= 0.0 if include_zero else value > 0.0)
            if not low_ok or not value < 1.0:
                self.fail(field, "a fraction in [0, 1)" if include_zero else "a fraction between 0 and 1 (exclusive)")

    def learning_rate(self, *fields: str) -> None:
        """Numbers strictly between 0 and 1."""
        for field in fields:
            value = getattr(self.settings, field)
            if not _is_number(value) or not 0.0 < value < 1.0:
                self.fail(field, "a learning rate between 0 and 1")

    def text(self, *fields: str, hint: str | None = None) -> None:
        """Non-empty text, or a non-empty tuple of non-empty texts."""
        for field in fields:
            value = getattr(self.settings, field)
            items = value if isinstance(value, tuple) else (value,)
            if not items or any(not isinstance(t, str) or not t.strip() for t in items):
                self.fail(field, "non-empty text", hint=hint)
