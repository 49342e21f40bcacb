"""Download one file from a hub endpoint, never writing more bytes than the hub declared for it.

huggingface-hub's ``hf_hub_download`` streams the whole response to disk and compares sizes only at
the end, so a hostile mirror could fill the disk before the checksum fails. Here the response body
(decompressed, if the server compresses it) is counted as it arrives and the download stops at the
first byte past the declared size; a ``Content-Length`` above it is refused before any byte is
written. Bytes go to a hidden part file beside the target, removed on any failure and renamed into
place only when complete. The session, token and error types are huggingface-hub's own, so the token
is never sent to another host (httpx drops it on a cross-origin redirect, as to a CDN).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from crowguard.errors import IntegrityError, ToolError, UsageError

CHUNK_BYTES = 1024 * 1024
TIMEOUT_SECONDS = 60.0
_HINT = "the mirror or the hub serves something other than what it lists; pull again or use another endpoint"


def download_capped(url: str, target: Path, *, declared_size: int, where: str) -> None:
    """GET ``url`` into ``target``; IntegrityError as soon as the body exceeds ``declared_size`` bytes."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    part = target.with_name(f".{target.name}.crowguard-part")
    try:
        with get_session().stream("GET", url, headers=build_hf_headers(), follow_redirects=True,
                                  timeout=TIMEOUT_SECONDS) as response:
            hf_raise_for_status(response)
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > declared_size and not response.headers.get("Content-Encoding"):
                raise IntegrityError(f"{where}: the server announces {int(length)} bytes, the hub lists "
                                     f"{declared_size}; nothing was written", hint=_HINT)
            written = 0
            with part.open("xb") as out:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    written += len(chunk)
                    if written > declared_size:
                        raise IntegrityError(f"{where}: the server sent more than the {declared_size} bytes "
                                             "the hub lists; the download was stopped and removed", hint=_HINT)
                    out.write(chunk)
        if written != declared_size:
            raise IntegrityError(f"{where} has {written} bytes, the hub lists {declared_size}", hint=_HINT)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def target_path(dest: Path, name: str) -> Path:
    """Where the listed file ``name`` goes below ``dest``; a name that would leave ``dest`` is refused."""
    parts = name.split("/")
    if "\\" in name or "\0" in name or any(p in ("", ".", "..") for p in parts):
        raise UsageError(f"the hub lists a file named {name!r}, which is not a plain relative path",
                         hint="the repository or mirror is malformed; crowguard will not write outside --out")
    target = dest.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def check_free_space(dest: Path, total: int) -> None:
    """ToolError before any download if the declared sizes do not fit on the disk holding ``dest``."""
    free = shutil.disk_usage(dest).free
    if total > free:
        raise ToolError(f"the files to download are {total} bytes, the disk holding {dest} has {free} free",
                        hint="free some disk space or choose another --out")
