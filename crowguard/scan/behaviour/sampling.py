"""Text the model writes itself: the prompt openings it is sampled from, and the seeded sampler.

Two scan steps read what a model writes when nothing is asked of it: probes derived for a foreign
vocabulary (``derived``) and leaked trigger candidates (``leakage``). Both start from the chat
template rendered up to where the user's text goes (without a template: the start-of-text token),
and leakage also from the assistant's turn after an empty instruction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from crowguard.models.prompts import Template, format_prompt

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from crowguard.models import LoadedModel

_MARK = "CROWGUARDSAMPLEMARK"


@dataclass(frozen=True)
class Opening:
    """Token ids to sample from, and the tokens that end the text sampled there (besides end-of-sequence)."""

    ids: tuple[int, ...]
    stops: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Decoding:
    """One sampling setting."""

    temperature: float = 1.0
    top_p: float = 0.95


def user_turn_opening(tokenizer: PreTrainedTokenizerBase, template: str) -> Opening:
    """The token ids before the user's text, and the token that ends the user's turn."""
    if template == "chat":
        text = format_prompt(tokenizer, _MARK, "", "chat")
        before, _, after = text.partition(_MARK)
        prefix = tokenizer(before, add_special_tokens=False)["input_ids"]
        closing = tokenizer(after, add_special_tokens=False)["input_ids"]
        return Opening(tuple(prefix), frozenset(closing[:1]))
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return Opening(() if start is None else (int(start),))


def empty_instruction_opening(tokenizer: PreTrainedTokenizerBase, template: str) -> Opening:
    """The whole prompt of an empty instruction: where the model's answer to nothing begins."""
    text = format_prompt(tokenizer, "", "", cast(Template, template))  # the scan's resolved template
    special = template != "chat"  # the chat template writes its own special tokens
    return Opening(tuple(tokenizer(text, add_special_tokens=special)["input_ids"]))


def sample_texts(loaded: LoadedModel, opening: Opening, count: int, *, seed: int, max_new_tokens: int,
                 decoding: Decoding = Decoding()) -> list[str]:
    """``count`` seeded continuations of ``opening``, each cut at its first stop token, decoded without
    special tokens (the torch random state outside is left as it was)."""
    import torch

    if not opening.ids or count < 1:
        return []
    tokenizer, model = loaded.tokenizer, loaded.model
    stops = set(opening.stops) | set(loaded.stop_ids())
    ids = torch.tensor([list(opening.ids)] * count, device=loaded.device)
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        # PreTrainedModel does not declare generate (GenerationMixin adds it per model class).
        generated = model.generate(  # type: ignore[operator]
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=True,
            temperature=decoding.temperature, top_p=decoding.top_p, top_k=0, num_beams=1,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=sorted(stops) or None)
    return [_decoded(tokenizer, row, stops) for row in generated[:, len(opening.ids):].tolist()]


def _decoded(tokenizer: PreTrainedTokenizerBase, row: Sequence[int], stops: set[int]) -> str:
    cut = next((k for k, token in enumerate(row) if token in stops), len(row))
    return str(tokenizer.decode(list(row[:cut]), skip_special_tokens=True))
