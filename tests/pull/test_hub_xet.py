"""Xet downloads: chosen only for the real hub, and still sized and checksummed per file.

No Xet service is reachable offline, so the Xet transfer itself (huggingface-hub's ``xet_get``) is
replaced by a stand-in that writes what a Xet server would; everything around it (the HEAD request
that announces the Xet hash, the choice of route, the size and checksum checks, the clean-up) is the
real code against the loopback hub.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import pytest

from crowguard.errors import IntegrityError
from crowguard.pull import hub as hub_module
from crowguard.pull import pull
from crowguard.pull.hub_xet import xet_allowed
from tests.pull.hub_server import FakeHub, FakeRepo


@pytest.mark.parametrize(("endpoint", "allowed"), [
    ("https://huggingface.co", True),
    ("https://huggingface.co/", True),
    ("http://huggingface.co", False),  # plain HTTP is not the hub
    ("https://hf-mirror.example", False),
    ("https://huggingface.co.evil.example", False),
    ("https://user:pw@huggingface.co", False),
    ("https://huggingface.co:8443", False),
    ("https://huggingface.co/some/mirror", False),
    ("http://127.0.0.1:8080", False),
])
def test_only_the_real_hub_uses_xet(endpoint: str, allowed: bool) -> None:
    assert xet_allowed(endpoint) is allowed


@pytest.mark.parametrize("switch", ["CROWGUARD_HUB_XET", "HF_HUB_DISABLE_XET"])
def test_xet_can_be_switched_off(monkeypatch: pytest.MonkeyPatch, switch: str) -> None:
    from huggingface_hub import constants

    if switch == "CROWGUARD_HUB_XET":
        monkeypatch.setenv(switch, "0")
    else:
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    assert xet_allowed("https://huggingface.co") is False


def _xet_repo(hub: FakeHub, folder: Path) -> tuple[str, FakeRepo]:
    repo_id = f"org/x{secrets.token_hex(4)}"
    repo = hub.add_folder(repo_id, folder)
    repo.xet = True
    return repo_id, repo


def _fake_xet(monkeypatch: pytest.MonkeyPatch, repo: FakeRepo, calls: list[str],
              alter: dict[str, bytes] | None = None) -> None:
    """Treat the loopback hub as the real one and serve Xet files from ``repo`` (or ``alter``ed bytes)."""
    import huggingface_hub.file_download as file_download

    by_hash = {hashlib.sha256(data).hexdigest(): name for name, data in repo.files.items()}

    def xet_get(*, incomplete_path: Path, xet_file_data, headers, expected_size=None, **_: object) -> None:
        name = by_hash[xet_file_data.file_hash]
        calls.append(name)
        incomplete_path.write_bytes((alter or {}).get(name, repo.files[name]))

    monkeypatch.setattr(hub_module, "xet_allowed", lambda endpoint: True)
    monkeypatch.setattr(file_download, "xet_get", xet_get)


def test_real_hub_files_come_through_xet_and_are_verified(hub: FakeHub, tiny_model_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    repo_id, repo = _xet_repo(hub, tiny_model_dir)
    calls: list[str] = []
    _fake_xet(monkeypatch, repo, calls)
    result = pull(repo_id, tmp_path / "out", endpoint=hub.endpoint)
    assert calls == ["model.safetensors"]  # the LFS file; small git files keep the HTTP route
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == repo.files["model.safetensors"]
    entry = next(f for f in result.source.files if f.path == "model.safetensors")
    assert entry.sha256 == hashlib.sha256(repo.files["model.safetensors"]).hexdigest()
    assert not any(server == "cdn" and "model.safetensors" in path for server, _, path, _ in hub.requests
                   if repo_id in path)


@pytest.mark.parametrize(("change", "message"), [
    (lambda data: data + b"\0" * 4096, "Xet wrote"),  # larger than listed: removed at once
    (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "sha256"),  # same size, one bit off: the checksum
])
def test_a_bad_xet_file_exits_4_and_leaves_nothing(hub: FakeHub, tiny_model_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, change, message: str) -> None:
    repo_id, repo = _xet_repo(hub, tiny_model_dir)
    _fake_xet(monkeypatch, repo, [], alter={"model.safetensors": change(repo.files["model.safetensors"])})
    with pytest.raises(IntegrityError, match=message):
        pull(repo_id, tmp_path / "out", endpoint=hub.endpoint)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_a_mirror_never_reaches_xet(hub: FakeHub, tiny_model_dir: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.file_download as file_download

    def refuse(**_: object) -> None:
        raise AssertionError("Xet used for a mirror")

    monkeypatch.setattr(file_download, "xet_get", refuse)
    repo_id, _ = _xet_repo(hub, tiny_model_dir)
    pull(repo_id, tmp_path / "out", endpoint=hub.endpoint)
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_a_failed_xet_transfer_is_a_tool_error_with_the_http_way_out(hub: FakeHub, tiny_model_dir: Path,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.file_download as file_download

    from crowguard.errors import ToolError

    def broken(**_: object) -> None:
        raise RuntimeError("Data processing error: CAS service error")

    repo_id, _ = _xet_repo(hub, tiny_model_dir)
    monkeypatch.setattr(hub_module, "xet_allowed", lambda endpoint: True)
    monkeypatch.setattr(file_download, "xet_get", broken)
    with pytest.raises(ToolError, match="Xet download failed") as caught:
        pull(repo_id, tmp_path / "out", endpoint=hub.endpoint)
    assert "CROWGUARD_HUB_XET=0" in (caught.value.hint or "")
    assert not (tmp_path / "out").exists()
