"""Which files of a repository or folder a pull takes: an allow-list, and a reason for every file left.

Taken: safetensors weights and their index, config and generation config, tokenizer files, chat
templates and the model card, all at the root (plus transformers' ``additional_chat_templates/``).
Pickle-based weights are taken only when the policy allows pickle and no safetensors exist; the
file scan must then clear them. Python code is never taken, whatever ``auto_map`` says. A GGUF file
is taken only when named, for import into a safetensors folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from crowguard.errors import UsageError
from crowguard.models.folder import PICKLE_SUFFIXES
from crowguard.report.model import SkippedFile

CONFIG_FILES = frozenset({"config.json", "generation_config.json"})
TOKENIZER_FILES = frozenset({
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.model",
    "vocab.json", "vocab.txt", "merges.txt", "chat_template.jinja", "chat_template.json",
})
CARD_FILES = frozenset({"README.md"})
CHAT_TEMPLATE_DIR = "additional_chat_templates/"
PICKLE_INDEX_SUFFIX = ".bin.index.json"


@dataclass(frozen=True)
class Selection:
    """The files to take (paths relative to the source root) and the ones left, with reasons."""

    take: tuple[str, ...]
    skipped: tuple[SkippedFile, ...]
    gguf: str | None = None


def select_files(names: Iterable[str], *, where: str, allow_pickle: bool = False,
                 gguf_file: str | None = None) -> Selection:
    """Apply the allow-list to ``names`` (a trailing ``/`` marks a whole subfolder).

    Raises UsageError when nothing loadable would be taken: pickle-only weights the policy does not
    allow, GGUF-only weights without ``gguf_file``, no weights or no config.json at all.
    """
    names = sorted(set(names))
    if gguf_file is not None:
        return _select_gguf(names, gguf_file, where)
    has_safetensors = any(_is_weight(n, ".safetensors") for n in names)
    has_main_safetensors = any(_is_weight(n, ".safetensors") and n.startswith("model") for n in names)
    pickles = [n for n in names if _is_weight(n, PICKLE_SUFFIXES)]
    take: list[str] = []
    skipped: list[SkippedFile] = []
    for name in names:
        reason = _skip_reason(name, has_safetensors=has_safetensors, has_main_safetensors=has_main_safetensors,
                              allow_pickle=allow_pickle)
        if reason is None:
            take.append(name)
        else:
            skipped.append(SkippedFile(path=name, reason=reason))
    if not has_safetensors:
        _refuse_without_safetensors(names, pickles, where=where, allow_pickle=allow_pickle)
    if "config.json" not in take:
        raise UsageError(f"{where} has no config.json at its root",
                         hint="give a Hugging Face model repository or folder (config.json + *.safetensors)")
    return Selection(take=tuple(take), skipped=tuple(skipped))


def _select_gguf(names: list[str], gguf_file: str, where: str) -> Selection:
    if gguf_file not in names:
        found = ", ".join(n for n in names if n.endswith(".gguf")) or "none"
        raise UsageError(f"{where} has no file {gguf_file!r}", hint=f"GGUF files there: {found}")
    take = [gguf_file] + [n for n in names if n in CARD_FILES]
    skipped = [SkippedFile(path=n, reason=f"not needed: the model is imported from {gguf_file}")
               for n in names if n not in take]
    return Selection(take=tuple(take), skipped=tuple(skipped), gguf=gguf_file)


def _skip_reason(name: str, *, has_safetensors: bool, has_main_safetensors: bool, allow_pickle: bool) -> str | None:
    """None to take the file, else why it is left."""
    if name.startswith(CHAT_TEMPLATE_DIR) and name.endswith(".jinja") and name.count("/") == 1:
        return None
    if "/" in name:
        return "in a subfolder: crowguard takes the model at the repository root"
    if name.startswith("."):
        return "repository metadata"
    if name.endswith(".py"):
        return "Python code (custom model code) is never downloaded or run"
    if name.endswith(".safetensors"):
        if has_main_safetensors and name.startswith("consolidated"):
            return "original-format duplicate of the model*.safetensors weights"
        return None
    if name.endswith(".safetensors.index.json") or name in CONFIG_FILES | TOKENIZER_FILES | CARD_FILES:
        return None
    if name.endswith(PICKLE_SUFFIXES) or name.endswith(PICKLE_INDEX_SUFFIX):
        if has_safetensors:
            return "pickle-based weights, not needed: safetensors weights are present"
        return None if allow_pickle else "pickle-based weights: the policy does not allow pickle"
    if name.endswith(".gguf"):
        return "GGUF weights: pass --gguf with this name to import it instead"
    return "not on the allow-list of model files"


def _refuse_without_safetensors(names: list[str], pickles: list[str], *, where: str, allow_pickle: bool) -> None:
    if pickles and not allow_pickle:
        raise UsageError(
            f"{where} has only pickle-based weights ({', '.join(pickles)}), which the policy does not allow: "
            "loading a pickle can run arbitrary code",
            hint="ask the publisher for safetensors weights, or use a policy with allow_pickle: true "
                 "(the file scan must then clear every pickle)",
        )
    if pickles:
        return
    ggufs = [n for n in names if _is_weight(n, ".gguf")]
    if ggufs:
        raise UsageError(f"{where} has only GGUF weights ({', '.join(ggufs)})",
                         hint="pass --gguf NAME to import one of them into a safetensors folder")
    raise UsageError(f"{where} has no model weights crowguard can take (no *.safetensors at its root)",
                     hint="give a repository or folder with safetensors weights")


def _is_weight(name: str, suffixes: str | tuple[str, ...]) -> bool:
    return "/" not in name and not name.startswith(".") and name.endswith(suffixes)
