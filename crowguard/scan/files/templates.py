"""Chat-template oddities: oversized, obfuscated or sandbox-probing templates, and injected text.

Templates come from ``tokenizer_config.json`` (``chat_template``, a string or a list of named
templates), ``chat_template.json``, any ``*.jinja`` file and the metadata of GGUF files. Static
checks read the text; then each template is rendered (see ``template_render``) on probe
conversations whose contents are unique markers. Whatever natural-language text remains once the
markers, special tokens, tags and role words are removed is text the template adds: a default
system prompt is reported for review (LOW), a long addition that survives the user's own system
prompt is MEDIUM, and text added inside the conversation turns or text that reads like an
instruction override or a link is HIGH. The evidence quotes the added text exactly as rendered
(escaped, bounded); the word counts behind the severity are in the details.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crowguard.report.model import Finding, Severity
from crowguard.scan.files.gguf_header import gguf_chat_templates
from crowguard.scan.files.inventory import open_nofollow
from crowguard.scan.files.json_files import JsonFileError, load_json_file
from crowguard.scan.files.template_render import RenderUnavailable, render_templates
from crowguard.scan.interface import FileScanner, Inventory, ScannerError, ScanOutcome

if TYPE_CHECKING:
    from crowguard.policy import Policy

MAX_TEMPLATE_CHARS = 64 * 1024
MAX_RENDERED_CHARS = 1024 * 1024
QUOTE_CHARS = 300
PROBES = {"system": "cgprobesys7q", "user1": "cgprobeusr4k", "assistant": "cgprobeast9w", "user2": "cgprobeusr2m"}
_TURNS = [{"role": "user", "content": PROBES["user1"]}, {"role": "assistant", "content": PROBES["assistant"]},
          {"role": "user", "content": PROBES["user2"]}]
CONVERSATIONS = {
    "plain": _TURNS[:1],
    "with_system": [{"role": "system", "content": PROBES["system"]}, *_TURNS],
    "no_system": _TURNS,
}
_HIDDEN = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]")
_ESCAPE = re.compile(r"__(class|globals|builtins|subclasses|mro|base|bases|init|import|getattribute|dict|code|"
                     r"func|self|module|loader|spec|reduce|reduce_ex)__")
_OBFUSCATION = re.compile(r"\|\s*attr\b|\\x[0-9a-fA-F]{2}|\\u00[0-9a-fA-F]{2}|\\N\{|[A-Za-z0-9+/=]{200,}")
_TAGS = re.compile(r"<<?[^<>\s]{1,64}>>?|\[/?[A-Za-z_ ]{1,20}\]")
_ROLE_WORDS = {"user", "assistant", "system", "human", "instruction", "response", "input", "model", "bot", "gpt",
               "tool", "tools", "ipython", "inst", "sys", "im", "start", "end", "of", "turn", "header", "id", "eot"}
_WORD = re.compile(r"[^\W\d_]{2,}")
_OVERRIDE = re.compile(r"https?://|www\.|\bignore\b.{0,30}\b(previous|prior|above|earlier)\b|\bdisregard\b|"
                       r"\b(do not|don't|never)\s+(tell|reveal|mention|disclose)\b|\bsecret\b|\bpassword\b|"
                       r"\bapi[_ ]?key\b|\bjailbreak\b|\bpretend\b", re.I)
_TOKEN_VARIABLES = ("bos_token", "eos_token", "pad_token", "unk_token")
_REVIEW = "Read the template; keep it only if you accept the text it adds to every prompt."


@dataclass(frozen=True)
class Template:
    """One chat template and where it came from."""

    file: str
    location: str | None
    text: str


class ChatTemplateScanner(FileScanner):
    """Static checks, then a sandboxed render on probe conversations."""

    name = "chat-templates"

    def scan(self, folder: Path, inventory: Inventory, policy: Policy) -> ScanOutcome:
        templates, special, variables = collect_templates(inventory)
        findings = [f for t in templates for f in static_findings(t)]
        unique = {t.text: t for t in templates if len(t.text) <= MAX_RENDERED_CHARS
                  and not any(f.severity is Severity.CRITICAL for f in static_findings(t))}
        try:
            rendered = render_templates({str(i): t.text for i, t in enumerate(unique.values())}, CONVERSATIONS,
                                        variables)
        except RenderUnavailable as exc:
            raise ScannerError(str(exc)) from None
        for index, template in enumerate(unique.values()):
            findings += render_findings(template, rendered[str(index)], special)
        return ScanOutcome(findings=tuple(findings))


def collect_templates(inventory: Inventory) -> tuple[list[Template], list[str], dict[str, str]]:
    """Every chat template in the folder, the tokenizer's special tokens, and its token variables."""
    templates: list[Template] = []
    special: list[str] = []
    variables = {"bos_token": "<s>", "eos_token": "</s>"}
    for file in inventory.files:
        name = file.path.rsplit("/", 1)[-1]
        if name.endswith(".jinja"):
            try:
                with open_nofollow(file.absolute) as handle:
                    text = handle.read(MAX_RENDERED_CHARS + 1).decode("utf-8", "replace")
            except OSError as exc:
                raise ScannerError(f"cannot read {file.path}: {exc.strerror or exc}") from None
            templates.append(Template(file.path, None, text))
        elif file.format == "gguf":
            templates += [Template(file.path, key, text) for key, text in gguf_chat_templates(file)]
        elif name in ("tokenizer_config.json", "chat_template.json", "tokenizer.json"):
            try:
                data = load_json_file(file)
            except (JsonFileError, OSError):
                continue  # reported by the remote-code scanner, which parses every JSON file
            if isinstance(data, dict):
                templates += _templates_in(file.path, data.get("chat_template"))
                special += _special_tokens(data)
                if name == "tokenizer_config.json":
                    variables.update(_variables(data))
    return templates, special, variables


def static_findings(template: Template) -> list[Finding]:
    """What the text alone shows."""
    found = []
    text = template.text
    if len(text) > MAX_RENDERED_CHARS:
        found.append(_finding(template, "CG-TEMPLATE-OVERSIZED", Severity.HIGH, "chat template too large to examine",
                              f"more than {MAX_RENDERED_CHARS} characters: not rendered; real templates are a few KB"))
    elif len(text) > MAX_TEMPLATE_CHARS:
        found.append(_finding(template, "CG-TEMPLATE-OVERSIZED", Severity.MEDIUM, "oversized chat template",
                              f"{len(text)} characters (cap {MAX_TEMPLATE_CHARS}); real templates are a few KB"))
    if hidden := _HIDDEN.findall(text):
        codes = ", ".join(sorted({f"U+{ord(c):04X}" for c in hidden})[:5])
        found.append(_finding(template, "CG-TEMPLATE-HIDDEN-CHARS", Severity.HIGH,
                              "chat template holds invisible or bidirectional characters",
                              f"{len(hidden)} of them, e.g. {codes}"))
    if escape := _ESCAPE.search(text):
        found.append(_finding(template, "CG-TEMPLATE-SANDBOX-ESCAPE", Severity.CRITICAL,
                              "chat template reaches for Python internals",
                              f"it names {escape.group(0)}, used to break out of the Jinja sandbox"))
    if obfuscated := _OBFUSCATION.findall(text):
        found.append(_finding(template, "CG-TEMPLATE-OBFUSCATED", Severity.HIGH, "obfuscated chat template",
                              f"{len(obfuscated)} escape sequences, attr() lookups or encoded blobs"))
    return found


def render_findings(template: Template, result: dict[str, Any], special: list[str]) -> list[Finding]:
    """What rendering shows: refusals, limits, and the text the template adds."""
    if "limit" in result:
        return [_finding(template, "CG-TEMPLATE-RENDER-LIMIT", Severity.HIGH, "chat template exhausts the renderer",
                         result["limit"])]
    outputs = result["outputs"]
    errors = [o for o in outputs.values() if isinstance(o, dict)]
    if any(e["error"] == "SecurityError" for e in errors):
        message = next(e["message"] for e in errors if e["error"] == "SecurityError")
        return [_finding(template, "CG-TEMPLATE-SANDBOX-ESCAPE", Severity.CRITICAL,
                         "chat template tried an operation the sandbox forbids", message)]
    if isinstance(outputs["plain"], dict):
        error = outputs["plain"]
        return [_finding(template, "CG-TEMPLATE-INVALID", Severity.MEDIUM, "chat template fails on a plain prompt",
                         f"{error['error']}: {error['message']}")]
    default = _added_words(outputs["plain"].split(PROBES["user1"], 1)[0], special)
    full = next((o for k in ("with_system", "no_system") if isinstance(o := outputs[k], str)), "")
    head, _, turns = full.partition(PROBES["user1"])
    kept = _added_words(head, special) if PROBES["system"] in full else default
    in_turns = _added_words(turns, special)
    if not (default or kept or in_turns):
        return []
    if _OVERRIDE.search(_strip(full + outputs["plain"], special)) or len(in_turns) >= 3:
        severity, what = Severity.HIGH, "chat template injects text into every conversation"
    elif len(kept) >= 20:
        severity, what = Severity.MEDIUM, "chat template adds text even to prompts with their own system message"
    elif len(default) + len(kept) >= 3:
        severity, what = Severity.LOW, "chat template adds a default system prompt"
    else:
        return []
    plain_head = outputs["plain"].split(PROBES["user1"], 1)[0]
    segments = [(label, text) for label, text, words in (
        ("before the first user message", plain_head, default),
        ("before the first user message when a system message is given", head, kept if head != plain_head else []),
        ("inside the conversation turns", turns, in_turns)) if words]
    evidence = ("the template adds, verbatim (the probe messages shown as {system}, {user1}, {assistant}, {user2}): "
                + "; ".join(f"{label}: {quote_verbatim(text)}" for label, text in segments))
    return [_finding(template, "CG-TEMPLATE-INJECTED-TEXT", severity, what, evidence,
                     details={"default_prompt_words": len(default), "with_system_words": len(kept),
                              "in_turn_words": len(in_turns),
                              "added_words_summary": " ".join(dict.fromkeys(default + kept + in_turns))[:300]})]


def quote_verbatim(text: str, limit: int = QUOTE_CHARS) -> str:
    """``text`` exactly, probe markers named, escaped as a Python string literal, cut at ``limit`` characters."""
    for role, probe in PROBES.items():
        text = text.replace(probe, "{" + role + "}")
    quoted = repr(text[:limit])
    return quoted + (f" (and {len(text) - limit} more characters)" if len(text) > limit else "")


def _strip(text: str, special: list[str]) -> str:
    for token in sorted(special, key=len, reverse=True):
        text = text.replace(token, " ")
    for probe in PROBES.values():
        text = text.replace(probe, " ")
    return _TAGS.sub(" ", text)


def _added_words(text: str, special: list[str]) -> list[str]:
    return [w for w in _WORD.findall(_strip(text, special)) if w.lower() not in _ROLE_WORDS]


def _templates_in(path: str, value: Any) -> list[Template]:
    if isinstance(value, str):
        return [Template(path, "chat_template", value)]
    if isinstance(value, list):
        return [Template(path, f"chat_template[{item.get('name', i)}]", item["template"])
                for i, item in enumerate(value) if isinstance(item, dict) and isinstance(item.get("template"), str)]
    return []


def _special_tokens(data: dict[str, Any]) -> list[str]:
    values: list[Any] = [v for k, v in data.items() if k.endswith("_token")]
    values += data.get("additional_special_tokens") or []
    values += data.get("extra_special_tokens") or []
    values += list((data.get("added_tokens_decoder") or {}).values()) + list(data.get("added_tokens") or [])
    tokens = [v.get("content") if isinstance(v, dict) else v for v in values]
    return [t for t in tokens if isinstance(t, str) and t.strip()]


def _variables(data: dict[str, Any]) -> dict[str, str]:
    """The token variables templates read, as the tokenizer declares them."""
    variables = {}
    for name in _TOKEN_VARIABLES:
        value = data.get(name)
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str):
            variables[name] = value
    return variables


def _finding(template: Template, rule: str, severity: Severity, title: str, evidence: str,
             details: dict[str, Any] | None = None) -> Finding:
    return Finding(rule_id=rule, severity=severity, title=title, file=template.file, location=template.location,
                   evidence=evidence, remediation=_REVIEW if rule == "CG-TEMPLATE-INJECTED-TEXT" else
                   "Do not use this template: replace it with the architecture's reference template.",
                   details=details or {})
