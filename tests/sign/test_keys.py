"""`crowguard keygen` and key loading: P-256 PEM pairs, 0600 private keys, clear refusals, no key text shown."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.errors import UsageError
from crowguard.sign.keys import fingerprint, load_private_key, load_public_key

runner = CliRunner()


def test_keygen_writes_an_owner_only_private_key_and_a_public_key(tmp_path: Path) -> None:
    result = runner.invoke(app, ["keygen", "--out", str(tmp_path / "keys" / "ci")])
    assert result.exit_code == 0, result.stderr
    private, public = tmp_path / "keys" / "ci.priv.pem", tmp_path / "keys" / "ci.pub.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = load_private_key(private)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert fingerprint(load_public_key(public)) == fingerprint(key.public_key())
    private_text = private.read_text()
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    assert private_text.splitlines()[1] not in result.stdout + result.stderr


def test_keygen_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert runner.invoke(app, ["keygen", "--out", str(tmp_path / "k")]).exit_code == 0
    before = (tmp_path / "k.priv.pem").read_bytes()
    again = runner.invoke(app, ["keygen", "--out", str(tmp_path / "k")])
    assert again.exit_code == 2 and "--force" in again.stderr
    assert (tmp_path / "k.priv.pem").read_bytes() == before
    forced = runner.invoke(app, ["keygen", "--out", str(tmp_path / "k"), "--force"])
    assert forced.exit_code == 0 and (tmp_path / "k.priv.pem").read_bytes() != before
    assert stat.S_IMODE((tmp_path / "k.priv.pem").stat().st_mode) == 0o600


def _write_pem(path: Path, key: object, *, private: bool, password: bytes | None = None) -> Path:
    if private:
        encryption = (serialization.BestAvailableEncryption(password) if password
                      else serialization.NoEncryption())
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)  # type: ignore[attr-defined]
    else:
        data = key.public_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                                serialization.PublicFormat.SubjectPublicKeyInfo)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("make", "expected"), [
    (lambda d: _write_pem(d / "rsa.pem", rsa.generate_private_key(public_exponent=65537, key_size=2048),
                          private=True), "not an elliptic-curve key"),
    (lambda d: _write_pem(d / "k1.pem", ec.generate_private_key(ec.SECP256K1()), private=True), "secp256k1"),
    (lambda d: _write_pem(d / "enc.pem", ec.generate_private_key(ec.SECP256R1()), private=True,
                          password=b"pw"), "encrypted"),
    (lambda d: _write_pem(d / "pub.pem", ec.generate_private_key(ec.SECP256R1()).public_key(), private=False),
     "not a PEM private key"),
    (lambda d: d / "missing.pem", "does not exist"),
])
def test_unusable_private_keys_are_usage_errors(tmp_path: Path, make, expected: str) -> None:  # noqa: ANN001
    with pytest.raises(UsageError) as refused:
        load_private_key(make(tmp_path))
    assert expected in refused.value.message


def test_a_private_key_given_as_public_key_is_refused_without_showing_it(tmp_path: Path) -> None:
    private = _write_pem(tmp_path / "p.pem", ec.generate_private_key(ec.SECP256R1()), private=True)
    with pytest.raises(UsageError) as refused:
        load_public_key(private)
    assert "holds a private key" in refused.value.message
    assert private.read_text().splitlines()[1] not in refused.value.message + (refused.value.hint or "")
