"""crowguard and the stock model_signing CLI agree on what a signature covers, with git files present;
`verify` lists every file the signature does not cover and refuses one a loader could read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.sign import SIGNATURE_NAME, UnsignedFiles, generate_keypair, sign_folder, verify_folder
from crowguard.sign.coverage import is_inert

runner = CliRunner()
MODEL_SIGNING = Path(sys.executable).with_name("model_signing")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pair = generate_keypair(tmp_path_factory.mktemp("keys") / "ci")
    return pair.private, pair.public


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A small model folder with the git files a Hugging Face clone holds: .gitattributes, .gitignore, .git/."""
    model = tmp_path / "model"
    model.mkdir()
    save_file({"w": np.zeros((4, 4), dtype=np.float32)}, str(model / "model.safetensors"))
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model / "report.json").write_text(json.dumps({"verdict": {"passed": True}}))
    (model / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    (model / ".gitignore").write_text("*.tmp\n")
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return model


def _stock(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert MODEL_SIGNING.exists(), f"model_signing CLI not found beside {sys.executable}"
    return subprocess.run([str(MODEL_SIGNING), *map(str, args)], capture_output=True, text=True, timeout=120)


def _stock_verify(folder: Path, public: Path) -> subprocess.CompletedProcess[str]:
    """The README's command, exactly."""
    return _stock("verify", "key", folder, "--signature", folder / SIGNATURE_NAME, "--public_key", public)


def _verify(folder: Path, public: Path, *extra: str) -> object:
    return runner.invoke(app, ["verify", str(folder), "--public-key", str(public), *extra])


def test_stock_cli_verifies_a_crowguard_signature_with_git_files_present(folder: Path, keys: tuple[Path, Path]) -> None:
    refused = runner.invoke(app, ["sign", str(folder), "--key", str(keys[0])])
    assert refused.exit_code == 2 and ".git/HEAD" in refused.stderr  # .git/ would stay unsigned
    assert not (folder / SIGNATURE_NAME).exists()

    signed = runner.invoke(app, ["sign", str(folder), "--key", str(keys[0]), "--allow-unsigned-extra"])
    assert signed.exit_code == 0, signed.stderr
    assert "not covered by the signature" in signed.stderr and ".gitattributes" in signed.stderr
    ok = _stock_verify(folder, keys[1])
    assert ok.returncode == 0 and "Verification succeeded" in ok.stdout, ok.stdout + ok.stderr

    strict = _verify(folder, keys[1])
    assert strict.exit_code == 4 and ".git/HEAD" in strict.stderr
    with pytest.raises(UnsignedFiles) as refused_files:
        verify_folder(folder, keys[1])
    assert refused_files.value.files == (".git/HEAD",)  # .gitattributes and .gitignore are inert
    relaxed = _verify(folder, keys[1], "--allow-unsigned-extra")
    assert relaxed.exit_code == 0 and ".git/HEAD" in relaxed.stderr

    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "auto_map": {"AutoModel": "x.Y"}}))
    assert _stock_verify(folder, keys[1]).returncode != 0
    tampered = _verify(folder, keys[1], "--allow-unsigned-extra")
    assert tampered.exit_code == 4 and "changed: config.json" in tampered.stderr


def test_gitattributes_and_gitignore_are_unsigned_but_accepted_by_both(folder: Path, keys: tuple[Path, Path]) -> None:
    import shutil

    shutil.rmtree(folder / ".git")
    result = sign_folder(folder, keys[0])
    assert set(result.files) == {"config.json", "model.safetensors", "report.json"}
    assert result.unsigned == (".gitattributes", ".gitignore")
    assert _stock_verify(folder, keys[1]).returncode == 0
    (folder / ".gitattributes").write_text("* text\n")  # inert: edited after signing, still accepted, listed
    assert _stock_verify(folder, keys[1]).returncode == 0
    ok = _verify(folder, keys[1])
    assert ok.exit_code == 0 and ".gitattributes, .gitignore" in ok.stderr


def test_crowguard_verifies_a_stock_cli_signature_with_git_files_present(folder: Path, keys: tuple[Path, Path]) -> None:
    made = _stock("sign", "key", folder, "--signature", folder / SIGNATURE_NAME, "--private_key", keys[0])
    assert made.returncode == 0, made.stdout + made.stderr
    result = verify_folder(folder, keys[1], allow_unsigned_extra=True)
    assert set(result.files) == {"config.json", "model.safetensors", "report.json"}
    assert result.unsigned == (".git/HEAD", ".gitattributes", ".gitignore")
    with pytest.raises(UnsignedFiles) as refused:
        verify_folder(folder, keys[1])
    assert refused.value.files == (".git/HEAD",)
    (folder / "model.safetensors").write_bytes(b"\0" * 8)
    tampered = _verify(folder, keys[1], "--allow-unsigned-extra")
    assert tampered.exit_code == 4 and "changed: model.safetensors" in tampered.stderr


def test_files_a_foreign_signature_ignores_are_listed_and_refused(folder: Path, keys: tuple[Path, Path]) -> None:
    import shutil

    shutil.rmtree(folder / ".git")
    (folder / "README.md").write_text("# card\n")
    save_file({"w": np.ones((4, 4), dtype=np.float32)}, str(folder / "model-00002-of-00002.safetensors"))
    made = _stock("sign", "key", folder, "--signature", folder / SIGNATURE_NAME, "--private_key", keys[0],
                  "--ignore-paths", folder / "README.md", "--ignore-paths", folder / "model-00002-of-00002.safetensors")
    assert made.returncode == 0, made.stdout + made.stderr
    assert _stock_verify(folder, keys[1]).returncode == 0  # the stock tool honours the signature's ignore list

    refused = _verify(folder, keys[1])
    assert refused.exit_code == 4, refused.stderr
    assert "model-00002-of-00002.safetensors" in refused.stderr and "Traceback" not in refused.stderr
    (folder / "model-00002-of-00002.safetensors").unlink()
    ok = _verify(folder, keys[1])  # the ignored model card is inert: listed, accepted
    assert ok.exit_code == 0 and "README.md" in ok.stderr


def test_a_signature_that_ignores_everything_is_refused(folder: Path, keys: tuple[Path, Path]) -> None:
    made = _stock("sign", "key", folder, "--signature", folder / SIGNATURE_NAME, "--private_key", keys[0],
                  "--ignore-paths", folder)
    assert made.returncode == 0, made.stdout + made.stderr
    refused = _verify(folder, keys[1], "--allow-unsigned-extra")
    assert refused.exit_code == 4 and "covers no files" in refused.stderr


@pytest.mark.parametrize("name", ["README.md", "docs/usage.md", ".gitattributes", ".gitignore", "LICENSE"])
def test_inert_files(name: str) -> None:
    assert is_inert(name)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "tokenizer.model", "chat_template.jinja",
                                  "modeling.py", "pytorch_model.bin", ".git/config", ".git/hooks/post-checkout",
                                  ".github/workflows/ci.yml", "merges.txt", "README", "notes.txt", "README.md.py"])
def test_loadable_files(name: str) -> None:
    assert not is_inert(name)
