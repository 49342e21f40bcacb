"""A local folder (or a single local GGUF file) as a pull source.

The allow-listed files are copied, never moved, and the source is never written to. Nothing outside
the folder is read: a file is copied only when its resolved path is a regular file inside the folder,
so a symbolic link (or a linked subfolder) that leads out of it is refused with an error naming it
(see ``crowguard.containment``; a Hugging Face cache snapshot's links into its own blob store are
followed). A link that stays inside is copied as the file it points to: that file is part of the
folder, is scanned as itself, and is what a loader reading the folder would get. The copy is a
regular file and its sha256 is recorded.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

from crowguard.containment import allowed_roots, resolved_inside
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
        self._roots = allowed_roots(self.root)

    def resolve(self) -> None:
        return None

    def list_files(self) -> list[str]:
        if self.single is not None:
            return [self.single]
        names = []
        for child in sorted(self.root.iterdir()):
            if child.is_dir() and child.name + "/" == CHAT_TEMPLATE_DIR:
                self._contained(child.name)  # never list a folder outside through a link
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
            source = self._contained(name)
            try:
                with _open_regular(source) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
            except OSError as exc:
                raise ToolError(f"cannot copy {self.root / name}: {exc.strerror}",
                                hint="check the file is readable and there is space beside --out") from None
            entries.append(file_entry(target, name))
        return tuple(entries)

    def local_file(self, name: str) -> Path:
        return self.root / name if self.single == name else self._contained(name)

    def _contained(self, name: str) -> Path:
        """The resolved path of ``name``; a UsageError when it leads out of the folder."""
        resolved = resolved_inside(self.root, name, self._roots)
        if resolved is None:
            raise UsageError(f"{self.root / name} leads outside the folder (to {os.path.realpath(self.root / name)}): "
                             "crowguard reads, copies and signs only files inside the model folder",
                             hint="remove the link, or replace it with a copy of the file after checking it")
        return resolved


def _open_regular(path: Path) -> io.FileIO:
    """Open a resolved path for reading, refusing a link swapped in since and anything not a regular file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise
