"""Keep secrets out of output: scrub token- and key-shaped text from any message we print or store."""

from __future__ import annotations

import re

REDACTED = "***redacted***"
_PATTERNS = (
    re.compile(r"hf_[A-Za-z0-9]{8,}"),  # Hugging Face access tokens
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"(?i)(authorization:\s*bearer\s+)\S+"),
    re.compile(r"(?i)((?:token|password|secret)=)[^\s&]+"),
)


def scrub(text: str) -> str:
    """Return ``text`` with anything that looks like a token or private key replaced."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text
