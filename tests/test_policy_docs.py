"""Policy defaults live in the model only: the YAML files, schema and README table are generated from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from crowguard.policy import SHIPPED, SHIPPED_POLICIES, Policy, Severity, load_policy
from crowguard.policy_docs import (
    README_PATH,
    REGENERATE,
    REPO,
    SCHEMA_PATH,
    TABLE_BEGIN,
    TABLE_END,
    generate_schema,
    generated_files,
    main,
    render_table,
)


@pytest.mark.parametrize("path", sorted(generated_files(), key=str), ids=lambda p: str(p.relative_to(REPO)))
def test_generated_file_is_committed_and_current(path: Path) -> None:
    assert path.read_text(encoding="utf-8") == generated_files()[path], (
        f"{path.relative_to(REPO)} drifted from the policy model in crowguard/policy.py: run `{REGENERATE}` "
        "and commit the result")


def test_the_check_command_reports_no_drift(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0, capsys.readouterr().out


def test_the_readme_table_sits_between_its_markers_in_the_policies_section() -> None:
    readme = README_PATH.read_text(encoding="utf-8")
    section = readme[readme.index("## Policies\n"):]
    section = section[:section.index("\n## ")]
    assert f"{TABLE_BEGIN}\n{render_table()}{TABLE_END}\n" in section


def _leaves(model: type = Policy) -> int:
    """How many leaf fields the policy model has (a nested model counts its own fields)."""
    from pydantic import BaseModel

    count = 0
    for info in model.model_fields.values():  # type: ignore[attr-defined]
        nested = info.annotation
        count += _leaves(nested) if isinstance(nested, type) and issubclass(nested, BaseModel) else 1
    return count


def test_the_table_has_a_row_for_every_field_with_its_default() -> None:
    table = render_table()
    for row in ("| `fail_on` | `info`/`low`/`medium`/`high`/`critical` (`high`) |",
                "| `behaviour_scan.threshold` | 0 < number <= 1 (`0.83`) |",
                "| `behaviour_scan.min_layer_z` | number >= 0 (`5.0`) |",
                "| `allowed_weight_formats` | list of `safetensors`, `pickle`, `gguf` (`[safetensors]`) |"):
        assert row in table
    assert table.count("\n") == 2 + _leaves()


def test_every_field_is_described() -> None:
    schema = json.loads(generate_schema())
    for properties in [schema["properties"], *(d["properties"] for d in schema["$defs"].values() if "properties" in d)]:
        undocumented = [k for k, v in properties.items()  # a nested model is described by its docstring
                        if not v.get("description") and "description" not in schema["$defs"].get(
                            v.get("$ref", "").rpartition("/")[2], {})]
        assert not undocumented, f"give these policy fields a Field(description=...): {undocumented}"


def test_the_default_policy_is_the_model_defaults() -> None:
    assert load_policy("default") == Policy() == SHIPPED["default"].policy


@pytest.mark.parametrize("name", SHIPPED_POLICIES)
def test_shipped_files_load_to_the_model_with_their_overrides(name: str) -> None:
    assert load_policy(name) == SHIPPED[name].policy
    assert load_policy(REPO / "policies" / f"{name}.yaml") == SHIPPED[name].policy


def test_strict_and_permissive_override_the_defaults() -> None:
    strict, permissive = SHIPPED["strict"].policy, SHIPPED["permissive"].policy
    assert (strict.fail_on, strict.sanitize.required, strict.behaviour_scan.severity) == (
        Severity.MEDIUM, True, Severity.CRITICAL)
    assert (permissive.fail_on, permissive.allow_pickle, permissive.require_signature) == (
        Severity.CRITICAL, True, False)
    assert permissive.allowed_weight_formats == ("safetensors", "pickle", "gguf")


@pytest.mark.parametrize("name", SHIPPED_POLICIES)
def test_every_field_in_a_shipped_file_has_a_comment_above_it(name: str) -> None:
    lines = (REPO / "policies" / f"{name}.yaml").read_text(encoding="utf-8").splitlines()
    fields = [i for i, line in enumerate(lines) if not line.lstrip().startswith("#")]
    assert len(fields) == 2 + _leaves()  # the two sections and every leaf field
    assert all(lines[i - 1].lstrip().startswith("#") for i in fields), name


@pytest.mark.parametrize("name", SHIPPED_POLICIES)
def test_shipped_files_validate_against_the_schema(name: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = yaml.safe_load((REPO / "policies" / f"{name}.yaml").read_text(encoding="utf-8"))
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "allow_pikle": True}, json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
