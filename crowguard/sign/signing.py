"""Sign a model folder, and verify it, with the OpenSSF model_signing library (OMS format).

The signature is a Sigstore bundle (``model.sig``) written inside the folder, over the sha256 of
every other file in it, report included, hashed with model_signing's own default rules (which skip
``.git/``, ``.github/``, ``.gitattributes`` and ``.gitignore``), so that the stock command verifies it:
``model_signing verify key DIR --signature DIR/model.sig --public_key KEY.pub.pem``.
Both ``sign`` and ``verify`` also list every file present that the signature does not cover, and
refuse the folder when one of them is not inert (see ``coverage``): git's skipped paths, or anything
a foreign signature's own ignore list leaves out.

model_signing raises a plain ValueError for both misuse and mismatch; here misuse is a UsageError
(exit 2) and every mismatch an IntegrityError (exit 4) that names the files that differ.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from crowguard.errors import IntegrityError, ToolError, UsageError
from crowguard.secrets import scrub
from crowguard.sign.coverage import refuse_loadable, uncovered
from crowguard.sign.keys import fingerprint, load_private_key, load_public_key

SIGNATURE_NAME = "model.sig"


@dataclass(frozen=True)
class SignResult:
    """A signed folder: the signature file, the files it covers, the ones it leaves, and the key's fingerprint."""

    signature: Path
    files: tuple[str, ...]
    key_fingerprint: str
    unsigned: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifyResult:
    """A folder that matches its signature: the files checked, the ones present but not covered, the key."""

    signature: Path
    files: tuple[str, ...]
    key_fingerprint: str
    unsigned: tuple[str, ...] = ()


class SignatureMismatch(IntegrityError):
    """The folder's files differ from the signed ones; the lists name them."""

    def __init__(self, message: str, *, changed: tuple[str, ...], added: tuple[str, ...],
                 removed: tuple[str, ...], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.changed, self.added, self.removed = changed, added, removed


def sign_folder(folder: str | Path, private_key: str | Path, *, allow_unsigned_extra: bool = False) -> SignResult:
    """Sign every file in ``folder`` with ``private_key``; write ``folder/model.sig`` (replacing an old one).

    model_signing's default rules leave git metadata unsigned; a UsageError refuses a folder where
    that would leave a file a tool could read (``.git/``, ``.github/``) unless ``allow_unsigned_extra``.
    """
    from model_signing import signing

    folder = _model_folder(folder)
    key = load_private_key(private_key)
    signature = folder / SIGNATURE_NAME
    # Written beside the final name and renamed into place; it does not exist yet while the files are hashed.
    tmp = folder / f".{SIGNATURE_NAME}.{secrets.token_hex(6)}.partial"
    try:
        config = signing.Config().use_elliptic_key_signer(private_key=str(private_key))
        config.set_hashing_config(_hashing_config()).sign(folder, tmp)
        files = tuple(sorted(signed_digests(tmp)))
        left = tuple(n for n in uncovered(folder, files, signature=tmp) if n != SIGNATURE_NAME)
        if not allow_unsigned_extra:
            refuse_loadable(folder, left, signing=True)
        os.replace(tmp, signature)
    except ValueError as exc:
        raise UsageError(f"cannot sign {folder}: {_message(exc)}",
                         hint="sign a folder of regular files (no symbolic links)") from None
    except OSError as exc:
        raise ToolError(f"cannot sign {folder}: {exc.strerror or exc}", hint="check the folder is writable") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return SignResult(signature=signature, files=files, key_fingerprint=fingerprint(key.public_key()), unsigned=left)


def verify_folder(folder: str | Path, public_key: str | Path, *, signature: str | Path | None = None,
                  allow_unsigned_extra: bool = False) -> VerifyResult:
    """Check ``folder`` against its signature (``folder/model.sig`` unless given) and ``public_key``.

    Raises IntegrityError (exit 4) when the signature is missing, altered, made with another key,
    or the files differ (a SignatureMismatch naming them), or when a file the signature does not
    cover could be read by a loader (an UnsignedFiles naming them; ``allow_unsigned_extra`` accepts
    those, still listed in the result); UsageError for a bad folder or key.
    """
    from cryptography.exceptions import InvalidSignature
    from model_signing import verifying

    folder = _model_folder(folder)
    key = load_public_key(public_key)
    signature = Path(signature) if signature is not None else folder / SIGNATURE_NAME
    if not signature.is_file():
        raise IntegrityError(f"{folder} has no signature {signature.name}",
                             hint="the folder is unsigned: sign it with `crowguard sign`, or pass --signature")
    config = verifying.Config().use_elliptic_key_verifier(public_key=str(public_key))
    # model_signing adds the signature's own ignore list to this config while verifying; kept to name a mismatch.
    hashing_config = _hashing_config(signature, folder)
    config.set_hashing_config(hashing_config)
    hint = "do not deploy this folder; pull and gate the model again"
    try:
        config.verify(folder, signature)
    except InvalidSignature:
        raise IntegrityError(f"signature {signature} is not valid for {public_key}: the signature was altered",
                             hint=hint) from None
    except ValueError as exc:
        message = _message(exc)
        if message.startswith("Signature mismatch"):
            raise _mismatch(folder, signature, hashing_config, hint) from None
        if message.startswith("Key mismatch"):
            raise IntegrityError(f"{signature} was made with another key (fingerprint {_signer(signature)[:16]}) "
                                 f"than the one paired with {public_key} ({fingerprint(key)[:16]})",
                                 hint="verify with the public key paired with the signing key") from None
        raise IntegrityError(f"{signature} cannot be verified: {message}", hint=hint) from None
    except (KeyError, TypeError, IndexError):
        raise IntegrityError(f"{signature} is not a readable model signature", hint=hint) from None
    files = tuple(sorted(signed_digests(signature)))
    if not files:
        raise IntegrityError(f"{signature} covers no files at all", hint=hint)
    left = uncovered(folder, files, signature=signature if _inside(signature, folder) else None)
    if not allow_unsigned_extra:
        refuse_loadable(folder, left, signing=False)
    return VerifyResult(signature=signature, files=files, key_fingerprint=fingerprint(key), unsigned=left)


def signed_digests(signature: Path) -> dict[str, str]:
    """File name -> sha256 recorded in a signature (read without checking it: verify first)."""
    try:
        bundle = json.loads(signature.read_text(encoding="utf-8"))
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        return {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{signature} is not a readable model signature: {_message(exc)}",
                             hint="sign the folder again") from None


def _signer(signature: Path) -> str:
    """The signing key's fingerprint as the signature records it (model_signing's key hint)."""
    try:
        return str(json.loads(signature.read_text(encoding="utf-8"))["verificationMaterial"]["publicKey"]["hint"])
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


def _mismatch(folder: Path, signature: Path, hashing_config, hint: str) -> SignatureMismatch:  # noqa: ANN001
    """Name what differs, hashed as the verifier did (its config now holds the signature's ignore list).

    Called only after model_signing accepted the signature, so its list is trusted.
    """
    expected = signed_digests(signature)
    manifest = hashing_config.hash(folder)
    actual = {rd.identifier: rd.digest.digest_hex for rd in manifest.resource_descriptors()}
    changed = tuple(sorted(n for n in expected.keys() & actual.keys() if expected[n] != actual[n]))
    added = tuple(sorted(actual.keys() - expected.keys()))
    removed = tuple(sorted(expected.keys() - actual.keys()))
    parts = [f"{label}: {', '.join(names)}" for label, names in
             (("changed", changed), ("added", added), ("removed", removed)) if names]
    renamed = [f"{old} -> {new}" for old in removed for new in added if expected[old] == actual[new]]
    summary = "; ".join(parts) + (f" (renamed: {', '.join(renamed)})" if renamed else "")
    return SignatureMismatch(f"{folder} does not match its signature: {summary}",
                             changed=changed, added=added, removed=removed, hint=hint)


def _hashing_config(signature: Path | None = None, folder: Path | None = None):  # noqa: ANN202 - model_signing type
    """model_signing's defaults, as its CLI sets them: sha256 per file, git paths and the signature skipped."""
    from model_signing import hashing

    ignored: list[str | Path] = [SIGNATURE_NAME]
    if signature is not None and folder is not None:
        ignored = [signature.resolve().relative_to(folder.resolve())] if _inside(signature, folder) else []
    return hashing.Config().set_ignored_paths(paths=ignored, ignore_git_paths=True)


def _inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def _model_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder", hint="give the model folder to sign or verify")
    return folder


def _message(exc: BaseException) -> str:
    """The library's message on one line, without its advice about options crowguard does not offer."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return scrub(line.replace(" This behavior can be changed with `allow_symlinks`.", ""))
