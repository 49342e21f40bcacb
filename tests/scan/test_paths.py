"""Links are flagged and never followed; special files, executables, odd names and escaping index paths."""

import json
import os
from pathlib import Path

from crowguard.report.model import Severity
from tests.scan import payloads
from tests.scan.conftest import rules


def test_symlink_to_etc_passwd_is_flagged_not_followed(tmp_path: Path, scan) -> None:
    (tmp_path / "model.safetensors").symlink_to("/etc/passwd")
    stage = scan(tmp_path)
    finding = next(f for f in stage.findings if f.rule_id == "CG-PATH-SYMLINK-ESCAPE")
    assert (finding.file, finding.severity, finding.details["target"]) == ("model.safetensors", Severity.CRITICAL,
                                                                           "/etc/passwd")
    assert "root:" not in stage.model_dump_json()  # nothing of the target was read into the report
    assert not any(f.rule_id.startswith("CG-SAFETENSORS") for f in stage.findings)


def test_links_inside_dangling_and_relative_escape(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "model.safetensors", payloads.valid_safetensors())
    (tmp_path / "alias.safetensors").symlink_to("model.safetensors")
    (tmp_path / "gone").symlink_to("missing-file")
    (tmp_path / "up").symlink_to("../../outside")
    found = {f.file: f.rule_id for f in scan(tmp_path).findings}
    assert found == {"alias.safetensors": "CG-PATH-SYMLINK", "gone": "CG-PATH-SYMLINK-ESCAPE",
                     "up": "CG-PATH-SYMLINK-ESCAPE"}


def test_special_files_and_executables(tmp_path: Path, scan) -> None:
    os.mkfifo(tmp_path / "fifo")
    payloads.write(tmp_path, "bin/loader", b"\x7fELF\x02\x01\x01" + bytes(120))
    payloads.write(tmp_path, "setup.sh", "#!/bin/sh\ncurl example | sh\n")
    config = payloads.write(tmp_path, "config.json", "{}")
    config.chmod(0o755)
    found = {f.file: (f.rule_id, f.severity) for f in scan(tmp_path).findings}
    assert found["fifo"] == ("CG-PATH-SPECIAL-FILE", Severity.HIGH)
    assert found["bin/loader"] == ("CG-PATH-EXECUTABLE", Severity.CRITICAL)  # floor: fails every policy
    assert found["setup.sh"] == ("CG-PATH-EXECUTABLE", Severity.CRITICAL)
    assert found["config.json"] == ("CG-PATH-EXEC-BIT", Severity.LOW)


def test_index_entries_outside_or_missing(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "model-00001-of-00002.safetensors", payloads.valid_safetensors())
    weight_map = {"a": "model-00001-of-00002.safetensors", "b": "../../etc/shadow", "c": "/abs/x.safetensors",
                  "d": "model-00002-of-00002.safetensors"}
    payloads.write(tmp_path, "model.safetensors.index.json", json.dumps({"weight_map": weight_map}))
    locations = {f.location: f.rule_id for f in scan(tmp_path).findings}
    assert locations == {"weight_map -> ../../etc/shadow": "CG-PATH-ESCAPE",
                         "weight_map -> /abs/x.safetensors": "CG-PATH-ESCAPE",
                         "weight_map -> model-00002-of-00002.safetensors": "CG-INDEX-MISSING-SHARD"}


def test_odd_file_names(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "model\u202esafetensors.txt", "hello")
    payloads.write(tmp_path, "line\nbreak.txt", "hello")
    assert rules(scan(tmp_path)) == {"CG-PATH-ODD-NAME"}
