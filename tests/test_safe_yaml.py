"""The strict YAML loader: alias bombs, duplicate keys, huge integers, deep nesting and big files are
ConfigErrors naming the file and the problem, found before any expansion happens."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowguard.errors import ConfigError
from crowguard.policy import load_policy
from crowguard.safe_yaml import MAX_DOCUMENT_BYTES, load_yaml_file


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The billion laughs under a real policy field: each level lists the one before ``width`` times."""
    lines = ["allowed_weight_formats:", "  - &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"  - &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


BAD_POLICIES = {
    "alias bomb": (alias_bomb(), ["anchors are not allowed"]),
    "alias only": ("fail_on: *x\n", ["alias"]),
    "inline merge key": ("<<: {fail_on: low}\nfail_on: high\n", ["merge key"]),
    "merge key": ("base: &b {fail_on: high}\nother:\n  <<: *b\n", ["anchor"]),
    "duplicate key": ("fail_on: high\nallow_pickle: false\nfail_on: low\n",
                      ["'fail_on' is given twice", "lines 1 and 3"]),
    "duplicate nested key": ("sanitize:\n  min_utility: 0.5\n  min_utility: 0.9\n", ["'min_utility' is given twice"]),
    "duplicate via bool spelling": ("behaviour_scan:\n  enabled: true\n  enabled: yes\n", ["given twice"]),
    "5000-digit integer": ("behaviour_scan: {min_layer_z: " + "9" * 5000 + "}\n", ["5000 digits", "at most"]),
    "5000-digit hex integer": ("behaviour_scan: {min_layer_z: 0x" + "f" * 5000 + "}\n", ["digits"]),
    "deep nesting": ("name: " + "[" * 50_000 + "]" * 50_000 + "\n", ["nesting deeper than"]),
    "not utf-8": (b"fail_on: \xff\xfe high\n", ["not UTF-8"]),
}


@pytest.mark.parametrize("case", sorted(BAD_POLICIES))
def test_hostile_policy_is_a_config_error_naming_the_file(tmp_path: Path, case: str) -> None:
    text, needles = BAD_POLICIES[case]
    path = tmp_path / "hostile.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert str(path) in info.value.message and info.value.hint
    for needle in needles:
        assert needle in info.value.message


def test_oversized_yaml_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * (MAX_DOCUMENT_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match="more than the"):
        load_yaml_file(path, what="policy file", example="policies/default.yaml")


def test_plain_yaml_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("fail_on: medium\nbehaviour_scan:\n  threshold: 0.9\n  min_layer_z: 12345678901234567890\n"
                    "allowed_weight_formats: [safetensors, gguf]\n")
    data = load_yaml_file(path, what="policy file", example="policies/default.yaml")
    assert data == {"fail_on": "medium", "behaviour_scan": {"threshold": 0.9, "min_layer_z": 12345678901234567890},
                    "allowed_weight_formats": ["safetensors", "gguf"]}
