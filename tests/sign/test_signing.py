"""`crowguard sign` / `verify`: OMS signatures over a model folder with its report, tamper tests, interop."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.errors import IntegrityError
from crowguard.sign import SIGNATURE_NAME, SignatureMismatch, generate_keypair, sign_folder, verify_folder

runner = CliRunner()
MODEL_SIGNING = Path(sys.executable).with_name("model_signing")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pair = generate_keypair(tmp_path_factory.mktemp("keys") / "ci")
    return pair.private, pair.public


@pytest.fixture
def signed(tiny_model_dir: Path, tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    """A copy of the tiny model with a report inside, signed with `crowguard sign`."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "report.json").write_text(json.dumps({"verdict": {"passed": True}}))
    result = runner.invoke(app, ["sign", str(folder), "--key", str(keys[0])])
    assert result.exit_code == 0, result.stderr
    return folder


def _verify(folder: Path, public: Path) -> object:
    return runner.invoke(app, ["verify", str(folder), "--public-key", str(public)])


def test_signature_covers_every_file_including_the_report(signed: Path, keys: tuple[Path, Path]) -> None:
    result = verify_folder(signed, keys[1])
    assert set(result.files) == {p.name for p in signed.iterdir()} - {SIGNATURE_NAME}
    assert "report.json" in result.files and "model.safetensors" in result.files
    ok = _verify(signed, keys[1])
    assert ok.exit_code == 0 and "verified" in ok.stderr


def _flip_weight_byte(folder: Path) -> None:
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0x01
    (folder / "model.safetensors").write_bytes(bytes(data))


def _edit_report(folder: Path) -> None:
    (folder / "report.json").write_text(json.dumps({"verdict": {"passed": False}}))


TAMPERS = {
    "weight byte flipped": (_flip_weight_byte, "changed: model.safetensors"),
    "report edited": (_edit_report, "changed: report.json"),
    "file added": (lambda f: (f / "extra.py").write_text("import os\n"), "added: extra.py"),
    "file removed": (lambda f: (f / "tokenizer.json").unlink(), "removed: tokenizer.json"),
    "file renamed": (lambda f: (f / "config.json").rename(f / "config.bak"), "config.json -> config.bak"),
    "weight file added": (lambda f: (f / "model-00002.safetensors").write_bytes(b"\0" * 16),
                          "added: model-00002.safetensors"),
    "git config slipped in": (lambda f: ((f / ".git").mkdir(), (f / ".git" / "config").write_text("[core]\n")),
                              ".git/config"),
    "workflow slipped in": (lambda f: ((f / ".github").mkdir(), (f / ".github" / "ci.yml").write_text("on: push\n")),
                            ".github/ci.yml"),
    "symlink slipped in": (lambda f: (f / "weights").symlink_to(f / "model.safetensors"), "weights"),
}


@pytest.mark.parametrize("tamper", TAMPERS, ids=list(TAMPERS))
def test_any_change_to_the_folder_exits_4_naming_the_file(signed: Path, keys: tuple[Path, Path], tamper: str) -> None:
    change, named = TAMPERS[tamper]
    change(signed)
    result = _verify(signed, keys[1])
    assert result.exit_code == 4, result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr


def test_mismatch_lists_are_available_to_callers(signed: Path, keys: tuple[Path, Path]) -> None:
    (signed / "config.json").rename(signed / "config.bak")
    _edit_report(signed)
    with pytest.raises(SignatureMismatch) as mismatch:
        verify_folder(signed, keys[1])
    assert mismatch.value.changed == ("report.json",)
    assert mismatch.value.added == ("config.bak",) and mismatch.value.removed == ("config.json",)


def test_wrong_key_altered_or_missing_signature_exit_4(signed: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    other = generate_keypair(tmp_path / "other")
    wrong = _verify(signed, other.public)
    assert wrong.exit_code == 4 and "another key" in wrong.stderr

    signature = signed / SIGNATURE_NAME
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64  # forge the manifest, keep the old signature
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    signature.write_text(json.dumps(bundle))
    forged = _verify(signed, keys[1])
    assert forged.exit_code == 4 and "altered" in forged.stderr

    signature.unlink()
    unsigned = _verify(signed, keys[1])
    assert unsigned.exit_code == 4 and "no signature" in unsigned.stderr


def test_resigning_replaces_the_signature_and_keys_are_checked(signed: Path, keys: tuple[Path, Path]) -> None:
    _edit_report(signed)
    with pytest.raises(IntegrityError):
        verify_folder(signed, keys[1])
    sign_folder(signed, keys[0])
    assert verify_folder(signed, keys[1]).files
    assert not [p for p in signed.iterdir() if p.name.startswith(".")]  # no temporary signature left
    swapped = runner.invoke(app, ["sign", str(signed), "--key", str(keys[1])])
    assert swapped.exit_code == 2 and "public key" in swapped.stderr
    leaked = runner.invoke(app, ["verify", str(signed), "--public-key", str(keys[0])])
    assert leaked.exit_code == 2 and "holds a private key" in leaked.stderr
    secret_line = keys[0].read_text().splitlines()[1]
    assert secret_line not in swapped.stdout + swapped.stderr + leaked.stdout + leaked.stderr


def test_the_openssf_model_signing_tool_verifies_crowguard_signatures(signed: Path, keys: tuple[Path, Path]) -> None:
    assert MODEL_SIGNING.exists(), f"model_signing CLI not found beside {sys.executable}"
    command = [str(MODEL_SIGNING), "verify", "key", str(signed), "--signature", str(signed / SIGNATURE_NAME),
               "--public_key", str(keys[1])]
    ok = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Verification succeeded" in ok.stdout
    _flip_weight_byte(signed)
    tampered = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert tampered.returncode != 0 and "model.safetensors" in tampered.stdout + tampered.stderr
