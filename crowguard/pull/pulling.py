"""Pull a model into a folder: open the source, pin it, choose files, fetch them checked, import GGUF.

The output is built in a staged folder and appears only when complete; after ``pull`` returns,
nothing touches the network again.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from crowguard.atomic import check_output_dir, staged_dir
from crowguard.errors import UsageError
from crowguard.pull.files import file_entry
from crowguard.pull.gguf_import import import_gguf
from crowguard.pull.hub import HubSource, public_endpoint
from crowguard.pull.interface import PullResult, PullSource
from crowguard.pull.local import LocalSource
from crowguard.pull.selection import select_files
from crowguard.report.model import FileEntry, Source

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def pull(
    reference: str,
    out: str | Path,
    *,
    revision: str | None = None,
    endpoint: str | None = None,
    allow_pickle: bool = False,
    gguf_file: str | None = None,
    force: bool = False,
    cache_dir: Path | None = None,
) -> PullResult:
    """Pull ``reference`` (a hub ORG/NAME, a local folder or a local .gguf file) into the folder ``out``.

    Raises UsageError (bad reference, unknown revision, refused files), IntegrityError (a file does
    not match the hub's checksum) or ToolError (network, disk); ``out`` is then left untouched.
    """
    out = Path(out)
    check_output_dir(out, force=force)
    source = open_source(reference, revision=revision, endpoint=endpoint, cache_dir=cache_dir, out=out)
    if gguf_file is None and isinstance(source, LocalSource) and source.single:
        gguf_file = source.single
    pinned = source.resolve()
    selection = select_files(source.list_files(), where=reference, allow_pickle=allow_pickle, gguf_file=gguf_file)
    with staged_dir(out, force=force) as staged:
        if selection.gguf:
            entries = _import_gguf(source, selection.gguf, selection.take, staged)
        else:
            entries = source.fetch(selection.take, staged)
    pinned_source = Source(reference=reference, kind=source.kind, revision=pinned,
                           files=tuple(sorted(entries, key=lambda e: e.path)))
    endpoint = public_endpoint(source.endpoint) if isinstance(source, HubSource) else None
    return PullResult(source=pinned_source, output=out.absolute(), skipped=selection.skipped,
                      imported_from_gguf=selection.gguf, endpoint=endpoint)


def open_source(reference: str, *, revision: str | None, endpoint: str | None, cache_dir: Path | None,
                out: Path) -> PullSource:
    """A LocalSource for an existing path, a HubSource for a repository id; refuse anything else."""
    path = Path(reference).expanduser()
    if path.exists():
        if revision is not None:
            raise UsageError("--revision applies to hub repositories, not to a local path",
                             hint="drop --revision, or give a hub ORG/NAME")
        _refuse_overlap(path, out)
        return LocalSource(path)
    if _REPO_ID.match(reference):
        return HubSource(reference, revision=revision, endpoint=endpoint, cache_dir=cache_dir)
    raise UsageError(f"{reference} is neither an existing path nor a hub repository id",
                     hint="give a local model folder or .gguf file, or a hub repository as ORG/NAME")


def _refuse_overlap(source: Path, out: Path) -> None:
    src, dst = source.resolve(), out.resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise UsageError(f"--out {out} overlaps the source {source}: crowguard never writes over its input",
                         hint="choose an --out outside the source folder")


def _import_gguf(source: PullSource, gguf: str, take: tuple[str, ...], staged: Path) -> tuple[FileEntry, ...]:
    """Fetch the model card into the output, the GGUF beside it (or read it in place), and import it."""
    entries = list(source.fetch([n for n in take if n != gguf], staged))
    local = source.local_file(gguf)
    if local is not None:
        entries.append(file_entry(local, gguf))
        import_gguf(local, staged)
        return tuple(entries)
    with tempfile.TemporaryDirectory(prefix=".crowguard-gguf-", dir=staged.parent) as scratch:
        entries += source.fetch([gguf], Path(scratch))
        import_gguf(Path(scratch) / gguf, staged)
    return tuple(entries)
