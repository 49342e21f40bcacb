"""The consistency profile per layer pair and position, and its independence from padding."""

import os

import torch

from crowguard.models.consistency import layer_cosines
from crowguard.scan.behaviour.encoding import encode_probes
from crowguard.scan.behaviour.profile import (
    GQA_SWITCH,
    ProfileRunner,
    contiguous_head,
    grouped_attention,
    kl_divergence,
)
from tests.scan.behaviour.conftest import PROBES


def _runner(loaded, positions: int = 3, batch_size: int = 64) -> ProfileRunner:
    return ProfileRunner(loaded.model, pad_id=loaded.tokenizer.pad_token_id, device="cpu", positions=positions,
                         batch_size=batch_size)


def test_profile_is_layer_cosines_at_the_last_positions_and_mean(probe_model) -> None:
    sequence = encode_probes(probe_model.tokenizer, PROBES[:1], "chat", seed=0).plain()[0]
    profiles = _runner(probe_model).run([sequence])
    with torch.inference_mode():
        hidden = probe_model.model(input_ids=torch.tensor([sequence]), output_hidden_states=True).hidden_states
    cos = layer_cosines(hidden, 0, len(hidden) - 2)[:, 0]  # (pairs, tokens): h[L] (normed) left out
    assert profiles.features.shape == (1, len(hidden) - 2, 4)
    torch.testing.assert_close(profiles.features[0, :, :3], cos[:, -3:], atol=1e-5, rtol=0)
    torch.testing.assert_close(profiles.features[0, :, 3], cos.mean(-1), atol=1e-5, rtol=0)


def test_left_padding_does_not_change_profiles_or_next_token(probe_model) -> None:
    sequences = encode_probes(probe_model.tokenizer, PROBES, "chat", seed=0).plain()
    assert len({len(s) for s in sequences}) > 1  # the batch really is padded
    batched = _runner(probe_model).run(sequences)
    alone = [_runner(probe_model).run([s]) for s in sequences]
    torch.testing.assert_close(batched.features, torch.cat([a.features for a in alone]), atol=1e-4, rtol=0)
    torch.testing.assert_close(batched.next_token, torch.cat([a.next_token for a in alone]), atol=1e-4, rtol=0)


def test_kl_to_baseline_is_zero_for_the_same_inputs(probe_model) -> None:
    sequences = encode_probes(probe_model.tokenizer, PROBES, "raw", seed=0).plain()
    runner = _runner(probe_model, batch_size=3)
    plain = runner.run(sequences)
    again = runner.run(sequences, baseline=plain.next_token)
    assert again.next_token.shape == (len(sequences),)
    assert float(again.next_token.max()) < 1e-4
    assert runner.sequences_run == 2 * len(sequences)
    uniform = torch.full((1, 4), 0.25).log()
    peaked = torch.tensor([[0.97, 0.01, 0.01, 0.01]]).log()
    assert float(kl_divergence(uniform, peaked)) > 0.5


def test_shared_prefix_gives_the_same_profiles_as_whole_sequences(probe_model) -> None:
    runner = _runner(probe_model, positions=4, batch_size=5)
    probes = encode_probes(probe_model.tokenizer, PROBES, "chat", seed=0)
    prefix, rest = probes.split(2, "random")
    tails = [[t, *rest] for t in range(6, 20)]
    whole = runner.run([prefix + t for t in tails])
    shared = runner.run_shared_prefix(prefix, tails, baseline=whole.next_token)
    torch.testing.assert_close(shared.features, whole.features, atol=1e-5, rtol=0)
    assert float(shared.next_token.abs().max()) < 1e-4  # KL to the whole-sequence distributions
    assert torch.equal(shared.top_token, whole.top_token)


def test_a_prefix_runs_once_and_its_kept_cache_gives_the_same_profiles(probe_model) -> None:
    runner = _runner(probe_model, positions=4, batch_size=4)
    probes = encode_probes(probe_model.tokenizer, PROBES, "chat", seed=0)
    prefix, rest = probes.split(1, "end")
    tails = [[t, *rest] for t in range(6, 15)]
    first = runner.run_shared_prefix(prefix, tails)
    again = runner.run_shared_prefix(prefix, tails)  # from the kept cache, which batches must not have grown
    assert list(runner._heads) == [tuple(prefix)]
    torch.testing.assert_close(again.features, first.features, atol=0, rtol=0)
    torch.testing.assert_close(again.next_token, first.next_token, atol=0, rtol=0)
    whole = runner.run([prefix + t for t in tails])
    torch.testing.assert_close(again.features, whole.features, atol=1e-5, rtol=0)


def _grouped_lm() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, attn_implementation="sdpa")
    return LlamaForCausalLM(config).eval()


def test_grouped_attention_gives_the_same_profiles_and_restores_the_switch(monkeypatch) -> None:
    monkeypatch.delenv(GQA_SWITCH, raising=False)
    runner = ProfileRunner(_grouped_lm(), pad_id=0, device="cpu", positions=2, batch_size=8)
    prefix, tails = [5, 6, 7, 8], [[9 + k, 20, 21] for k in range(6)]
    plain = runner.run_shared_prefix(prefix, tails)
    padded = runner.run([[5, 6, *t] for t in tails[:3]] + [[5, *t] for t in tails[3:]])  # masks with padding
    with grouped_attention("cpu"):
        assert os.environ[GQA_SWITCH] == "1"
        grouped = runner.run_shared_prefix(prefix, tails)
        grouped_padded = runner.run([[5, 6, *t] for t in tails[:3]] + [[5, *t] for t in tails[3:]])
    assert GQA_SWITCH not in os.environ
    for a, b in ((plain, grouped), (padded, grouped_padded)):
        torch.testing.assert_close(a.features, b.features, atol=1e-5, rtol=0)
        torch.testing.assert_close(a.next_token, b.next_token, atol=1e-5, rtol=0)


def test_grouped_attention_leaves_cuda_and_a_users_setting_alone(monkeypatch) -> None:
    monkeypatch.delenv(GQA_SWITCH, raising=False)
    with grouped_attention("cuda"):
        assert GQA_SWITCH not in os.environ
    monkeypatch.setenv(GQA_SWITCH, "0")
    with grouped_attention("cpu"):
        assert os.environ[GQA_SWITCH] == "0"
    assert os.environ[GQA_SWITCH] == "0"


def test_contiguous_head_gives_the_same_profiles_and_is_removed_after() -> None:
    model = _grouped_lm()
    head = model.get_output_embeddings()
    seen: list[bool] = []

    def record(_module, args) -> None:
        seen.append(args[0].is_contiguous())

    runner = ProfileRunner(model, pad_id=0, device="cpu", positions=2, batch_size=8)
    prefix, tails = [5, 6, 7, 8], [[9 + k, 20, 21] for k in range(6)]
    probe = head.register_forward_pre_hook(record)
    plain = runner.run_shared_prefix(prefix, tails)
    probe.remove()
    assert seen[-1] is False  # the tails' last position, as transformers slices it
    with contiguous_head(model):
        probe = head.register_forward_pre_hook(record)  # runs after the context's hook
        contiguous = runner.run_shared_prefix(prefix, tails)
        probe.remove()
    assert seen[-1] is True
    assert not head._forward_pre_hooks  # the context's hook is gone
    torch.testing.assert_close(contiguous.features, plain.features, atol=1e-5, rtol=0)
    torch.testing.assert_close(contiguous.next_token, plain.next_token, atol=1e-5, rtol=0)
    assert torch.equal(contiguous.top_token, plain.top_token)
