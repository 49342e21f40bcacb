"""Evidence for the matrix's claims: the token ids a model was actually fed, the folder's own ids, file digests.

``SeenTokens`` hooks every ``nn.Embedding`` forward in the process (a global hook, so it sees the
models crowguard loads itself) and keeps each row of ids given to an embedding of the vocabulary's
size: every prompt, probe and training example that reached a model, as the model received it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from crowguard.sanitize.merge import TOKENIZER_FILES


def file_ids(folder: Path, text: str) -> list[int]:
    """``text``'s ids by the folder's ``tokenizer.json`` alone (no special tokens added)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text, add_special_tokens=False).ids


def vocab_size(folder: Path) -> int:
    """The size of the folder's ``tokenizer.json`` vocabulary (added tokens included)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size()


def tokenizer_files(folder: Path) -> list[str]:
    """The tokenizer files ``folder`` ships, in crowguard's order."""
    return [name for name in TOKENIZER_FILES if (folder / name).is_file()]


def digests(folder: Path, names: Iterable[str]) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in names}


def auto_tokenizer_disagrees(folder: Path, texts: Iterable[str]) -> bool:
    """Whether the class transformers picks for ``folder`` encodes any of ``texts`` unlike its tokenizer.json."""
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return any(auto(t, add_special_tokens=False)["input_ids"] != file_ids(folder, t) for t in texts)


class SeenTokens:
    """Records the id rows fed to any embedding with ``vocab_size`` rows while the context is open."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.rows: list[tuple[int, ...]] = []
        self._handle: Any = None

    def __enter__(self) -> SeenTokens:
        import torch

        def hook(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            if isinstance(module, torch.nn.Embedding) and module.num_embeddings == self.vocab_size and args:
                ids = args[0]
                if isinstance(ids, torch.Tensor) and not ids.is_floating_point():
                    self.rows += [tuple(row) for row in ids.reshape(-1, ids.shape[-1]).tolist()]

        self._handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._handle.remove()

    def contains(self, ids: Sequence[int], *, with_token: int | None = None) -> bool:
        """Whether some row holds ``ids`` contiguously (and, if given, also the token ``with_token``)."""
        width = len(ids)
        wanted = tuple(ids)
        return any(any(row[i:i + width] == wanted for i in range(len(row) - width + 1))
                   and (with_token is None or with_token in row) for row in self.rows)

    def missing(self, folder: Path, texts: Iterable[str], *, with_token: int | None = None) -> list[str]:
        """The ``texts`` whose ids by ``folder``'s tokenizer.json no recorded row holds."""
        return [t for t in texts if not self.contains(file_ids(folder, t), with_token=with_token)]
