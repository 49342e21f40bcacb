"""Inventory: streamed sha256, format by content, links and special files never opened,
lab.json an ordinary file, hard links counted."""

import hashlib
import os
import struct
from pathlib import Path

from crowguard.scan.files.inventory import build_inventory
from tests.scan import payloads


def test_hash_size_and_format_by_content(tmp_path: Path) -> None:
    files = {
        "model.safetensors": payloads.valid_safetensors(),
        "weights.bin": payloads.valid_safetensors(),          # safetensors under a pickle name
        "renamed.safetensors": payloads.system_pickle(),       # pickle under a safetensors name
        "notes.txt": payloads.system_pickle(protocol=0),       # protocol 0 pickle has no magic bytes
        "config.json": '{"model_type": "llama"}',
        "README.md": "# a model\n",
        "model.gguf": b"GGUF" + struct.pack("<I", 3) + bytes(16),
        "tool": b"\x7fELF\x02\x01\x01" + bytes(64),
        "run.sh": "#!/bin/sh\necho hi\n",
        "empty.txt": b"",
        "blob.dat": bytes(range(256)) * 4,
    }
    for name, data in files.items():
        payloads.write(tmp_path, name, data)
    payloads.hand_zip_with_payload(tmp_path / "sub" / "ckpt.pt")
    inventory, errors = build_inventory(tmp_path)
    assert errors == ()
    formats = {f.path: f.format for f in inventory.files}
    assert formats == {
        "model.safetensors": "safetensors", "weights.bin": "safetensors", "renamed.safetensors": "pickle",
        "notes.txt": "pickle", "config.json": "json", "README.md": "text", "model.gguf": "gguf", "tool": "elf",
        "run.sh": "script", "empty.txt": "empty", "blob.dat": "binary", "sub/ckpt.pt": "zip-pickle",
    }
    for entry in inventory.files:
        data = (tmp_path / entry.path).read_bytes()
        assert (entry.sha256, entry.size) == (hashlib.sha256(data).hexdigest(), len(data))


def test_hash_streams_across_chunks(tmp_path: Path, monkeypatch) -> None:
    import crowguard.scan.files.inventory as inventory_module

    monkeypatch.setattr(inventory_module, "CHUNK_BYTES", 1000)
    data = os.urandom(10_500)
    payloads.write(tmp_path, "big.bin", data)
    inventory, _ = build_inventory(tmp_path)
    assert inventory.files[0].sha256 == hashlib.sha256(data).hexdigest()


def test_links_and_fifos_are_recorded_not_opened(tmp_path: Path) -> None:
    payloads.write(tmp_path, "model.safetensors", payloads.valid_safetensors())
    (tmp_path / "passwd.safetensors").symlink_to("/etc/passwd")
    (tmp_path / "linked_dir").symlink_to("/etc", target_is_directory=True)
    os.mkfifo(tmp_path / "pipe")  # opening a FIFO would block the scan
    inventory, errors = build_inventory(tmp_path)
    assert errors == ()
    assert [f.path for f in inventory.files] == ["model.safetensors"]
    assert {(link.path, link.target) for link in inventory.links} == {("passwd.safetensors", "/etc/passwd"),
                                                                     ("linked_dir", "/etc")}
    assert [(s.path, s.kind) for s in inventory.specials] == [("pipe", "fifo")]


def test_lab_card_is_hashed_and_sniffed_like_any_file(tmp_path: Path) -> None:
    data = payloads.system_pickle()
    payloads.write(tmp_path, "lab.json", data)  # a name is no reason to look away
    payloads.write(tmp_path, "nested/lab.json", '{"a": 1}')
    inventory, _ = build_inventory(tmp_path)
    assert [f.path for f in inventory.files] == ["lab.json", "nested/lab.json"] and inventory.skipped == ()
    assert inventory.files[0].sha256 == hashlib.sha256(data).hexdigest() and inventory.files[0].format == "pickle"


def test_hard_links_are_counted(tmp_path: Path) -> None:
    payloads.write(tmp_path, "model.safetensors", payloads.valid_safetensors())
    os.link(tmp_path / "model.safetensors", tmp_path / "alias.safetensors")
    payloads.write(tmp_path, "config.json", "{}")
    inventory, _ = build_inventory(tmp_path)
    assert {f.path: f.hard_links for f in inventory.files} == {"alias.safetensors": 2, "config.json": 1,
                                                                "model.safetensors": 2}
