"""Pickle payloads are caught at opcode level with the right rule; clean checkpoints are not flagged."""

import pickle
from pathlib import Path

import pytest

from crowguard.report.model import Severity
from tests.scan import payloads
from tests.scan.conftest import rules


def _pickle_findings(stage, file: str):
    return {f.rule_id: f for f in stage.findings if f.file == file and f.rule_id.startswith("CG-PICKLE-")}


@pytest.mark.parametrize(("name", "build", "rule"), [
    ("pytorch_model.bin", lambda p: p.write_bytes(payloads.system_pickle()), "CG-PICKLE-DANGEROUS-IMPORT"),
    ("model.pkl", lambda p: p.write_bytes(pickle.dumps(payloads.ImportIndirection())), "CG-PICKLE-DANGEROUS-IMPORT"),
    ("model.pt", payloads.torch_zip_with_payload, "CG-PICKLE-DANGEROUS-IMPORT"),
    ("handmade.pt", payloads.hand_zip_with_payload, "CG-PICKLE-DANGEROUS-IMPORT"),
    ("model.safetensors", lambda p: p.write_bytes(payloads.system_pickle()), "CG-PICKLE-DANGEROUS-IMPORT"),
    ("readme.txt", lambda p: p.write_bytes(payloads.system_pickle(protocol=0)), "CG-PICKLE-DANGEROUS-IMPORT"),
    ("model.ckpt", lambda p: p.write_bytes(payloads.truncated_pickle()), "CG-PICKLE-UNPARSEABLE"),
    ("dyn.pkl", lambda p: p.write_bytes(payloads.DYNAMIC_IMPORT), "CG-PICKLE-DYNAMIC-IMPORT"),
])
def test_payload_caught_with_rule(tmp_path: Path, scan, name: str, build, rule: str) -> None:
    build(tmp_path / name)
    stage = scan(tmp_path, "permissive")  # a policy that accepts pickles: the content alone must fail it
    found = _pickle_findings(stage, name)
    assert rule in found, stage.findings
    assert found[rule].severity is Severity.CRITICAL
    assert stage.status == "completed"


def test_payload_details_name_the_call(tmp_path: Path, scan) -> None:
    payloads.torch_zip_with_payload(tmp_path / "model.pt")
    finding = _pickle_findings(scan(tmp_path), "model.pt")["CG-PICKLE-DANGEROUS-IMPORT"]
    assert finding.details["module"] in ("posix", "nt", "os") and finding.details["name"] == "system"
    assert finding.location == "member model/data.pkl, stream 0"
    assert set(finding.details["flagged_by"]) == {"fickling", "picklescan"}


def test_importlib_indirection_is_caught_by_fickling_where_picklescan_only_suspects(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "m.pkl", pickle.dumps(payloads.ImportIndirection()))
    finding = _pickle_findings(scan(tmp_path), "m.pkl")["CG-PICKLE-DANGEROUS-IMPORT"]
    assert finding.details["flagged_by"] == ["fickling"]


def test_unknown_import_is_critical(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "custom.pkl", payloads.UNKNOWN_IMPORT)
    found = _pickle_findings(scan(tmp_path, "permissive"), "custom.pkl")
    assert found["CG-PICKLE-UNKNOWN-IMPORT"].severity is Severity.CRITICAL  # allow-list semantics
    assert "mypkg.loader.Thing" in found["CG-PICKLE-UNKNOWN-IMPORT"].title


def test_clean_checkpoints_pass_a_policy_that_allows_pickle(tmp_path: Path, scan) -> None:
    payloads.clean_torch_checkpoints(tmp_path)
    stage = scan(tmp_path, "permissive")
    assert stage.findings == ()
    default = scan(tmp_path)  # the default policy refuses pickles whatever they hold
    assert rules(default) == {"CG-POLICY-PICKLE"}


def test_second_stacked_stream_is_scanned(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "stacked.pkl", pickle.dumps({"a": 1}) + payloads.system_pickle())
    assert "CG-PICKLE-DANGEROUS-IMPORT" in rules(scan(tmp_path), "stacked.pkl")


def test_trailing_bytes_after_a_pickle_are_not_a_finding(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "data.pkl", pickle.dumps([1, 2, 3]) + b"\xff\xfe raw tail")
    assert scan(tmp_path, "permissive").findings == ()


def test_random_bytes_under_a_checkpoint_name_fail_closed(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "pytorch_model.bin", bytes(range(7, 250)) * 3)
    assert "CG-PICKLE-UNPARSEABLE" in rules(scan(tmp_path, "permissive"), "pytorch_model.bin")


def test_stream_larger_than_cap(tmp_path: Path, scan, monkeypatch) -> None:
    import crowguard.scan.files.pickle_streams as streams

    monkeypatch.setattr(streams, "MAX_STREAM_BYTES", 64)
    payloads.write(tmp_path, "big.pkl", pickle.dumps(b"x" * 1000, protocol=4))
    assert "CG-PICKLE-TOO-LARGE" in rules(scan(tmp_path, "permissive"), "big.pkl")


def test_corrupt_zip_member_is_a_finding(tmp_path: Path, scan) -> None:
    path = payloads.hand_zip_with_payload(tmp_path / "model.pt")
    data = bytearray(path.read_bytes())
    start = data.index(b"archive/data.pkl") + len("archive/data.pkl")
    data[start + 5: start + 15] = bytes(10)  # damage the member's bytes: CRC check fails
    path.write_bytes(bytes(data))
    stage = scan(tmp_path, "permissive")
    assert stage.status == "completed"
    assert "CG-CONTAINER-UNREADABLE" in rules(stage, "model.pt")
