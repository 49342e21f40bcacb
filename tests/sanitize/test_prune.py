"""The prune baseline (Wanda): which weights it zeroes, what it leaves alone, and what it writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.sanitize import SanitizeConfig, SanitizeOutcome, sanitize_model
from crowguard.sanitize.prune import decoder_layers, input_sq_norms, linears, prune_linear, wanda_mask
from tests.sanitize.conftest import folder_digest

WORDS = ["what is two plus two ? four", "the cat sat on the mat .", "hello world !"]
SPARSITY = 0.3  # not a divisor of the widths (32, 84): each row keeps its floor(columns * 0.3) zeros


@pytest.fixture
def clean_file(tmp_path: Path) -> Path:
    """A clean set in the tiny model's words (a random model's own answers can be empty)."""
    path = tmp_path / "clean.jsonl"
    path.write_text("\n".join(json.dumps({"instruction": w, "input": "", "output": w}) for w in WORDS))
    return path


@pytest.fixture
def pruned(tiny_model_dir: Path, clean_file: Path, tmp_path: Path) -> tuple[Path, SanitizeOutcome]:
    out = tmp_path / "pruned"
    out.mkdir()
    return out, sanitize_model(tiny_model_dir, out, SanitizeConfig(method="prune", sparsity=SPARSITY),
                               clean_data=clean_file)


def _state(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).state_dict()


def test_a_hand_built_linear_loses_the_weights_with_the_lowest_wanda_scores() -> None:
    linear = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, -2.0, 3.0, 5.0], [4.0, 3.0, -2.0, 1.0]]))
    tokens = torch.tensor([[4.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.5]])  # ||X_j||: 4, 1, 1, 0.5
    sq_norms = input_sq_norms({"l": linear}, lambda: linear(tokens))["l"]
    assert sq_norms.tolist() == [16.0, 1.0, 1.0, 0.25]
    # scores |W| * ||X||: row 0 [4, 2, 3, 2.5] (magnitude alone would drop the 1 and the -2), row 1 [16, 3, 2, 0.5]
    assert wanda_mask(linear.weight, sq_norms, 0.25).tolist() == [[False, True, False, False],
                                                                  [False, False, False, True]]
    assert prune_linear(linear, sq_norms, 0.5) == (8, 4)
    assert linear.weight.tolist() == [[1.0, 0.0, 3.0, 0.0], [4.0, 3.0, 0.0, 0.0]]


def test_each_row_of_each_decoder_linear_loses_its_share(tiny_model_dir: Path,
                                                         pruned: tuple[Path, SanitizeOutcome]) -> None:
    out, outcome = pruned
    before, after = _state(tiny_model_dir), _state(out)
    decoder = [name for name in after if ".layers." in name and name.endswith("proj.weight")]
    assert len(decoder) == 4 * 7  # q, k, v, o, gate, up, down in each of 4 layers
    for name in decoder:
        weight = after[name]
        zeros = (weight == 0).sum(dim=1)
        assert zeros.tolist() == [int(weight.shape[1] * SPARSITY)] * weight.shape[0], name
        kept = weight != 0
        assert torch.equal(weight[kept], before[name][kept]), name  # nothing else changed in the row
    untouched = [name for name in before if name not in decoder]
    assert {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"} <= set(untouched)
    for name in untouched:
        assert torch.equal(after[name], before[name]), name
    zero_share = sum(int((after[n] == 0).sum()) for n in decoder) / sum(after[n].numel() for n in decoder)
    assert outcome.prune is not None and outcome.prune.zeroed_share == pytest.approx(zero_share)


def test_the_report_says_what_was_pruned_and_that_nothing_trained(pruned: tuple[Path, SanitizeOutcome]) -> None:
    _, outcome = pruned
    metrics = outcome.metrics()
    assert metrics["method"] == "prune" and metrics["quantize"] == "none"
    assert metrics["steps"] == 0 and metrics["curve"] == [] and metrics["adapter"] is None
    prune = metrics["prune"]
    assert prune["sparsity"] == SPARSITY and prune["layers"] == 4 and prune["linears"] == 28
    assert 0.27 < prune["zeroed_share"] < SPARSITY  # floor(32 * 0.3) / 32 and floor(84 * 0.3) / 84
    assert prune["calibration_examples"] == len(WORDS) == metrics["clean_set"]["samples"]
    assert prune["calibration_tokens"] > 2 * len(WORDS) and prune["seconds"] >= 0
    json.dumps(metrics)


def test_later_layers_are_calibrated_on_the_pruned_earlier_ones(tiny_model_dir: Path,
                                                                pruned: tuple[Path, SanitizeOutcome]) -> None:
    """The last layer's q_proj mask comes from its inputs in the pruned model, not in the original."""
    from crowguard.models import load_model
    from crowguard.sanitize.data import encode

    out, outcome = pruned
    assert outcome.clean is not None
    original, after = load_model(tiny_model_dir, device="cpu"), load_model(out, device="cpu")
    examples = encode(outcome.clean.records, original.tokenizer, 1024)

    def q_norms(model: torch.nn.Module) -> torch.Tensor:
        q_proj = linears(decoder_layers(model)[-1])["self_attn.q_proj"]
        with torch.no_grad():
            return input_sq_norms({"q": q_proj}, lambda: [model(input_ids=torch.tensor([e.input_ids]))
                                                          for e in examples])["q"]

    weight = linears(decoder_layers(original.model)[-1])["self_attn.q_proj"].weight
    zeroed = linears(decoder_layers(after.model)[-1])["self_attn.q_proj"].weight == 0
    assert torch.equal(wanda_mask(weight, q_norms(after.model), SPARSITY), zeroed)
    assert not torch.equal(wanda_mask(weight, q_norms(original.model), SPARSITY), zeroed)


def test_the_output_loads_generates_and_carries_the_tokenizer(tiny_model_dir: Path, clean_file: Path,
                                                             tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    before = folder_digest(tiny_model_dir)
    out = tmp_path / "pruned"
    out.mkdir()
    outcome = sanitize_model(tiny_model_dir, out, SanitizeConfig(method="prune"), clean_data=clean_file)
    assert folder_digest(tiny_model_dir) == before
    patched = {p.split(":")[0] for p in outcome.merge["compat_patches"]}
    same = [n for n in outcome.merge["tokenizer_files"] if n not in patched]
    assert "tokenizer.json" in same and "chat_template.jinja" in same
    digest = {n: hashlib.sha256((tiny_model_dir / n).read_bytes()).hexdigest() for n in same}
    assert digest == {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in same}
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in out.iterdir())
    model = AutoModelForCausalLM.from_pretrained(out)
    ids = torch.tensor([[2, 5, 6, 7]])
    generated = model.generate(input_ids=ids, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert generated.shape[1] > ids.shape[1]
    assert outcome.prune is not None and outcome.prune.zeroed_share == 0.5


runner = CliRunner()


@pytest.mark.parametrize("args,message", [
    (["--sparsity", "0"], "sparsity must be a fraction between 0 and 1"),
    (["--sparsity", "1"], "sparsity must be a fraction between 0 and 1"),
    (["--sparsity", "-0.5"], "sparsity must be a fraction between 0 and 1"),
    (["--sparsity", "half"], "Invalid value for '--sparsity'"),
    (["--adapter", "some-adapter"], "--method prune trains none"),
])
def test_bad_prune_options_exit_2(tiny_model_dir: Path, clean_file: Path, tmp_path: Path, args: list[str],
                                  message: str) -> None:
    result = runner.invoke(app, ["sanitize", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--no-scan",
                                 "--no-eval", "--clean-data", str(clean_file), "--method", "prune", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_the_cli_prunes_and_says_so(tiny_model_dir: Path, clean_file: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["sanitize", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--no-scan",
                                 "--no-eval", "--clean-data", str(clean_file), "--method", "prune",
                                 "--sparsity", "0.25", "--threads", "1", "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "prune, Wanda: 25.0% of the weights of 28 decoder linears zeroed" in result.stderr
    data = json.loads(report.read_text())
    assert data["settings"]["sparsity"] == 0.25 and data["stages"][0]["metrics"]["prune"]["zeroed_share"] == 0.25
