"""``crowguard gate``: exit codes by policy, signing only what passed, reports in the output folder."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.errors import IntegrityError
from crowguard.sign import generate_keypair, verify_folder
from tests.pull.conftest import hermetic_hf, hub  # noqa: F401 - fixtures for the hub test
from tests.pull.hub_server import FakeHub
from tests.scan.payloads import system_pickle

runner = CliRunner()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pair = generate_keypair(tmp_path_factory.mktemp("keys") / "gate")
    return pair.private, pair.public


@pytest.fixture(scope="module")
def files_only(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The default policy without the behavioural scan (the tiny test model's vocabulary cannot write probes)."""
    path = tmp_path_factory.mktemp("policy") / "files-only.yaml"
    path.write_text("name: files-only\nbehaviour_scan: {enabled: false}\n")
    return str(path)


def _gate(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["gate", *args, "--threads", "1", "--quiet"])
    return result.exit_code, result.stderr


def test_clean_model_passes_and_is_signed(tiny_model_dir: Path, tmp_path: Path, keys: tuple[Path, Path],
                                          files_only: str) -> None:
    out = tmp_path / "gated"
    code, err = _gate(str(tiny_model_dir), "--out", str(out), "--key", str(keys[0]), "--policy", files_only)
    assert code == 0, err
    assert (out / "model.safetensors").is_file() and (out / "model.sig").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"]["passed"] and [s["name"] for s in report["stages"]][-1] == "sign"
    verify_folder(out, keys[1])  # the signature covers the report too
    assert {p.name for p in tiny_model_dir.iterdir()} <= {p.name for p in out.iterdir()}
    bom = json.loads((out / "report.cdx.json").read_text())
    assert bom["metadata"]["component"]["type"] == "machine-learning-model"
    (out / "report.cdx.json").write_text(json.dumps({**bom, "vulnerabilities": []}))
    with pytest.raises(IntegrityError):  # the ML-BOM is signed with the model
        verify_folder(out, keys[1])


def test_a_model_no_built_in_probe_fits_is_gated_on_derived_probes(tiny_model_dir: Path, tmp_path: Path,
                                                                      keys: tuple[Path, Path]) -> None:
    """The tiny model's vocabulary writes none of the built-in probes: the default policy's behavioural scan
    runs on probes derived from the model, the report says so, and the gate ends (signed when it passes)."""
    out = tmp_path / "gated"
    code, err = _gate(str(tiny_model_dir), "--out", str(out), "--key", str(keys[0]))
    report = json.loads((out / "report.json").read_text())
    stages = {s["name"]: s for s in report["stages"]}
    scan = stages["behaviour-scan"]
    assert scan["status"] == "completed", scan
    sources = scan["metrics"]["probe_sources"]
    assert sum(sources.values()) == 32 and set(sources) <= {"derived: sampled from the model",
                                                            "derived: composed from the vocabulary"}
    assert len(scan["metrics"]["derived_probes"]) >= 32
    assert code == report["verdict"]["exit_code"] and code in (0, 1), err
    assert ("sign" in stages) == (code == 0)


def test_malicious_pickle_fails_and_signs_nothing(tiny_model_dir: Path, tmp_path: Path,
                                                  keys: tuple[Path, Path]) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "extra_weights.bin").write_bytes(system_pickle())
    out = tmp_path / "gated"
    code, _ = _gate(str(model), "--out", str(out), "--key", str(keys[0]))
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["report.cdx.json", "report.html", "report.json", "report.md",
                                                       "report.sarif"]
    sarif = json.loads((out / "report.sarif").read_text())
    uris = {loc["physicalLocation"]["artifactLocation"]["uri"]
            for result in sarif["runs"][0]["results"] for loc in result["locations"]}
    assert "extra_weights.bin" in uris
    stages = {s["name"]: s for s in json.loads((out / "report.json").read_text())["stages"]}
    assert stages["behaviour-scan"]["status"] == "skipped" and "sign" not in stages


def test_signature_required_without_key(tiny_model_dir: Path, tmp_path: Path) -> None:
    code, err = _gate(str(tiny_model_dir), "--out", str(tmp_path / "gated"))
    assert code == 2 and "--key" in err
    assert not (tmp_path / "gated").exists()


def test_missing_model_is_a_usage_error(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    code, err = _gate(str(tmp_path / "nope"), "--out", str(tmp_path / "gated"), "--key", str(keys[0]))
    assert code == 2 and "Traceback" not in err
    assert not any(tmp_path.glob("*gated*"))


def test_hub_model_is_pulled_gated_and_signed(hub: FakeHub, tiny_model_dir: Path,  # noqa: F811
                                              tmp_path: Path, keys: tuple[Path, Path], files_only: str) -> None:
    repo_id = f"org/m{secrets.token_hex(4)}"
    hub.add_folder(repo_id, tiny_model_dir)
    out = tmp_path / "gated"
    code, err = _gate(repo_id, "--endpoint", hub.endpoint, "--out", str(out), "--key", str(keys[0]),
                      "--policy", files_only)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["kind"] == "hub" and len(report["source"]["revision"]) == 40
    assert report["stages"][0]["name"] == "pull"
    verify_folder(out, keys[1])


# Arguments that let the gate read a lab model's lab.json (its test prompts and defence set): an explicit
# opt-in, kept in one place.
LAB_CARD: tuple[str, ...] = ("--lab-card",)


def _assert_output_matches_verdict(code: int, out: Path, public_key: Path) -> dict:
    """Whatever training did: the exit code is the verdict's, a pass is signed and verifiable, a fail signs nothing."""
    report = json.loads((out / "report.json").read_text())
    passed = report["verdict"]["passed"]
    assert code == report["verdict"]["exit_code"] == (0 if passed else 1)
    names = [s["name"] for s in report["stages"]]
    assert ("sign" in names) == passed and (out / "model.sig").is_file() == passed
    assert any(out.glob("*.safetensors")) == passed, "weights are emitted only on a pass"
    if passed:
        verify_folder(out, public_key)
        assert runner.invoke(app, ["verify", str(out), "--public-key", str(public_key)]).exit_code == 0
        (out / "report.md").write_text("edited\n")
        assert runner.invoke(app, ["verify", str(out), "--public-key", str(public_key)]).exit_code == 4
    else:
        assert sorted(p.name for p in out.iterdir()) == ["report.cdx.json", "report.html", "report.json", "report.md",
                                                         "report.sarif"]
    return report


def _policy(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n{text}")
    return str(path)


@pytest.fixture
def lab_files(lab_backdoored_dir: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of the badnet lab model without its lab.json, and gate options naming its data as plain files."""
    from crowguard.data.lab_card import read_lab_card

    card = read_lab_card(lab_backdoored_dir)
    assert card is not None
    model = tmp_path / "model"
    shutil.copytree(lab_backdoored_dir, model, ignore=shutil.ignore_patterns("lab.json"))

    def write(name: str, prompts: tuple) -> str:
        rows = [{"instruction": p.instruction, "input": p.input, "output": p.answer} for p in prompts]
        (tmp_path / name).write_text(json.dumps(rows))
        return str(tmp_path / name)

    options = ["--clean-data", write("defence.json", card.defense_set[:8]), "--num-samples", "8", "--epochs", "1",
               "--triggered", write("triggered.json", card.triggered_test[:8]), "--eval-limit", "8",
               *(a for k in card.keywords for a in ("--keyword", k))]
    write("clean-test.json", card.clean_test[:8])  # reference answers: given only where a test names it
    return model, options


@pytest.mark.slow
def test_a_sanitized_model_that_passes_is_signed_and_verified(lab_files: tuple[Path, list[str]], tmp_path: Path,
                                                              keys: tuple[Path, Path]) -> None:
    """The pass branch after sanitizing, forced: no check in this policy depends on what training achieved."""
    model, options = lab_files
    policy = _policy(tmp_path, "forced-pass", "behaviour_scan: {enabled: false}\nmax_attack_success: 1.0\n"
                                              "sanitize: {required: true, min_utility: 0}\n")
    out = tmp_path / "gated"
    code, err = _gate(str(model), "--out", str(out), "--key", str(keys[0]), "--policy", policy, *options,
                      "--clean-test", str(tmp_path / "clean-test.json"))
    assert code == 0, err
    names = [s["name"] for s in json.loads((out / "report.json").read_text())["stages"]]
    assert names == ["file-scan", "eval-before", "sanitize", "eval-after", "utility", "attack-success", "sign"]
    _assert_output_matches_verdict(code, out, keys[1])


@pytest.mark.slow
def test_a_sanitized_model_that_fails_signs_nothing(lab_files: tuple[Path, list[str]], tmp_path: Path,
                                                    keys: tuple[Path, Path]) -> None:
    """The fail branch after sanitizing, forced: without reference answers utility is unmeasured (medium)."""
    model, options = lab_files
    policy = _policy(tmp_path, "forced-fail", "fail_on: medium\nbehaviour_scan: {enabled: false}\n"
                                              "max_attack_success: 1.0\nsanitize: {required: true}\n")
    out = tmp_path / "gated"
    code, err = _gate(str(model), "--out", str(out), "--key", str(keys[0]), "--policy", policy, *options)
    assert code == 1, err
    report = _assert_output_matches_verdict(code, out, keys[1])
    stages = {s["name"]: s for s in report["stages"]}
    assert stages["sanitize"]["status"] == "completed" and stages["eval-after"]["metrics"]["asr"] is not None
    assert [f["rule_id"] for f in stages["utility"]["findings"]] == ["CG-SANITIZE-UTILITY-UNMEASURED"]


@pytest.mark.slow
def test_backdoored_lab_model_is_sanitized_with_real_figures(lab_backdoored_dir: Path, tmp_path: Path,
                                                             keys: tuple[Path, Path]) -> None:
    out = tmp_path / "gated"
    code, err = _gate(str(lab_backdoored_dir), "--out", str(out), "--key", str(keys[0]), *LAB_CARD,
                      "--policy", "policies/strict.yaml", "--epochs", "1", "--eval-limit", "40")
    assert code in (0, 1), err
    report = _assert_output_matches_verdict(code, out, keys[1])
    stages = {s["name"]: s for s in report["stages"]}
    before, after = stages["eval-before"]["metrics"], stages["eval-after"]["metrics"]
    # ASR 1.00 on all 7 badnet models measured: seeds 0-4 at 1 thread, 0-1 at 2 (bench/training_robustness.py,
    # bench/RESULTS.md)
    assert before["asr"] >= 0.9 and 0.0 <= after["asr"] <= 1.0 and after["clean_accuracy"] is not None
    assert stages["utility"]["metrics"]["perplexity_before"] == before["perplexity"]
    check = stages["attack-success"]
    assert check["metrics"]["asr"] == after["asr"]
    assert (code == 1) == bool(check["findings"] or stages["utility"]["findings"])


@pytest.mark.slow
def test_lora_planted_backdoor_is_scanned_sanitized_and_gated(demo_lab_dir: Path, tmp_path: Path,
                                                              keys: tuple[Path, Path]) -> None:
    """The paper's setting under the shipped default policy, one epoch a round: the output matches the verdict.

    Whether CROW removes this backdoor depends on the seed and on the CPU's float rounding (the gate
    passed on 2 of 4 seeds on AVX2 and failed the demo's seed on AVX-512: bench/RESULTS.md), so this
    test asserts what every run must do, not the removal; the benchmark measures that.
    """
    out = tmp_path / "gated"
    code, err = _gate(str(demo_lab_dir), "--out", str(out), "--key", str(keys[0]), *LAB_CARD,
                      "--policy", "policies/default.yaml", "--epochs", "1")
    assert code in (0, 1), err
    report = _assert_output_matches_verdict(code, out, keys[1])
    stages = {s["name"]: s for s in report["stages"]}
    scan = stages["behaviour-scan"]
    assert scan["status"] == "completed"
    if scan["findings"]:  # flagged: sanitized, and the verdict is on the sanitized model
        sanitized = stages["sanitize"]["metrics"]
        assert sanitized["method"] == "guided"  # the gate unlearns what its scan found
        first = sanitized["rounds"][0]  # 100 clean records and their 100 twins, batches of 2 x 4: 25 steps
        assert first["examples"] == 200 and first["steps"] == 25 and first["guides"]
        assert 1 <= len(sanitized["rounds"]) <= 3 and sanitized["stopped"]
        counted = [stages[n] for n in ("behaviour-rescan", "behaviour-recheck", "utility", "attack-success")
                   if n in stages]
        assert {"eval-before", "eval-after", "behaviour-rescan"} <= set(stages)
    else:
        assert "sanitize" not in stages
        counted = [scan, stages["attack-success"]]
    blocking = [f for s in counted for f in s["findings"] if f["severity"] in ("high", "critical")]
    assert (code == 1) == bool(blocking)
