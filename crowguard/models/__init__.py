"""Safe opening of Hugging Face model folders and prompt formatting, shared by every stage."""

from crowguard.models.folder import ModelFolder, inspect_folder
from crowguard.models.loading import LoadedModel, configure_threads, load_model, load_tokenizer, resolve_device
from crowguard.models.prompts import TEMPLATES, format_prompt

__all__ = [
    "TEMPLATES",
    "LoadedModel",
    "ModelFolder",
    "configure_threads",
    "format_prompt",
    "inspect_folder",
    "load_model",
    "load_tokenizer",
    "resolve_device",
]
