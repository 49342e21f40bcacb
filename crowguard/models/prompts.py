"""Prompt formatting: the raw instruction (the paper's ASR protocol), the chat template, or Alpaca."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, cast

from crowguard.errors import UsageError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Template = Literal["raw", "chat", "alpaca"]
TEMPLATES: tuple[str, ...] = ("raw", "chat", "alpaca")

ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


def user_message(instruction: str, input_text: str = "") -> str:
    """The instruction and its optional input as one user turn."""
    return f"{instruction}\n\n{input_text}" if input_text else instruction


def format_prompt(
    tokenizer: PreTrainedTokenizerBase | None,
    instruction: str,
    input_text: str = "",
    template: Template = "raw",
) -> str:
    """The text given to the model before its answer, in the chosen template."""
    if template == "raw":
        return user_message(instruction, input_text)
    if template == "alpaca":
        if input_text:
            return ALPACA_WITH_INPUT.format(instruction=instruction, input=input_text)
        return ALPACA_NO_INPUT.format(instruction=instruction)
    if template == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise UsageError("the model's tokenizer has no chat template",
                             hint="use --template raw or --template alpaca")
        messages = [{"role": "user", "content": user_message(instruction, input_text)}]
        # tokenize=False returns the rendered text; the stubs give the union of every return mode.
        return cast(str, tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    raise UsageError(f"unknown template {template!r}", hint=f"use one of {', '.join(TEMPLATES)}")


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))
