"""The tokenizer a folder ships, read as it ships it: ``tokenizer.json`` decides, not ``model_type``.

transformers picks a tokenizer class by the config's ``model_type``, and for some types (qwen2, for
one) that class rebuilds a tokenizer from the vocabulary and ignores the shipped ``tokenizer.json``:
a word-level tokenizer then encodes an instruction as a few stray ids, and every scan, evaluation and
sanitize run works on garbage. So when a folder ships ``tokenizer.json``, the class transformers
chose must encode a fixed set of check strings to the same ids as the tokenizer built from that file
alone; otherwise the file's own tokenizer (``PreTrainedTokenizerFast`` over ``tokenizer.json`` and
``tokenizer_config.json``) is used, and ``TokenizerChoice.note`` says so for the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crowguard.errors import ModelFolderError, first_line

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
        return TokenizerChoice(_from_file(folder), f"transformers could not load a tokenizer class "
                                                   f"({first_line(exc)}); {TOKENIZER_FILE} is used as shipped")
    if not shipped.is_file():
        return TokenizerChoice(chosen)
    mismatch = first_mismatch(chosen, shipped)
    if mismatch is None:
        return TokenizerChoice(chosen)
    text, got, want = mismatch
    return TokenizerChoice(_from_file(folder), (
        f"transformers chose {type(chosen).__name__}, which encodes {text!r} as {len(got)} token(s) {got[:8]} where "
        f"the shipped {TOKENIZER_FILE} gives {len(want)} {want[:8]}; the tokenizer built from {TOKENIZER_FILE} "
        "is used instead"))


def first_mismatch(tokenizer: PreTrainedTokenizerBase,
                   tokenizer_file: Path) -> tuple[str, list[int], list[int]] | None:
    """The first check string ``tokenizer`` encodes differently from ``tokenizer_file``: (text, got, want)."""
    from tokenizers import Tokenizer

    try:
        reference = Tokenizer.from_file(str(tokenizer_file))
    except Exception as exc:  # noqa: BLE001 - the tokenizers library raises its own exception type
        raise ModelFolderError(f"cannot read {tokenizer_file}: {first_line(exc)}",
                               hint="the tokenizer file is malformed; ask the publisher for a valid one") from None
    for text in CHECK_STRINGS:
        got = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        want = reference.encode(text, add_special_tokens=False).ids
        if got != want:
            return text, got, want
    return None


def _from_file(folder: Path) -> PreTrainedTokenizerBase:
    from transformers import PreTrainedTokenizerFast

    try:
        return PreTrainedTokenizerFast.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"cannot load {folder / TOKENIZER_FILE}: {first_line(exc)}",
                               hint="the tokenizer file is malformed; ask the publisher for a valid one") from None
