"""The declared Python API, used as a caller would: only ``crowguard.api`` is imported.

Every function returns the report model and raises crowguard's typed errors; a malicious pickle is
caught, a clean model is gated and signed, a tampered file fails verification, sanitizing writes a
merged model. Payloads are generated here, never committed.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from crowguard import api


class _Payload:
    def __reduce__(self) -> tuple:
        import os

        return (os.system, ("echo crowguard-test-payload",))


def _malicious(tmp_path: Path, tiny: Path) -> Path:
    folder = tmp_path / "malicious"
    shutil.copytree(tiny, folder)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload()))
    return folder


def test_every_declared_name_resolves() -> None:
    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert not missing
    import crowguard

    assert (Path(crowguard.__file__).parent / "py.typed").is_file()  # type checkers read the hints


def test_scan_returns_a_failing_report_for_a_malicious_pickle(tiny_model_dir: Path, tmp_path: Path) -> None:
    report = api.scan(_malicious(tmp_path, tiny_model_dir), behaviour=False)
    assert isinstance(report, api.Report) and report.verdict is not None
    assert not report.verdict.passed and report.verdict.exit_code == 1
    assert any(f.file == "pytorch_model.bin" and f.severity == api.Severity.CRITICAL for f in report.findings)
    assert [s.name for s in report.stages] == [api.StageName.FILE_SCAN]


def test_scan_of_a_clean_folder_passes_and_a_bad_policy_is_a_config_error(tiny_model_dir: Path,
                                                                         tmp_path: Path) -> None:
    assert api.scan(tiny_model_dir, behaviour=False).verdict.passed  # type: ignore[union-attr]
    bad = tmp_path / "bad.yaml"
    bad.write_text("fail_on: sometimes\n")
    with pytest.raises(api.ConfigError, match="fail_on"):
        api.scan(tiny_model_dir, policy=bad)


def test_gate_signs_a_passing_model_and_verify_catches_a_tampered_file(tiny_model_dir: Path,
                                                                      tmp_path: Path) -> None:
    keys = api.keygen(tmp_path / "key")
    policy = api.Policy(behaviour_scan={"enabled": False})  # no trigger search: the files decide
    progress: list[str] = []
    report = api.gate(tiny_model_dir, tmp_path / "gated", policy=policy, key=keys.private,
                      runtime=api.Runtime(device="cpu", threads=1), progress=api.Callbacks(on_phase=progress.append))
    assert report.verdict is not None and report.verdict.passed
    assert report.stage(api.StageName.SIGN) is not None and "signing" in progress
    verified = api.verify(tmp_path / "gated", keys.public)
    assert verified.command == "verify" and verified.stages[0].metrics["files"] > 0

    with (tmp_path / "gated" / "config.json").open("a") as handle:
        handle.write(" ")
    with pytest.raises(api.IntegrityError):
        api.verify(tmp_path / "gated", keys.public)


def test_gate_fails_a_malicious_model_and_signs_nothing(tiny_model_dir: Path, tmp_path: Path) -> None:
    keys = api.keygen(tmp_path / "key")
    report = api.gate(_malicious(tmp_path, tiny_model_dir), tmp_path / "gated", key=keys.private)
    assert report.verdict is not None and not report.verdict.passed
    assert not (tmp_path / "gated" / "model.sig").exists()
    assert (tmp_path / "gated" / "report.json").is_file() and report.output is None


def test_pull_of_a_local_folder_is_a_pull_record(tiny_model_dir: Path, tmp_path: Path) -> None:
    report = api.pull(str(tiny_model_dir), tmp_path / "pulled")
    assert report.command == "pull" and report.source is not None
    assert {f.path for f in report.source.files} >= {"config.json", "model.safetensors"}
    assert (tmp_path / "pulled" / "model.safetensors").is_file()


def test_sanitize_writes_a_merged_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = api.SanitizeConfig(max_steps=1, epochs=1, num_samples=2, micro_batch=1, grad_accum=1,
                                distill_max_new_tokens=4, checkpoint_every=0)
    steps: list[int] = []
    report = api.sanitize(tiny_model_dir, tmp_path / "out", settings=api.SanitizeSettings(config), scan=False,
                          runtime=api.Runtime(device="cpu", threads=1),
                          progress=api.Callbacks(on_step=lambda p: steps.append(p.step)))
    stage = report.stage(api.StageName.SANITIZE)
    assert stage is not None and stage.metrics["steps"] == 1 and steps == [1]
    assert report.verdict is not None and report.verdict.passed  # no scan, no test prompts: nothing fails
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_the_readme_example_uses_only_declared_names() -> None:
    import ast
    import re

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the README's Python API section has no example"
    tree = ast.parse(code.group(1))
    imported = [(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names if node.module and node.module.startswith("crowguard")]
    assert imported and all(module == "crowguard.api" and name in api.__all__ for module, name in imported)
