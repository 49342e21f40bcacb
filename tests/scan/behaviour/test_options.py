"""Scan options are checked on construction and name the field and value."""

from pathlib import Path

import pytest

from crowguard.errors import UsageError
from crowguard.scan.behaviour.options import BehaviourOptions


@pytest.mark.parametrize(("fields", "named"), [
    ({"probe_count": 2}, "probe_count=2"),
    ({"null_samples": 0}, "null_samples=0"),
    ({"template": "llama"}, "template='llama'"),
    ({"seed": -1}, "seed=-1"),
])
def test_bad_values_name_field_and_value(fields: dict, named: str) -> None:
    with pytest.raises(UsageError, match=named.replace("(", r"\(")):
        BehaviourOptions(**fields)


def test_missing_probe_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="probe file .*nope.json does not exist"):
        BehaviourOptions(probes=tmp_path / "nope.json")
