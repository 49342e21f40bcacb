"""Remote code: auto_map and Python files fail the default policy and are noted when allowed."""

import json
from pathlib import Path

from crowguard.report.model import Severity
from tests.scan import payloads
from tests.scan.conftest import rules

AUTO_MAP = {"model_type": "evil", "auto_map": {"AutoConfig": "configuration_evil.EvilConfig",
                                                "AutoModelForCausalLM": "other/repo--modeling_evil.EvilModel"}}


def _by_rule(stage):
    return {f.rule_id: f for f in stage.findings}


def test_auto_map_and_python_files_fail_default(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "config.json", json.dumps(AUTO_MAP))
    payloads.write(tmp_path, "modeling_evil.py", "import os\nos.system('id')\n")
    found = _by_rule(scan(tmp_path))
    automap, code = found["CG-REMOTE-CODE-AUTOMAP"], found["CG-REMOTE-CODE-FILE"]
    assert automap.severity is Severity.HIGH and code.severity is Severity.HIGH
    assert automap.file == "config.json" and code.file == "modeling_evil.py"
    assert automap.details["other_repositories"] == ["other/repo"]
    assert "configuration_evil.EvilConfig" in automap.evidence


def test_severity_follows_policy(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "tokenizer_config.json", json.dumps({"auto_map": {"AutoTokenizer": ["tok.T", None]}}))
    payloads.write(tmp_path, "nested/helper.py", "x = 1\n")
    allowed = scan(tmp_path, allow_remote_code=True)
    assert {f.severity for f in allowed.findings} == {Severity.INFO}
    critical_gate = scan(tmp_path, "permissive")  # fails only on critical: a refusal must still fail it
    assert {f.severity for f in critical_gate.findings} == {Severity.CRITICAL}
    assert rules(critical_gate) == {"CG-REMOTE-CODE-AUTOMAP", "CG-REMOTE-CODE-FILE"}


def test_invalid_and_ambiguous_json(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "config.json", '{"model_type": "llama", "model_type": "evil"}')
    payloads.write(tmp_path, "generation_config.json", b"{\xff}")
    payloads.write(tmp_path, "vocab.txt", "[PAD]\n[UNK]\n")  # JSON-looking text that is not named .json
    stage = scan(tmp_path)
    invalid = {f.file: f for f in stage.findings if f.rule_id == "CG-JSON-INVALID"}
    assert set(invalid) == {"config.json", "generation_config.json"}
    assert "duplicate key 'model_type'" in invalid["config.json"].evidence


def test_nested_auto_map_is_found_at_any_depth(tmp_path: Path, scan) -> None:
    nested = {"model_type": "llava", "text_config": {"auto_map": {"AutoModel": "modeling_a.A"}},
              "extra": [{"deeper": {"auto_map": {"AutoConfig": "other/repo--conf.C"}}}]}
    payloads.write(tmp_path, "config.json", json.dumps(nested))
    deep: dict = {"auto_map": {"AutoModel": "modeling_deep.D"}}
    for _ in range(500):  # deep, but within what the JSON parser accepts: walked without recursion
        deep = {"x": deep}
    payloads.write(tmp_path, "processor_config.json", json.dumps(deep))
    findings = {f.file: f for f in scan(tmp_path).findings if f.rule_id == "CG-REMOTE-CODE-AUTOMAP"}
    assert findings["config.json"].location == "extra[0].deeper.auto_map, text_config.auto_map"
    assert findings["config.json"].details["targets"] == ["modeling_a.A", "other/repo--conf.C"]
    assert findings["config.json"].details["other_repositories"] == ["other/repo"]
    assert findings["processor_config.json"].location.endswith("x.x.auto_map")
    assert findings["processor_config.json"].severity is Severity.HIGH
