"""The loader (and so scan's behaviour stage, eval, sanitize and the gate) never reads through a link out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.errors import ModelFolderError
from crowguard.models import inspect_folder


@pytest.fixture
def model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


def test_weights_linked_from_outside_are_refused(model: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.safetensors"
    (model / "model.safetensors").rename(outside)
    (model / "model.safetensors").symlink_to(outside)
    with pytest.raises(ModelFolderError, match="leading outside the model folder"):
        inspect_folder(model)
    for command in (["eval", str(model), "--triggered", str(tmp_path / "t.json"), "--task", "refusal"],
                    ["sanitize", str(model), "--out", str(tmp_path / "out"), "--no-scan"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2 and "leading outside the model folder" in result.stderr, result.stderr


def test_a_linked_subfolder_outside_is_refused(model: Path, tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (model / "extra").symlink_to(tmp_path / "etc", target_is_directory=True)
    with pytest.raises(ModelFolderError, match="extra is a link"):
        inspect_folder(model)


def test_links_inside_and_a_cache_snapshot_are_accepted(model: Path, tmp_path: Path) -> None:
    (model / "alias.json").symlink_to("config.json")
    (model / "dangling").symlink_to("nothing-here")  # no read goes through it; the file scan reports it
    assert inspect_folder(model).model_type
    repo = tmp_path / "models--org--tiny"
    shutil.move(str(model), repo / "blobs")
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for blob in (repo / "blobs").iterdir():
        (snapshot / blob.name).symlink_to(Path("../../blobs") / blob.name)
    assert inspect_folder(snapshot).weight_files
