"""Long work done right: resume after an interruption, and Ctrl-C leaving nothing that looks complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowguard.errors import UsageError
from crowguard.pipeline.sanitize import SanitizeRequest, SanitizeSettings, run_sanitize
from crowguard.progress import Callbacks
from crowguard.runtime import Runtime
from crowguard.sanitize.config import SanitizeConfig
from crowguard.sanitize.train import plan_steps
from tests.sanitize.conftest import folder_digest

pytestmark = pytest.mark.slow
CONFIG = SanitizeConfig(epochs=2, num_samples=36, checkpoint_every=2, eps_mode="relative")


class Stop(KeyboardInterrupt):
    """Ctrl-C, raised from the progress callback."""


def _interrupt_at(step: int):  # noqa: ANN202
    def callback(progress) -> None:  # noqa: ANN001
        if progress.step == step:
            raise Stop()
    return callback


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(f)).items()}


def _leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if name in p.name and "checkpoint" not in p.name)


def test_plan_matches_the_papers_step_count() -> None:
    plan = plan_steps(100, SanitizeConfig())
    assert (plan.micro_batches_per_epoch, plan.steps_per_epoch, plan.total_steps, plan.warmup_steps) == (50, 13, 65, 7)
    assert plan_steps(100, SanitizeConfig(max_steps=10)).total_steps == 10


def test_resume_after_interrupt_matches_an_uninterrupted_run(arithmetic_model: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    import torch

    model, data = arithmetic_model
    before = folder_digest(model)
    full = run_sanitize(_request(model, tmp_path / "full", CONFIG, data)).report
    total = full.stage("sanitize").metrics["total_steps"]
    assert total == 10

    request = _request(model, tmp_path / "resumed", CONFIG, data)
    with pytest.raises(Stop):
        run_sanitize(request, Callbacks(on_step=_interrupt_at(5)))
    assert not request.out.exists() and _leftovers(tmp_path, "resumed") == []
    assert (request.checkpoints / "trainer_state.json").is_file()
    with pytest.raises(UsageError, match="interrupted run left a checkpoint"):
        run_sanitize(request)
    changed = _request(model, tmp_path / "resumed", SanitizeConfig(**{**CONFIG.as_dict(), "lr": 5e-4,
                       "lora_targets": CONFIG.lora_targets}), data, resume=True)
    with pytest.raises(UsageError, match="lr"):
        run_sanitize(changed)

    resumed = run_sanitize(_request(model, tmp_path / "resumed", CONFIG, data, resume=True)).report
    metrics = resumed.stage("sanitize").metrics
    assert metrics["resumed_from_step"] == 4 and metrics["steps"] == total
    assert [p["step"] for p in metrics["curve"]] == list(range(1, total + 1))
    for a, b in zip(full.stage("sanitize").metrics["curve"], metrics["curve"]):
        assert a["ce"] == pytest.approx(b["ce"], rel=1e-5) and a["lc_adv"] == pytest.approx(b["lc_adv"], rel=1e-4)
    expected, got = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        assert torch.allclose(tensor, got[name], atol=1e-6), name
    base = _weights(model)
    assert any(not torch.equal(base[k], expected[k]) for k in base)  # training changed the weights
    assert not request.checkpoints.exists()  # removed after success
    assert folder_digest(model) == before


def test_a_resumed_run_goes_on_with_the_trigger_stand_in_it_left(arithmetic_model: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    """The stand-in's vectors, moments and draws are in the checkpoint: a resume replays the run exactly."""
    import torch

    model, data = arithmetic_model
    config = SanitizeConfig(**{**CONFIG.as_dict(), "method": "guided", "num_samples": 12,
                               "lora_targets": CONFIG.lora_targets})
    full = run_sanitize(_request(model, tmp_path / "full", config, data, reply="it is 4 .")).report
    request = _request(model, tmp_path / "resumed", config, data, reply="it is 4 .")
    with pytest.raises(Stop):
        run_sanitize(request, Callbacks(on_step=_interrupt_at(3)))
    assert (request.checkpoints / "carried.safetensors").is_file()
    resumed = run_sanitize(_request(model, tmp_path / "resumed", config, data, reply="it is 4 .", resume=True)).report
    a, b = full.stage("sanitize").metrics, resumed.stage("sanitize").metrics
    assert b["resumed_from_step"] == 2 and a["stand_in"]["opening"]["last"] == b["stand_in"]["opening"]["last"]
    for x, y in zip(a["curve"], b["curve"]):
        assert x["ce"] == pytest.approx(y["ce"], rel=1e-5), (x, y)
    expected, got = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    for name, tensor in expected.items():
        assert torch.allclose(tensor, got[name], atol=1e-6), name


def test_ctrl_c_during_the_merge_leaves_no_output(arithmetic_model: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = arithmetic_model
    before = folder_digest(model)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier result")

    def phase(name: str) -> None:
        if name.startswith("merging"):
            raise Stop()

    config = SanitizeConfig(epochs=1, num_samples=8, checkpoint_every=0)
    with pytest.raises(Stop):
        run_sanitize(_request(model, out, config, data, force=True), Callbacks(on_phase=phase))
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # the old output is untouched
    assert _leftovers(tmp_path, "out") == ["out"]
    assert folder_digest(model) == before


def _request(model: Path, out: Path, config: SanitizeConfig, data: Path, reply: str | None = None,
             **options: bool) -> SanitizeRequest:
    return SanitizeRequest(model, out, SanitizeSettings(config, clean_data=data, reply=reply), Runtime(device="cpu"),
                           **options)
