"""One validation style: every settings class raises ConfigError naming the field, what is allowed and the value."""

from dataclasses import dataclass

import pytest

from crowguard.config_checks import FieldChecks
from crowguard.errors import ConfigError, ExitCode
from crowguard.evaluate.spec import EvalSpec
from crowguard.lab.plant import PlantSpec
from crowguard.lab.spec import LabSpec
from crowguard.sanitize.config import SanitizeConfig
from crowguard.sanitize.loop import LoopSettings
from crowguard.scan.behaviour.options import BehaviourOptions


@dataclass
class _Settings:
    count: object = 1
    rate: object = 0.5
    mode: object = "a"


@pytest.mark.parametrize(("field", "value", "check", "allowed"), [
    ("count", 0, lambda c: c.at_least(1, "count"), "an integer >= 1"),
    ("count", True, lambda c: c.at_least(0, "count"), "an integer >= 0"),
    ("rate", 1.0, lambda c: c.fraction("rate"), "a fraction in [0, 1)"),
    ("rate", float("nan"), lambda c: c.positive("rate"), "a positive number"),
    ("mode", "z", lambda c: c.choice("mode", ("a", "b")), "one of a, b"),
])
def test_message_names_owner_field_allowed_and_value(field: str, value: object, check, allowed: str) -> None:
    settings = _Settings(**{field: value})
    with pytest.raises(ConfigError) as info:
        check(FieldChecks("demo settings", settings))
    assert info.value.message == f"demo settings: {field} must be {allowed}; got {field}={value!r}"
    assert info.value.exit_code == ExitCode.USAGE and field in (info.value.hint or "")


@pytest.mark.parametrize(("make", "needle"), [
    (lambda: SanitizeConfig(lr=0.0), "lr=0.0"),
    (lambda: LabSpec(steps=0), "steps=0"),
    (lambda: PlantSpec(dropout=1.0), "dropout=1.0"),
    (lambda: EvalSpec(keywords=("x",), clean=(), triggered=(), batch_size=0), "nothing to evaluate"),
    (lambda: BehaviourOptions(batch_size=0), "batch_size=0"),
    (lambda: LoopSettings(lr=1e-3, schedule="linear"), "schedule='linear'"),  # type: ignore[arg-type]
])
def test_every_settings_class_raises_config_error(make, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert needle in info.value.message
