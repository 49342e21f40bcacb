"""`crowguard pull PATH`: a local folder as the source, copied and hashed, never modified."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.pull import pull

runner = CliRunner()


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def test_local_folder_is_copied_with_hashes_and_left_untouched(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(tiny_model_dir, source)
    (source / "train.py").write_text("print('never run')\n")
    (source / ".git").mkdir()
    before = _digests(source)
    result = pull(str(source), tmp_path / "out")
    assert result.source.kind == "local" and result.source.revision is None
    recorded = {e.path: e.sha256 for e in result.source.files}
    assert recorded == {k: v for k, v in before.items() if k != "train.py"} == _digests(tmp_path / "out")
    assert {s.path for s in result.skipped} == {"train.py", ".git/"}
    assert _digests(source) == before


def test_symlinked_snapshot_is_copied_as_regular_files(tiny_model_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "models--org--tiny"  # the layout of a Hugging Face cache: snapshot files link into blobs/
    blobs, snapshot = repo / "blobs", repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_model_dir, blobs)
    snapshot.mkdir(parents=True)
    for blob in blobs.iterdir():
        (snapshot / blob.name).symlink_to(Path("../../blobs") / blob.name)
    pull(str(snapshot), tmp_path / "out")
    copied = list((tmp_path / "out").iterdir())
    assert copied and not any(p.is_symlink() for p in copied)
    assert _digests(tmp_path / "out") == _digests(tiny_model_dir)


def test_output_may_not_overlap_the_source_or_be_a_nonempty_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(tiny_model_dir, source)
    inside = runner.invoke(app, ["pull", str(source), "--out", str(source / "copy")])
    above = runner.invoke(app, ["pull", str(source), "--out", str(tmp_path), "--force"])
    assert inside.exit_code == 2 and above.exit_code == 2 and "overlaps the source" in above.stderr
    assert _digests(source) == _digests(tiny_model_dir)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    busy = runner.invoke(app, ["pull", str(source), "--out", str(taken)])
    assert busy.exit_code == 2 and "--force" in busy.stderr and (taken / "keep.txt").exists()


def test_missing_path_and_revision_on_a_path_are_usage_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["pull", "./no/such/model", "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "neither an existing path nor a hub repository id" in missing.stderr
    pinned = runner.invoke(app, ["pull", str(tiny_model_dir), "--revision", "main", "--out", str(tmp_path / "o")])
    assert pinned.exit_code == 2 and "--revision" in pinned.stderr
