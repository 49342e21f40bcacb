"""A local folder (or a single local GGUF file) as a pull source.

The allow-listed files are copied, never moved, and the source is never written to. Symbolic links
are followed when copying, since a Hugging Face cache snapshot is a folder of links into its blob
store; the copy is a regular file and its sha256 is recorded.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from crowguard.errors import ToolError, UsageError
from crowguard.pull.files import file_entry
from crowguard.pull.interface import PullSource
from crowguard.pull.selection import CHAT_TEMPLATE_DIR
from crowguard.report.model import FileEntry


class LocalSource(PullSource):
    """A model folder, or one ``.gguf`` file, on local disk."""

    kind = "local"

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        if not path.exists():
            raise UsageError(f"{path} does not exist", hint="give a model folder, a .gguf file, or a hub ORG/NAME")
        self.single = path.name if path.is_file() else None
        if self.single is not None and not self.single.endswith(".gguf"):
            raise UsageError(f"{path} is a file, not a model folder",
                             hint="give the folder that holds config.json, or a .gguf file")
        self.root = path.parent if self.single else path

    def resolve(self) -> None:
        return None

    def list_files(self) -> list[str]:
        if self.single is not None:
            return [self.single]
        names = []
        for child in sorted(self.root.iterdir()):
            if child.is_dir() and child.name + "/" == CHAT_TEMPLATE_DIR:
                names += [CHAT_TEMPLATE_DIR + p.name for p in sorted(child.iterdir()) if p.is_file()]
            elif child.is_dir():
                names.append(child.name + "/")
            elif child.is_file():
                names.append(child.name)
        return names

    def fetch(self, names: Sequence[str], dest: Path) -> tuple[FileEntry, ...]:
        entries = []
        for name in names:
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(self.root / name, target)
            except OSError as exc:
                raise ToolError(f"cannot copy {self.root / name}: {exc.strerror}",
                                hint="check the file is readable and there is space beside --out") from None
            entries.append(file_entry(target, name))
        return tuple(entries)

    def local_file(self, name: str) -> Path:
        return self.root / name
