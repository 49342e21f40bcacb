"""``crowguard keygen``, ``crowguard sign`` and ``crowguard verify``: OpenSSF model signing of a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crowguard.cli.guard import guarded, stderr
from crowguard.cli.options import force_option, key_option, out_option

AllowUnsignedExtra = Annotated[bool, typer.Option(
    "--allow-unsigned-extra", help="Accept files the signature does not cover even when a loader or tool could read "
    "them (they stay unsigned and are listed). Without it such a file is refused.")]


@guarded
def keygen(
    out: Annotated[Path, out_option("Writes NAME.priv.pem (mode 0600, keep it secret) and NAME.pub.pem.",
                                    metavar="NAME")],
    force: Annotated[bool, force_option("Replace an existing key pair of that name.")] = False,
) -> int:
    """Make an EC P-256 key pair for signing: NAME.priv.pem (owner-only, mode 0600) and NAME.pub.pem."""
    from crowguard.sign import generate_keypair

    pair = generate_keypair(out, force=force)
    stderr.print(f"[green]private key[/] {pair.private} (mode 0600: keep it secret, e.g. in a CI secret store)")
    stderr.print(f"[green]public key[/]  {pair.public} "
                 f"(give it to whoever verifies; fingerprint {pair.fingerprint[:16]})")
    return 0


@guarded
def sign(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Model folder to sign (every file in it, report "
                                           "included).")],
    key: Annotated[Path, key_option("Private key (NAME.priv.pem from `crowguard keygen`).")],
    allow_unsigned_extra: AllowUnsignedExtra = False,
) -> int:
    """Sign every file in DIR with an OpenSSF model signature, written to DIR/model.sig.

    Hashed with model_signing's default rules, which leave .git/, .github/, .gitattributes and
    .gitignore unsigned; a folder holding .git/ or .github/ is refused (exit 2) unless
    --allow-unsigned-extra.
    """
    from crowguard.sign import sign_folder

    result = sign_folder(folder, key, allow_unsigned_extra=allow_unsigned_extra)
    stderr.print(f"[green]signed[/] {len(result.files)} file(s) in {folder}: {result.signature} "
                 f"(key {result.key_fingerprint[:16]})")
    _list_unsigned(result.unsigned)
    return 0


@guarded
def verify(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Signed model folder.")],
    public_key: Annotated[Path, typer.Option("--public-key", help="Public key (NAME.pub.pem).")],
    signature: Annotated[Path | None, typer.Option("--signature", help="Signature file (default: "
                                                   "DIR/model.sig).")] = None,
    allow_unsigned_extra: AllowUnsignedExtra = False,
) -> int:
    """Check that DIR is exactly what was signed: exit 0 if so, 4 naming the files that differ if not.

    The same check as `model_signing verify key DIR --signature DIR/model.sig --public_key KEY`, and
    stricter: every file present that the signature does not cover (git metadata, or what the
    signature's own ignore list leaves out) is listed, and exit 4 unless each is inert (*.md,
    licence files, .gitattributes, .gitignore) or --allow-unsigned-extra is given.
    """
    from crowguard.sign import verify_folder

    result = verify_folder(folder, public_key, signature=signature, allow_unsigned_extra=allow_unsigned_extra)
    stderr.print(f"[green]verified[/] {len(result.files)} file(s) in {folder} against {result.signature} "
                 f"(key {result.key_fingerprint[:16]})")
    _list_unsigned(result.unsigned)
    return 0


def _list_unsigned(names: tuple[str, ...]) -> None:
    from rich.markup import escape

    from crowguard.sign.coverage import printable

    if names:
        shown = ", ".join(escape(printable(n)) for n in names)
        stderr.print(f"[yellow]not covered by the signature[/] ({len(names)}): {shown}")
