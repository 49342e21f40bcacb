"""``crowguard pull``: bring a model from the hub, a mirror, a local folder or a GGUF file into a checked folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crowguard.cli.guard import guarded, stderr
from crowguard.cli.options import Endpoint, Force, Gguf, Revision, out_option, policy_option, report_option
from crowguard.cli.output import emit_report, is_stdout
from crowguard.policy import Policy, load_policy

_SHOW_SKIPPED = 20


@guarded
def pull(
    reference: Annotated[str, typer.Argument(metavar="REPO_ID|PATH", help="Hub repository ORG/NAME, a local model "
                                             "folder, or a local .gguf file.")],
    out: Annotated[Path, out_option("Folder to write the model into; it appears only when complete.")],
    revision: Revision = None,
    endpoint: Endpoint = None,
    policy: Annotated[Path | None, policy_option("Shipped policy name or policy file; its allow_pickle decides "
                                                 "whether pickle-only weights are pulled.")] = None,
    gguf: Gguf = None,
    force: Force = False,
    report: Annotated[Path | None, report_option("Write a JSON pull record (source, sha256 of every file); - for "
                                                 "stdout.")] = None,
) -> int:
    """Pull a model: pin the revision to a commit, download only model files, verify each against the hub's checksum.

    Exit codes: 0 pulled; 2 usage (unknown repository or revision, refused files); 3 hub unreachable; 4 bad checksum.

    The hub token comes only from HF_TOKEN or `hf auth login`; it is never printed or recorded.
    """
    from crowguard.pipeline.pull import PullRequest, run_pull
    from crowguard.pull import PullSettings

    loaded = load_policy(policy) if policy is not None else Policy()
    run = run_pull(PullRequest(reference, out, source=PullSettings(revision=revision, endpoint=endpoint,
                                                                   gguf_file=gguf), policy=loaded, force=force))
    result = run.result
    source = result.source
    size = sum(f.size for f in source.files)
    pinned = f" @ {source.revision}" if source.revision else ""
    stderr.print(f"[green]pulled[/] {reference}{pinned}: {len(source.files)} file(s), {_size(size)} -> {result.output}",
                 markup=True, highlight=False)
    if result.imported_from_gguf:
        stderr.print(f"imported {result.imported_from_gguf} into safetensors")
    if result.skipped:
        stderr.print(f"left {len(result.skipped)} file(s):")
        for skipped in result.skipped[:_SHOW_SKIPPED]:
            stderr.print(f"  - {skipped.path}: {skipped.reason}", markup=False)
        if len(result.skipped) > _SHOW_SKIPPED:
            stderr.print(f"  ... and {len(result.skipped) - _SHOW_SKIPPED} more (see --report)")
    if report is not None:
        emit_report(run.report, report_path=report, quiet=True)
        if not is_stdout(report):
            stderr.print(f"pull record written to {report}")
    return 0


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} B" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"
