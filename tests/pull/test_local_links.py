"""`crowguard pull ./local` never reads outside the folder: links that lead out are refused, links inside
are copied as the file they name, and the gate signs nothing that came through a link."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.errors import UsageError
from crowguard.pull import pull
from crowguard.sign import generate_keypair

runner = CliRunner()
SECRET = b"outside-the-folder-secret\n"


@pytest.fixture
def source(tiny_model_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    shutil.copytree(tiny_model_dir, folder)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "README.md").write_bytes(SECRET)
    return folder


def _everything_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink())


@pytest.mark.parametrize("link", ["absolute", "relative", "two-step"])
def test_a_link_out_of_the_folder_is_refused(source: Path, tmp_path: Path, link: str) -> None:
    target = tmp_path / "secret" / "README.md"
    if link == "absolute":
        (source / "README.md").symlink_to(target)
    elif link == "relative":
        (source / "README.md").symlink_to("../secret/README.md")
    else:  # a link to a link inside, which itself leads out
        (source / "hop").symlink_to(target)
        (source / "README.md").symlink_to("hop")
    with pytest.raises(UsageError, match="leads outside the folder"):
        pull(str(source), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result = runner.invoke(app, ["pull", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "README.md leads outside the folder" in result.stderr


def test_a_linked_chat_template_folder_outside_is_refused(source: Path, tmp_path: Path) -> None:
    (tmp_path / "secret" / "x.jinja").write_bytes(SECRET)
    (source / "additional_chat_templates").symlink_to(tmp_path / "secret", target_is_directory=True)
    with pytest.raises(UsageError, match="additional_chat_templates leads outside the folder"):
        pull(str(source), tmp_path / "out")


def test_a_link_inside_is_copied_as_the_file(source: Path, tmp_path: Path) -> None:
    (source / "docs").mkdir()
    (source / "docs" / "card.md").write_text("# card\n")
    (source / "README.md").symlink_to("docs/card.md")
    result = pull(str(source), tmp_path / "out")
    copied = tmp_path / "out" / "README.md"
    assert not copied.is_symlink() and copied.read_text() == "# card\n"
    assert "README.md" in {e.path for e in result.source.files}


def test_the_gate_copies_and_signs_nothing_from_outside(source: Path, tmp_path: Path) -> None:
    (source / "README.md").symlink_to(tmp_path / "secret" / "README.md")
    key = generate_keypair(tmp_path / "keys" / "k").private
    files_only = tmp_path / "files-only.yaml"
    files_only.write_text("name: files-only\nbehaviour_scan: {enabled: false}\n")
    permissive = tmp_path / "permissive-files.yaml"  # fail_on critical: an escaping link is critical under any policy
    permissive.write_text("name: p\nfail_on: critical\nrequire_signature: false\nbehaviour_scan: {enabled: false}\n")
    for policy, expected in ((files_only, 1), (permissive, 1)):
        out = tmp_path / f"gated-{policy.stem}"
        result = runner.invoke(app, ["gate", str(source), "--out", str(out), "--key", str(key), "--policy",
                                     str(policy), "--threads", "1", "--quiet"])
        assert result.exit_code == expected, result.stderr
        assert not (out / "model.sig").exists()
        if out.exists():
            assert SECRET not in _everything_under(out)
