"""Issue 13.6: pickles are told by parsing, and found inside every wrapper a loader unwraps."""

import os
import pickle
from pathlib import Path

import pytest

from crowguard.report.model import Severity
from crowguard.scan.files.inventory import build_inventory
from tests.scan import payloads
from tests.scan.conftest import policy, rules

POLICIES = ("default", "strict", "permissive")


def _hostile() -> dict[str, bytes]:
    pickled = payloads.system_pickle(2)
    return {
        "weights.dat": payloads.pickle_without_proto(4),
        "state": payloads.pickle_without_proto(2),
        "notes.txt": payloads.pickle_behind_long_string(),
        "model.joblib": payloads.compressed(pickled, "zlib"),
        "model.pkl.gz": payloads.compressed(pickled, "gzip"),
        "model.bz2": payloads.compressed(pickled, "bz2"),
        "model.xz": payloads.compressed(pickled, "xz"),
        "model.lzma": payloads.compressed(pickled, "lzma"),
        "legacy_tar.pt": payloads.legacy_torch_tar(),
        "v7.tar": payloads.v7_tar({"pickle": pickled}),
        "archive.tar.gz": payloads.compressed(payloads.tar_bytes({"inner/data.pkl": pickled}), "gzip"),
        "objects.npy": payloads.object_npy(),
        "arrays.npz": payloads.zip_bytes({"a.npy": payloads.object_npy()}),
        "nested.zip": payloads.zip_bytes({"inner.pt": payloads.torch_like_zip()}),
        "unnamed-member.zip": payloads.zip_bytes({"blob": pickled}),
    }


def test_member_cut_after_its_import_is_a_finding(tmp_path: Path, scan) -> None:
    cut = b"cos\nsystem\n(S'id'\ntR\xff\xff"  # pickle.load runs os.system('id'), then fails
    payloads.write(tmp_path, "cut.zip", payloads.zip_bytes({"archive/data/0": cut}))
    stage = scan(tmp_path, "permissive")
    assert {f.severity for f in stage.findings if f.rule_id.startswith("CG-PICKLE-")} == {Severity.CRITICAL}
    assert not policy("permissive").verdict([stage]).passed


@pytest.mark.parametrize("name", sorted(_hostile()))
def test_wrapped_or_magicless_pickle_is_scanned(tmp_path: Path, scan, name: str) -> None:
    payloads.write(tmp_path, name, _hostile()[name])
    stage = scan(tmp_path, "permissive")  # accepts pickles: only the opcode scan can fail it
    found = {f.rule_id: f.severity for f in stage.findings if f.file == name}
    assert found.get("CG-PICKLE-DANGEROUS-IMPORT") is Severity.CRITICAL, stage.findings
    assert stage.status == "completed"


@pytest.mark.parametrize("policy_name", ("default", "strict"))
def test_wrapped_pickles_are_refused_without_allow_pickle(tmp_path: Path, scan, policy_name: str) -> None:
    clean = pickle.dumps({"step": 3}, protocol=2)
    for name, data in {"a.gz": payloads.compressed(clean, "gzip"), "b.tar": payloads.tar_bytes({"pickle": clean}),
                       "c.dat": clean[2:]}.items():
        payloads.write(tmp_path, name, data)
    stage = scan(tmp_path, policy_name)
    refused = {f.file for f in stage.findings if f.rule_id == "CG-POLICY-PICKLE"}
    assert refused == {"a.gz", "b.tar", "c.dat"}
    assert not policy(policy_name).verdict([stage]).passed


def test_sniffer_tells_pickles_by_parsing(tmp_path: Path) -> None:
    files = {"a": payloads.pickle_without_proto(4), "b": payloads.pickle_behind_long_string(),
             "readme": b"(c) 2024 Someone. Licensed under the MIT license.\n", "c.csv": b"a,b\n1,2\n",
             "t.model": payloads.protobuf_bytes(), "img.png": b"\x89PNG\r\n\x1a\n" + bytes(40),
             "long-arg.bin": b"B" + (5000).to_bytes(4, "little") + os.urandom(100)}  # length past the end
    for name, data in files.items():
        payloads.write(tmp_path, name, data)
    inventory, _ = build_inventory(tmp_path)
    assert {f.path: f.format for f in inventory.files} == {"a": "pickle", "b": "pickle", "readme": "text",
                                                          "c.csv": "text", "t.model": "protobuf", "img.png": "png",
                                                          "long-arg.bin": "binary"}


def test_decompression_bomb_and_depth_are_findings(tmp_path: Path, scan, monkeypatch) -> None:
    import crowguard.scan.files.containers as containers

    monkeypatch.setattr(containers, "MAX_UNPACKED_BYTES", 10_000)
    payloads.write(tmp_path, "bomb.gz", payloads.compressed(bytes(1_000_000), "gzip"))
    deep = pickle.dumps(1)
    for _ in range(containers.MAX_DEPTH + 2):
        deep = payloads.compressed(deep, "gzip")
    payloads.write(tmp_path, "deep.gz", deep)
    for policy_name in POLICIES:
        stage = scan(tmp_path, policy_name)
        assert {f.severity for f in stage.findings if f.rule_id == "CG-CONTAINER-LIMIT"} == {Severity.CRITICAL}
        assert {f.file for f in stage.findings if f.rule_id == "CG-CONTAINER-LIMIT"} == {"bomb.gz", "deep.gz"}
        assert not policy(policy_name).verdict([stage]).passed


def test_what_cannot_be_examined_is_never_a_pass(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "model.zst", b"\x28\xb5\x2f\xfd" + os.urandom(100))
    payloads.write(tmp_path, "blob.dat", os.urandom(4096))
    payloads.write(tmp_path, "model.onnx", payloads.protobuf_bytes())
    default = scan(tmp_path)
    found = {(f.file, f.rule_id): f.severity for f in default.findings}
    assert found[("model.zst", "CG-CONTAINER-UNREADABLE")] is Severity.CRITICAL
    assert found[("blob.dat", "CG-FORMAT-UNKNOWN-BINARY")] is Severity.HIGH
    assert found[("model.onnx", "CG-FORMAT-UNSCANNED")] is Severity.HIGH
    assert not policy("default").verdict([default]).passed
    assert not policy("permissive").verdict([scan(tmp_path, "permissive")]).passed  # the zstd stream


def test_known_harmless_binaries_are_not_findings(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "tokenizer.model", payloads.protobuf_bytes())
    payloads.write(tmp_path, "card.png", b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    payloads.write(tmp_path, "numbers.npy", _plain_npy())
    assert rules(scan(tmp_path)) == set()


def _plain_npy() -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.arange(6, dtype=np.float32))
    return buffer.getvalue()


def test_random_bytes_are_neither_pickles_nor_zips() -> None:
    import io
    import random

    from crowguard.file_formats import HEAD_BYTES, also_formats, sniff

    rng = random.Random(13)
    for _ in range(300):
        data = rng.randbytes(rng.randrange(1, 5000))
        head = data[:HEAD_BYTES]
        kind = sniff(head, len(data), io.BytesIO(data))
        assert kind not in ("pickle", "zip", "zip-pickle", "protobuf"), data[:16]
        assert also_formats(kind, head, len(data), io.BytesIO(data)) == ()
