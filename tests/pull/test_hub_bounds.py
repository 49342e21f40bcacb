"""A hostile mirror cannot make `pull` write more than the hub lists: oversized bodies, lying
Content-Length headers and endless close-delimited streams all stop at the listed size, exit 4, and
leave no file behind."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.errors import IntegrityError
from crowguard.pull.hub import HubSource
from tests.pull.hub_server import FakeHub, FakeRepo

runner = CliRunner()
FLOOD_BYTES = 1 << 30  # what the mirror would send if nobody stopped it


def _repo(hub: FakeHub, folder: Path) -> tuple[str, FakeRepo]:
    repo_id = f"org/b{secrets.token_hex(4)}"
    return repo_id, hub.add_folder(repo_id, folder)


def _pull(hub: FakeHub, repo_id: str, out: Path) -> object:
    return runner.invoke(app, ["pull", repo_id, "--out", str(out), "--endpoint", hub.endpoint])


def _nothing_left(tmp_path: Path) -> bool:
    return not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])  # LFS via the CDN, and a git file
def test_a_body_larger_than_listed_is_cut_off_and_exits_4(hub: FakeHub, tiny_model_dir: Path, tmp_path: Path,
                                                          name: str) -> None:
    repo_id, repo = _repo(hub, tiny_model_dir)
    repo.served[name] = repo.files[name] + b"\0" * 4096
    result = _pull(hub, repo_id, tmp_path / "out")
    assert result.exit_code == 4, result.stderr
    assert name in result.stderr and "announces" in result.stderr and "nothing was written" in result.stderr
    assert _nothing_left(tmp_path)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_an_endless_stream_is_stopped_at_the_listed_size(hub: FakeHub, tiny_model_dir: Path, tmp_path: Path,
                                                         name: str) -> None:
    repo_id, repo = _repo(hub, tiny_model_dir)
    repo.flood[name] = FLOOD_BYTES
    result = _pull(hub, repo_id, tmp_path / "out")
    assert result.exit_code == 4, result.stderr
    assert name in result.stderr and "sent more than" in result.stderr
    assert _nothing_left(tmp_path)
    deadline = time.monotonic() + 10
    while name not in repo.flooded and time.monotonic() < deadline:
        time.sleep(0.05)
    assert repo.flooded[name] < FLOOD_BYTES // 8  # the client hung up early; socket buffers hold the rest


def test_a_content_length_that_lies_low_still_fails_the_check(hub: FakeHub, tiny_model_dir: Path,
                                                              tmp_path: Path) -> None:
    repo_id, repo = _repo(hub, tiny_model_dir)
    name = "model.safetensors"
    body = bytearray(repo.files[name])
    body[-1] ^= 0xFF
    repo.served[name] = bytes(body) + b"\0" * 65536  # more bytes than announced, announced = listed size
    repo.announced[name] = len(repo.files[name])
    result = _pull(hub, repo_id, tmp_path / "out")
    assert result.exit_code == 4, result.stderr
    assert name in result.stderr and "sha256" in result.stderr
    assert _nothing_left(tmp_path)


def test_a_content_length_that_lies_high_is_refused_before_writing(hub: FakeHub, tiny_model_dir: Path,
                                                                   tmp_path: Path) -> None:
    repo_id, repo = _repo(hub, tiny_model_dir)
    repo.announced["config.json"] = 10 * len(repo.files["config.json"])
    result = _pull(hub, repo_id, tmp_path / "out")
    assert result.exit_code == 4 and "config.json" in result.stderr and "announces" in result.stderr
    assert _nothing_left(tmp_path)


def test_a_file_listed_without_a_size_is_refused(hub: FakeHub, tiny_model_dir: Path, tmp_path: Path) -> None:
    repo_id, repo = _repo(hub, tiny_model_dir)
    repo.sibling("config.json")["size"] = None
    source = HubSource(repo_id, endpoint=hub.endpoint)
    source.resolve()
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="lists no size"):
        source.fetch(["config.json"], dest)
    assert not list(dest.iterdir())


def test_declared_sizes_beyond_the_free_disk_are_refused_up_front(hub: FakeHub, tiny_model_dir: Path,
                                                                  tmp_path: Path) -> None:
    repo_id, repo = _repo(hub, tiny_model_dir)
    repo.sibling("model.safetensors")["lfs"]["size"] = 1 << 60
    result = _pull(hub, repo_id, tmp_path / "out")
    assert result.exit_code == 3 and "free" in result.stderr
    assert _nothing_left(tmp_path)
    assert not any(server == "cdn" and repo_id in path for server, _, path, _ in hub.requests)


@pytest.mark.parametrize("name", ["../escape.json", "/etc/passwd", "a/../../b", "a\\..\\b", "./x", ""])
def test_a_listed_name_that_leaves_the_output_is_refused(tmp_path: Path, name: str) -> None:
    from crowguard.errors import UsageError
    from crowguard.pull.hub_download import target_path

    with pytest.raises(UsageError, match="not a plain relative path"):
        target_path(tmp_path, name)
    assert target_path(tmp_path, "sub/dir/file.json") == tmp_path / "sub" / "dir" / "file.json"
