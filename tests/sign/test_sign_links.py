"""The signer hashes no file through a link: a folder holding a link (out or in) is refused, nothing signed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crowguard.errors import UsageError
from crowguard.sign import SIGNATURE_NAME, generate_keypair, sign_folder


@pytest.mark.parametrize("link", ["file out", "folder out", "file inside"])
def test_a_folder_with_a_link_is_not_signed(tiny_model_dir: Path, tmp_path: Path, link: str) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    if link == "file out":
        (folder / "notes.txt").symlink_to(tmp_path / "outside" / "secret.txt")
    elif link == "folder out":
        (folder / "extra").symlink_to(tmp_path / "outside", target_is_directory=True)
    else:
        (folder / "alias.json").symlink_to("config.json")
    key = generate_keypair(tmp_path / "keys" / "k").private
    with pytest.raises(UsageError, match="symlink"):
        sign_folder(folder, key)  # model_signing's allow_symlinks stays False
    assert not (folder / SIGNATURE_NAME).exists()
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
