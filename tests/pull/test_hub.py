"""`crowguard pull` from a hub: the real huggingface-hub client against a loopback hub stand-in."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.pull import pull
from tests.conftest import REPO
from tests.pull.gguf_builder import write_tiny_gguf
from tests.pull.hub_server import FakeHub, FakeRepo

runner = CliRunner()
EXTRAS = {
    "README.md": b"# tiny\n",
    ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
    "onnx/model.onnx": b"not a model",
    "pytorch_model.bin": b"\x80\x04K\x01.",  # redundant pickle beside safetensors: never downloaded
}


def _repo(hub: FakeHub, folder: Path, extra: dict[str, bytes] | None = None) -> tuple[str, FakeRepo]:
    """A fresh repository (unique id) holding the folder's files plus ``extra``."""
    repo_id = f"org/m{secrets.token_hex(4)}"
    return repo_id, hub.add_folder(repo_id, folder, extra)


def _repo_files(hub: FakeHub, files: dict[str, bytes]) -> tuple[str, FakeRepo]:
    repo_id = f"org/m{secrets.token_hex(4)}"
    return repo_id, hub.add_repo(repo_id, files)


def _pull_cli(hub: FakeHub, *args: str) -> object:
    return runner.invoke(app, ["pull", *args, "--endpoint", hub.endpoint])


def test_pull_pins_commit_checks_and_records_every_file(hub: FakeHub, tiny_model_dir: Path, tmp_path: Path) -> None:
    from crowguard.models import load_model

    repo_id, repo = _repo(hub, tiny_model_dir, EXTRAS)
    result = pull(repo_id, tmp_path / "out", revision="v1.0", endpoint=hub.endpoint)

    out = tmp_path / "out"
    assert result.source.kind == "hub" and result.source.revision == repo.sha
    taken = {e.path for e in result.source.files}
    assert taken == {p.name for p in tiny_model_dir.iterdir()} | {"README.md"}
    assert {p.name for p in out.iterdir()} == taken  # no .cache bookkeeping left behind
    for entry in result.source.files:
        assert entry.sha256 == hashlib.sha256((out / entry.path).read_bytes()).hexdigest()
    assert {e.path: e.format for e in result.source.files}["model.safetensors"] == "safetensors"
    skipped = {s.path: s.reason for s in result.skipped}
    assert set(skipped) == {".gitattributes", "onnx/model.onnx", "pytorch_model.bin"}
    assert "safetensors weights are present" in skipped["pytorch_model.bin"]
    resolves = [path for server, _, path, _ in hub.requests if server == "hub" and f"/{repo_id}/resolve/" in path]
    assert resolves and all(f"/resolve/{repo.sha}/" in p for p in resolves)  # every file from the pinned commit
    assert not any("pytorch_model.bin" in path or "onnx" in path for _, _, path, _ in hub.requests)
    requests_after_pull = len(hub.requests)
    loaded = load_model(out, device="cpu")
    assert loaded.model.config.num_hidden_layers == 4
    assert len(hub.requests) == requests_after_pull  # nothing goes to the hub once the pull is done
    assert result.stage().metrics["revision"] == repo.sha


def test_cli_pull_uses_env_token_and_endpoint_and_never_shows_the_token(
        hub: FakeHub, tiny_model_dir: Path, tmp_path: Path, hermetic_hf: Path) -> None:
    repo_id, repo = _repo(hub, tiny_model_dir)
    token = "hf_" + secrets.token_hex(16)
    env = {**os.environ, "HF_TOKEN": token, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(hermetic_hf),
           "PYTHONPATH": str(REPO)}
    report = tmp_path / "pull.json"
    done = subprocess.run([sys.executable, "-m", "crowguard", "pull", repo_id, "--out", str(tmp_path / "out"),
                           "--report", str(report)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert repo.sha in done.stderr
    record = report.read_text()
    assert token not in done.stdout + done.stderr + record
    assert json.loads(record)["source"]["revision"] == repo.sha
    seen = [(server, auth) for server, _, path, auth in hub.requests if repo_id in path or repo.sha in path]
    assert ("hub", f"Bearer {token}") in seen  # the token from the environment reached the hub...
    lfs_sha = hashlib.sha256((tiny_model_dir / "model.safetensors").read_bytes()).hexdigest()
    cdn = [auth for server, _, path, auth in hub.requests if server == "cdn" and lfs_sha in path]
    assert cdn and cdn[-1] is None  # ...and never the CDN host


def test_xet_backed_files_still_come_through_the_mirror(hub: FakeHub, tiny_model_dir: Path, tmp_path: Path) -> None:
    from huggingface_hub import constants

    repo_id, repo = _repo(hub, tiny_model_dir)
    repo.xet = True
    xet_setting = constants.HF_HUB_DISABLE_XET
    pull(repo_id, tmp_path / "out", endpoint=hub.endpoint)
    assert not any("xet-read-token" in path for _, _, path, _ in hub.requests)
    assert any(server == "cdn" and repo_id in path for server, _, path, _ in hub.requests)
    assert constants.HF_HUB_DISABLE_XET == xet_setting  # the library setting is restored afterwards


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_a_file_that_does_not_match_the_published_checksum_exits_4(
        hub: FakeHub, tiny_model_dir: Path, tmp_path: Path, name: str) -> None:
    repo_id, repo = _repo(hub, tiny_model_dir)
    tampered = bytearray(repo.files[name])
    tampered[len(tampered) // 2] ^= 0x01  # same size, one bit off: only a checksum catches it
    repo.served[name] = bytes(tampered)
    result = _pull_cli(hub, repo_id, "--out", str(tmp_path / "out"))
    assert result.exit_code == 4, result.stderr
    assert name in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no half-written folder left


def test_pickle_only_repo_is_refused_unless_the_policy_allows_pickle(
        hub: FakeHub, tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch

    weights = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.zeros(2)}, weights)  # a genuine pickle archive; crowguard never loads it
    repo_id, repo = _repo_files(hub, {"config.json": (tiny_model_dir / "config.json").read_bytes(),
                                      "pytorch_model.bin": weights.read_bytes()})
    refused = _pull_cli(hub, repo_id, "--out", str(tmp_path / "out"))
    assert refused.exit_code == 2
    assert "pytorch_model.bin" in refused.stderr and "allow_pickle" in refused.stderr
    assert not (tmp_path / "out").exists()

    policy = tmp_path / "pickle.yaml"
    policy.write_text("name: pickle-ok\nallow_pickle: true\nallowed_weight_formats: [safetensors, pickle]\n")
    allowed = _pull_cli(hub, repo_id, "--out", str(tmp_path / "out"), "--policy", str(policy),
                        "--report", str(tmp_path / "r.json"))
    assert allowed.exit_code == 0, allowed.stderr
    files = {f["path"]: f["format"] for f in json.loads((tmp_path / "r.json").read_text())["source"]["files"]}
    assert files["pytorch_model.bin"] == "zip-pickle"  # recorded as what it is, for the file scan
    assert json.loads((tmp_path / "r.json").read_text())["source"]["revision"] == repo.sha


def test_custom_code_is_never_downloaded_and_is_recorded_as_skipped(
        hub: FakeHub, tiny_model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    code = f"open({str(marker)!r}, 'w').write('pwned')\n".encode()
    repo_id, _ = _repo(hub, tiny_model_dir, {"config.json": json.dumps(config).encode(), "modeling_evil.py": code})
    result = _pull_cli(hub, repo_id, "--out", str(tmp_path / "out"), "--report", str(tmp_path / "r.json"))
    assert result.exit_code == 0, result.stderr
    assert not list((tmp_path / "out").glob("*.py")) and not marker.exists()
    assert not any(path.endswith("modeling_evil.py") for _, _, path, _ in hub.requests)
    skipped = json.loads((tmp_path / "r.json").read_text())["stages"][0]["skipped"]
    reasons = {s["path"]: s["reason"] for s in skipped}
    assert reasons["modeling_evil.py"] == "Python code (custom model code) is never downloaded or run"
    assert "auto_map" in json.loads((tmp_path / "out" / "config.json").read_text())  # left for the file scan


def test_unknown_revision_and_repository_are_usage_errors(hub: FakeHub, tiny_model_dir: Path, tmp_path: Path) -> None:
    repo_id, _ = _repo(hub, tiny_model_dir)
    bad_rev = _pull_cli(hub, repo_id, "--revision", "no-such-branch", "--out", str(tmp_path / "out"))
    assert bad_rev.exit_code == 2
    assert "revision 'no-such-branch' not found" in bad_rev.stderr and "--revision" in bad_rev.stderr
    bad_repo = _pull_cli(hub, "org/does-not-exist", "--out", str(tmp_path / "out"))
    assert bad_repo.exit_code == 2 and "org/does-not-exist" in bad_repo.stderr and "HF_TOKEN" in bad_repo.stderr
    assert not (tmp_path / "out").exists()


def test_unreachable_endpoint_fails_closed(tmp_path: Path) -> None:
    result = runner.invoke(app, ["pull", "org/model", "--out", str(tmp_path / "out"),
                                 "--endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == 3 and "Traceback" not in result.stderr


def test_gguf_repo_needs_a_named_file_then_imports_it(hub: FakeHub, tmp_path: Path) -> None:
    gguf = tmp_path / "tiny-F32.gguf"
    write_tiny_gguf(gguf)
    repo_id, repo = _repo_files(hub, {"tiny-F32.gguf": gguf.read_bytes(), "README.md": b"# gguf\n"})
    unnamed = _pull_cli(hub, repo_id, "--out", str(tmp_path / "out"))
    assert unnamed.exit_code == 2 and "--gguf" in unnamed.stderr and "tiny-F32.gguf" in unnamed.stderr
    result = pull(repo_id, tmp_path / "out", endpoint=hub.endpoint, gguf_file="tiny-F32.gguf")
    out = tmp_path / "out"
    assert result.imported_from_gguf == "tiny-F32.gguf" and result.source.revision == repo.sha
    recorded = {e.path: e for e in result.source.files}
    assert recorded["tiny-F32.gguf"].sha256 == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert recorded["tiny-F32.gguf"].format == "gguf"
    assert {"model.safetensors", "config.json", "chat_template.jinja", "README.md"} <= {p.name for p in out.iterdir()}
    assert not list(out.glob("*.gguf"))  # the GGUF itself stays out of the model folder
