"""Xet downloads for files on the real Hugging Face Hub; every other endpoint is served over plain HTTP.

huggingface.co stores most large files in Xet, a chunked content-addressed store that huggingface-hub's
``hf_xet`` reaches directly (faster than the HTTP redirect to a CDN). Xet is used only when the endpoint
is exactly ``https://huggingface.co``: a mirror must see every byte, so it keeps the capped HTTP route
(``hub_download``). The Xet client writes the file itself, so the per-file cap cannot be applied as
bytes arrive; instead the file goes to a hidden part file beside the target, which is sized against the
hub's listing the moment it is written (and removed if it is larger or smaller), and the caller then
checks its sha256 as for any download. The free-space check before any download covers Xet too.
``HF_HUB_DISABLE_XET=1`` or ``CROWGUARD_HUB_XET=0`` turns Xet off.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from crowguard.errors import IntegrityError, ToolError
from crowguard.secrets import scrub

REAL_HUB = ("https", "huggingface.co")
_HINT = "the hub served something other than what it lists; pull again, or set CROWGUARD_HUB_XET=0 to use HTTP"


def xet_allowed(endpoint: str) -> bool:
    """True when downloads from ``endpoint`` may go through Xet: the real hub, Xet installed and not disabled."""
    from huggingface_hub import constants
    from huggingface_hub.utils._runtime import is_xet_available

    parts = urlsplit(endpoint)
    real_hub = ((parts.scheme, parts.netloc) == REAL_HUB and parts.path.strip("/") == ""
                and not parts.query and not parts.fragment)
    switched_off = os.environ.get("CROWGUARD_HUB_XET", "1") == "0" or bool(constants.HF_HUB_DISABLE_XET)
    return real_hub and not switched_off and is_xet_available()


def download_xet(url: str, target: Path, *, declared_size: int, endpoint: str, where: str) -> bool:
    """Fetch ``url`` into ``target`` through Xet; False (nothing written) when the hub has no Xet copy of it.

    The written file must have exactly ``declared_size`` bytes, else IntegrityError and nothing is kept.
    The caller verifies the checksum.
    """
    from huggingface_hub.file_download import get_hf_file_metadata, xet_get
    from huggingface_hub.utils import build_hf_headers

    metadata = get_hf_file_metadata(url, endpoint=endpoint)
    if metadata.xet_file_data is None:
        return False
    part = target.with_name(f".{target.name}.crowguard-part")
    try:
        try:
            xet_get(incomplete_path=part, xet_file_data=metadata.xet_file_data, headers=build_hf_headers(),
                    expected_size=declared_size, displayed_filename=target.name)
        except (OSError, RuntimeError, ValueError) as exc:  # hf_xet reports transfer failures as these
            raise ToolError(f"{where}: the Xet download failed: {scrub(str(exc))[:300]}",
                            hint="retry, or set CROWGUARD_HUB_XET=0 to download over plain HTTP") from None
        written = part.stat().st_size if part.is_file() else -1
        if written != declared_size:
            raise IntegrityError(f"{where}: Xet wrote {max(written, 0)} bytes, the hub lists {declared_size}; "
                                 "the download was removed", hint=_HINT)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    return True
