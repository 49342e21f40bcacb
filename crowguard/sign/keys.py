"""Elliptic-curve key pairs for signing: generated as PEM, the private half readable by its owner only.

``generate_keypair(NAME)`` writes ``NAME.priv.pem`` (mode 0600 from the moment it exists) and
``NAME.pub.pem``. Loading checks the key is one model_signing accepts (EC on P-256, P-384 or P-521)
and turns every problem into a UsageError that names the file, never its contents.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crowguard.errors import ToolError, UsageError

PRIVATE_SUFFIX = ".priv.pem"
PUBLIC_SUFFIX = ".pub.pem"
SUPPORTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")  # the curves model_signing signs with


@dataclass(frozen=True)
class KeyPair:
    """Where a generated pair was written, and the public key's fingerprint."""

    private: Path
    public: Path
    fingerprint: str


def key_paths(name: str | Path) -> tuple[Path, Path]:
    """``NAME.priv.pem`` and ``NAME.pub.pem``."""
    name = Path(name)
    return name.with_name(name.name + PRIVATE_SUFFIX), name.with_name(name.name + PUBLIC_SUFFIX)


def generate_keypair(name: str | Path, *, force: bool = False) -> KeyPair:
    """Generate an EC P-256 pair; refuse to replace existing key files unless ``force``."""
    private_path, public_path = key_paths(name)
    existing = [p for p in (private_path, public_path) if p.exists()]
    if existing and not force:
        raise UsageError(f"{existing[0]} already exists",
                         hint="choose another --out NAME, or pass --force to replace the key pair")
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = _public_pem(key.public_key())
    _write(private_path, private_pem, mode=0o600)
    _write(public_path, public_pem, mode=0o644)
    return KeyPair(private=private_path, public=public_path, fingerprint=fingerprint(key.public_key()))


def fingerprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """sha256 of the PEM public key: the key id model_signing records in the signature."""
    return hashlib.sha256(_public_pem(public_key)).hexdigest()


def load_public_key(path: str | Path) -> ec.EllipticCurvePublicKey:
    """The EC public key in ``path``; a UsageError for a missing, private, malformed or unsupported key."""
    data = _read(Path(path), "public key")
    if b"PRIVATE KEY" in data:
        raise UsageError(f"{path} holds a private key, not a public key",
                         hint=f"pass the public half ({PUBLIC_SUFFIX}); keep the private key secret")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise UsageError(f"{path} is not a PEM public key",
                         hint=f"pass the {PUBLIC_SUFFIX} file written by `crowguard keygen`") from None
    return _checked_curve(key, path)


def load_private_key(path: str | Path) -> ec.EllipticCurvePrivateKey:
    """The EC private key in ``path``; a UsageError for a missing, public, encrypted or unsupported key."""
    data = _read(Path(path), "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise UsageError(f"{path} is an encrypted private key; crowguard signs with unencrypted keys only",
                         hint="keep the key in a secret store and write it to a 0600 file for the signing step"
                         ) from None
    except ValueError:
        hint = (f"that is a public key; pass the private half ({PRIVATE_SUFFIX})" if b"PUBLIC KEY" in data
                else f"pass the {PRIVATE_SUFFIX} file written by `crowguard keygen`")
        raise UsageError(f"{path} is not a PEM private key", hint=hint) from None
    _checked_curve(key.public_key(), path)
    return key  # type: ignore[return-value]


def _checked_curve(key: object, path: str | Path) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise UsageError(f"{path} is not an elliptic-curve key; OpenSSF model signing with keys uses EC keys only",
                         hint="make a key pair with `crowguard keygen`")
    if key.curve.name not in SUPPORTED_CURVES:
        raise UsageError(f"{path} uses curve {key.curve.name}, which model signing does not support",
                         hint=f"use one of {', '.join(SUPPORTED_CURVES)} (`crowguard keygen` makes P-256)")
    return key


def _public_pem(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise UsageError(f"{what} file {path} does not exist",
                         hint="check the path, or make a pair with `crowguard keygen`")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} file {path}: {exc.strerror}", hint="check its permissions") from None


def _write(path: Path, data: bytes, *, mode: int) -> None:
    """Write through a temporary file created with ``mode`` (mkstemp makes it 0600), then rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ToolError(f"cannot write {path}: {exc.strerror}", hint="check the folder is writable") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
