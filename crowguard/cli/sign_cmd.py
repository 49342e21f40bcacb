"""``crowguard keygen``, ``crowguard sign`` and ``crowguard verify``: OpenSSF model signing of a folder."""

from __future__ import annotations

from pathlib import Path

import typer

from crowguard.cli.guard import guarded, stderr


@guarded
def keygen(
    out: Path = typer.Option(..., "--out", "-o", metavar="NAME",
                             help="Writes NAME.priv.pem (mode 0600, keep it secret) and NAME.pub.pem."),
    force: bool = typer.Option(False, "--force", help="Replace an existing key pair of that name."),
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
    folder: Path = typer.Argument(..., metavar="DIR", help="Model folder to sign (every file in it, report included)."),
    key: Path = typer.Option(..., "--key", "-k", help="Private key (NAME.priv.pem from `crowguard keygen`)."),
) -> int:
    """Sign every file in DIR with an OpenSSF model signature, written to DIR/model.sig."""
    from crowguard.sign import sign_folder

    result = sign_folder(folder, key)
    stderr.print(f"[green]signed[/] {len(result.files)} file(s) in {folder}: {result.signature} "
                 f"(key {result.key_fingerprint[:16]})")
    return 0


@guarded
def verify(
    folder: Path = typer.Argument(..., metavar="DIR", help="Signed model folder."),
    public_key: Path = typer.Option(..., "--public-key", "-p", help="Public key (NAME.pub.pem)."),
    signature: Path | None = typer.Option(None, "--signature", help="Signature file (default: DIR/model.sig)."),
) -> int:
    """Check that DIR is exactly what was signed: exit 0 if so, 4 naming the files that differ if not.

    Equivalent to `model_signing verify key DIR --signature DIR/model.sig --public_key KEY`.
    """
    from crowguard.sign import verify_folder

    result = verify_folder(folder, public_key, signature=signature)
    stderr.print(f"[green]verified[/] {len(result.files)} file(s) in {folder} against {result.signature} "
                 f"(key {result.key_fingerprint[:16]})")
    return 0
