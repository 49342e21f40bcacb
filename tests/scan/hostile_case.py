"""One case of the hostile corpus: its files, its issue-13 item, and the outcome each shipped policy should give."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BLOCK, PASS, EITHER = "block", "pass", "either"  # either: exit 0 or 1 with the report written (no crash)
POLICIES = ("default", "strict", "permissive")
KIND_TITLES = {
    0: "baseline: classic pickle payloads",
    3: "3 links and foreign paths",
    4: "4 format polyglots",
    5: "5 ambiguous zips",
    6: "6 pickles the sniffer misses",
    7: "7 permissive: unlisted imports, executables, bad safetensors",
    8: "8 GGUF bombs and templates",
    11: "11 odd names, no weights, nested auto_map",
    100: "benign controls",
}


def hostile() -> dict[str, str]:
    return dict.fromkeys(POLICIES, BLOCK)


@dataclass(frozen=True)
class Case:
    """A model folder: ``files`` maps names (str, or bytes for non-UTF-8 names) to content.

    ``with_weights`` adds clean ``model.safetensors`` next to them; ``extra(folder, outside)`` makes
    links and hard links (``outside`` holds what they reach).
    """

    id: str
    item: int
    description: str
    files: dict[str | bytes, bytes] = field(default_factory=dict)
    expect: dict[str, str] = field(default_factory=hostile)
    with_weights: bool = True
    with_config: bool = True
    extra: Callable[[Path, Path], None] | None = None

    @property
    def kind(self) -> str:
        return KIND_TITLES[self.item]
