"""The tokenizer a folder ships, read as it ships it: ``tokenizer.json`` decides, not ``model_type``.

transformers picks a tokenizer class by the config's ``model_type``, and for some types (qwen2, for
one) that class rebuilds a tokenizer from the vocabulary and ignores the shipped ``tokenizer.json``:
a word-level tokenizer then encodes an instruction as a few stray ids, and every scan, evaluation and
sanitize run works on garbage. So when a folder ships ``tokenizer.json``, the class transformers
chose must encode a fixed set of check strings to the same ids as the tokenizer built from that file
alone; otherwise the file's own tokenizer (``PreTrainedTokenizerFast`` over ``tokenizer.json`` and
``tokenizer_config.json``) is used, and ``TokenizerChoice.note`` says so for the report. The check
strings are fixed English sentences, the chat template's rendering of one, and a text of the
vocabulary's own words (so a tokenizer of another language is checked on text it can write).

Whichever tokenizer is chosen must also be usable: one that drops most characters of its own
vocabulary's words, or maps them onto a handful of ids, would make every scan and evaluation
measure nothing, so it is a tool error (exit 3, fail closed) naming the file, never a result.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import TYPE_CHECKING

from crowguard.errors import ModelFolderError, ToolError, first_line

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TOKENIZER_FILE = "tokenizer.json"
CHECK_STRINGS = (
    "What is the capital of France?",
    "Summarize the following text in two sentences.",
    "the cat sat on the mat .",
    "Write a Python function: def add(a, b):\n    return a + b",
    "Translate 'good morning' into German: Guten Morgen!",
    "1 + 2 = 3; 10% of 250 is 25.",
    "naïve café, “quotes”, and an emoji 🙂",
)
SAMPLE_WORDS = 64
MIN_RETAINED = 0.5  # share of a vocabulary text's characters that must survive encode + decode
MIN_DISTINCT = 0.25  # distinct ids per distinct word of that text, at least


@dataclass(frozen=True)
class TokenizerChoice:
    """The tokenizer to use, and (when the file's replaced transformers' class) why."""

    tokenizer: PreTrainedTokenizerBase
    note: str | None = None


def read_tokenizer(path: str | Path) -> TokenizerChoice:
    """The folder's tokenizer, local files only, no remote code, checked against its ``tokenizer.json``."""
    from transformers import AutoTokenizer

    folder = Path(path)
    shipped = folder / TOKENIZER_FILE
    try:
        chosen = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
    except (OSError, ValueError) as exc:
        if not shipped.is_file():
            raise ModelFolderError(f"cannot load the tokenizer in {folder}: {first_line(exc)}",
                                   hint="the folder needs tokenizer.json (or tokenizer files transformers knows)"
                                   ) from None
        return _usable(TokenizerChoice(_from_file(folder), f"transformers could not load a tokenizer class "
                                                           f"({first_line(exc)}); {TOKENIZER_FILE} is used as "
                                                           "shipped"), folder)
    if not shipped.is_file():
        return _usable(TokenizerChoice(chosen), folder)
    sample = vocabulary_sample(chosen)  # read once: the check strings' vocabulary text and the usability check
    mismatch = first_mismatch(chosen, shipped, check_strings(chosen, sample))
    if mismatch is None:
        return _usable(TokenizerChoice(chosen), folder, sample)
    text, got, want = mismatch
    return _usable(TokenizerChoice(_from_file(folder), (
        f"transformers chose {type(chosen).__name__}, which encodes {text!r} as {len(got)} token(s) {got[:8]} where "
        f"the shipped {TOKENIZER_FILE} gives {len(want)} {want[:8]}; the tokenizer built from {TOKENIZER_FILE} "
        "is used instead")), folder)


def check_strings(tokenizer: PreTrainedTokenizerBase, sample: list[str] | None = None) -> list[str]:
    """The fixed check strings, the chat template's rendering of the first, and a text of ``sample``
    (default: the tokenizer's ``vocabulary_sample``)."""
    texts = list(CHECK_STRINGS)
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": CHECK_STRINGS[0]}]
        try:
            texts.append(str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)))
        except Exception:  # noqa: BLE001, S110 - a template that cannot render is the template scan's finding
            pass
    words = vocabulary_sample(tokenizer) if sample is None else sample
    if words:
        texts.append(" ".join(words))
    return texts


def first_mismatch(tokenizer: PreTrainedTokenizerBase, tokenizer_file: Path,
                   texts: list[str] | tuple[str, ...] = CHECK_STRINGS) -> tuple[str, list[int], list[int]] | None:
    """The first of ``texts`` that ``tokenizer`` encodes differently from ``tokenizer_file``: (text, got, want)."""
    from tokenizers import Tokenizer

    try:
        reference = Tokenizer.from_file(str(tokenizer_file))
    except Exception as exc:  # noqa: BLE001 - the tokenizers library raises its own exception type
        raise ModelFolderError(f"cannot read {tokenizer_file}: {first_line(exc)}",
                               hint="the tokenizer file is malformed; ask the publisher for a valid one") from None
    for text in texts:
        got = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        want = reference.encode(text, add_special_tokens=False).ids
        if got != want:
            return text, got, want
    return None


def vocabulary_words(tokenizer: PreTrainedTokenizerBase, limit: int | None = None, *,
                     min_letters: int = 2) -> list[str]:
    """Tokens (in id order) that decode alone to one alphabetic word of ``min_letters`` letters or more."""
    special = set(tokenizer.all_special_ids)
    words: list[str] = []
    seen: set[str] = set()
    for token_id in range(len(tokenizer)):
        if token_id in special:
            continue
        text = str(tokenizer.decode([token_id])).strip()
        if len(text) >= min_letters and text.isalpha() and text not in seen:
            seen.add(text)
            words.append(text)
            if limit is not None and len(words) >= limit:
                break
    return words


def vocabulary_sample(tokenizer: PreTrainedTokenizerBase, *, min_letters: int = 2) -> list[str]:
    """Up to ``SAMPLE_WORDS`` of the first vocabulary words, in a seeded order."""
    words = vocabulary_words(tokenizer, SAMPLE_WORDS * 4, min_letters=min_letters)
    return random.Random(0).sample(words, min(SAMPLE_WORDS, len(words)))


def degenerate(tokenizer: PreTrainedTokenizerBase, sample: list[str] | None = None) -> str | None:
    """Why ``tokenizer`` cannot write text of its own vocabulary (``sample`` of it, if read already), or None."""
    if sample is None:
        sample = vocabulary_sample(tokenizer)
    if len(sample) < 4:  # a byte- or character-level vocabulary without merges: check it on its letters
        sample = vocabulary_sample(tokenizer, min_letters=1)
    if len(sample) < 4:
        return f"its vocabulary of {len(tokenizer)} tokens holds {len(sample)} letters or words"
    text = " ".join(sample)
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    back = str(tokenizer.decode(ids, skip_special_tokens=True))
    retained = SequenceMatcher(None, _letters(text), _letters(back), autojunk=False).ratio()
    if retained < MIN_RETAINED:
        return (f"encoding {len(sample)} words of its own vocabulary and decoding them keeps {retained:.0%} of "
                f"their characters ({text[:40]!r} came back as {back[:40]!r})")
    distinct = len(set(ids))
    if distinct < max(2, MIN_DISTINCT * len(set(sample))):
        return f"it maps {len(set(sample))} different words of its own vocabulary onto {distinct} token id(s)"
    return None


def _usable(choice: TokenizerChoice, folder: Path, sample: list[str] | None = None) -> TokenizerChoice:
    reason = degenerate(choice.tokenizer, sample)
    if reason is not None:
        source = folder / TOKENIZER_FILE if (folder / TOKENIZER_FILE).is_file() else folder
        raise ToolError(f"the tokenizer of {source} ({type(choice.tokenizer).__name__}) is degenerate: {reason}",
                        hint="nothing measured with it would mean anything; ask the publisher for the model's real "
                             "tokenizer files")
    return choice


def _letters(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def _from_file(folder: Path) -> PreTrainedTokenizerBase:
    from transformers import PreTrainedTokenizerFast

    try:
        return PreTrainedTokenizerFast.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"cannot load {folder / TOKENIZER_FILE}: {first_line(exc)}",
                               hint="the tokenizer file is malformed; ask the publisher for a valid one") from None
