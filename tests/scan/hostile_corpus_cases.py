"""The cases of the hostile corpus, by issue-13 item. Each is data: file names, bytes, expectations.

Names matter as much as content: a payload is written under the name a loader reads
(``pytorch_model.bin``) and under names no scanner keys on (``weights.dat``), since a loader
can be pointed at any file. Expectations are what the issue asks for, not what crowguard does today.
"""

from __future__ import annotations

import importlib.util
import os
import struct
from collections.abc import Callable
from pathlib import Path

from tests.scan import container_builders as cb
from tests.scan.hostile_case import BLOCK, EITHER, PASS, POLICIES, Case
from tests.scan.payloads import safetensors_bytes, valid_safetensors
from tests.scan.pickle_builder import Call, Global, Value, dumps

ECHO = "echo cg-corpus"
CLASSIC: dict[str, Value] = {
    "os-system": Call(Global("os", "system"), (ECHO,)),
    "posix-system": Call(Global("posix", "system"), (ECHO,)),
    "subprocess-popen": Call(Global("subprocess", "Popen"), (("sh", "-c", ECHO),)),
    "builtins-exec": Call(Global("builtins", "exec"), (f"import os; os.system('{ECHO}')",)),
    "builtins-eval": Call(Global("builtins", "eval"), (f"__import__('os').system('{ECHO}')",)),
    "getattr-chain": Call(Call(Global("builtins", "getattr"), (Call(Global("builtins", "__import__"), ("os",)),
                                                              "system")), (ECHO,)),
    "runpy-run-path": Call(Global("runpy", "run_path"), ("/tmp/cg-corpus.py",)),
    "webbrowser-open": Call(Global("webbrowser", "open"), ("http://example.invalid/cg-corpus",)),
    "importlib-import": Call(Global("importlib", "import_module"), ("os",)),
}
_TEMPLATE_RCE = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
# Calls that reach code or the file system through libraries on no deny-list (item 7).
UNLISTED: dict[str, Value] = {
    "yaml-unsafe-load": Call(Global("yaml", "unsafe_load"), (f"!!python/object/apply:os.system ['{ECHO}']",)),
    "jinja2-template": Call(Global("jinja2", "Template"), (_TEMPLATE_RCE,)),
    "pathlib-open": Call(Global("pathlib", "Path"), ("/tmp/cg-corpus-written",)),
    "numpy-load": Call(Global("numpy", "load"), ("/tmp/cg-corpus.npy", None, True)),
    "torch-package": Call(Global("torch.package", "PackageImporter"), ("/tmp/cg-corpus.pt",)),
    "pandas-read-pickle": Call(Global("pandas", "read_pickle"), ("/tmp/cg-corpus.pkl",)),
    "ctypes-cdll": Call(Global("ctypes", "CDLL"), ("/tmp/libcg-corpus.so",)),
    "cpp-extension-load-inline": Call(Global("torch.utils.cpp_extension", "load_inline"),
                                      ("cg", "int x = system(\"id\");")),
    "torch-load": Call(Global("torch", "load"), ("/tmp/cg-corpus.pt",)),
}
# Dotted names (a method reached without getattr) load only at protocol 4 and later.
UNLISTED_DOTTED: dict[str, Value] = {
    "jinja2-render": Call(Global("jinja2.environment", "Template.render"),
                          (Call(Global("jinja2", "Template"), (_TEMPLATE_RCE,)),)),
    "pathlib-write-text": Call(Global("pathlib", "Path.write_text"),
                               (Call(Global("pathlib", "Path"), ("/tmp/cg-corpus-bashrc",)), ECHO)),
}
Extra = Callable[[Path, Path], None]
NEUTRAL_NAME = "weights.dat"  # no scanner keys on this name; a loader pointed at it unpickles it


def system_call(protocol: int, **options: object) -> bytes:
    return dumps(CLASSIC["os-system"], protocol, **options)


def _weights(files: dict[str | bytes, bytes], cid: str, item: int, description: str, **kw: object) -> Case:
    """A case whose hostile file is the model's only weights."""
    return Case(id=cid, item=item, description=description, files=files, with_weights=False, **kw)  # type: ignore[arg-type]


def baseline() -> list[Case]:
    found = []
    for name, payload in CLASSIC.items():
        for protocol in range(6):
            found.append(_weights({"pytorch_model.bin": dumps(payload, protocol)}, f"b-{name}-p{protocol}", 0,
                                  f"{name} at protocol {protocol} as pytorch_model.bin"))
        found.append(_weights({"pytorch_model.bin": cb.torch_zip(dumps(payload, 2))}, f"b-{name}-torchzip", 0,
                              f"{name} in a torch.save-style zip"))
    found.append(_weights({"pytorch_model.bin": system_call(0, call_opcode="inst")}, "b-os-system-inst", 0,
                          "os.system through INST at protocol 0"))
    found.append(_weights({"pytorch_model.bin": system_call(1, call_opcode="obj")}, "b-os-system-obj", 0,
                          "os.system through OBJ at protocol 1"))
    return found


def unrecognised_pickles() -> list[Case]:
    found = []
    for payload in ("os-system", "builtins-exec"):
        for protocol in (2, 3, 4, 5):
            stream = dumps(CLASSIC[payload], protocol, proto_opcode=False)
            for name in ("pytorch_model.bin", NEUTRAL_NAME):
                found.append(_weights({name: stream}, f"u-{payload}-noproto-p{protocol}-{name.split('.')[-1]}", 6,
                                      f"{payload}, protocol {protocol} opcodes without PROTO, as {name}"))
    long_text = "A" * 70_000
    for protocol in (0, 2, 4):
        stream = dumps(long_text, protocol)[:-1] + b"0" + system_call(protocol)[2 if protocol >= 2 else 0:]
        for name in ("pytorch_model.bin", NEUTRAL_NAME):
            found.append(_weights({name: stream}, f"u-leading-string-p{protocol}-{name.split('.')[-1]}", 6,
                                  f"os.system behind a 70 kB leading string (protocol {protocol}), as {name}"))
    for wrapper, compress in cb.WRAPPERS.items():
        for name in ("pytorch_model.bin", "model.joblib", NEUTRAL_NAME):
            found.append(_weights({name: compress(system_call(4))}, f"u-{wrapper}-{name.split('.')[-1]}", 6,
                                  f"os.system pickle in a {wrapper} wrapper, as {name}"))
    found += [
        _weights({"pytorch_model.bin": cb.tar_bytes({"data.pkl": system_call(2)})}, "u-tar-bin", 6,
                 "os.system pickle inside a tar, as pytorch_model.bin"),
        _weights({"pytorch_model.bin": cb.legacy_torch_tar(system_call(2))}, "u-legacy-torch-tar", 6,
                 "PyTorch's legacy tar checkpoint with the payload in its 'pickle' member"),
        _weights({"model.joblib": system_call(4) + bytes(64)}, "u-joblib", 6,
                 "a joblib-style file: pickle then raw array bytes"),
        _weights({"model.joblib": dumps(CLASSIC["os-system"], 2, proto_opcode=False) + bytes(64)},
                 "u-joblib-noproto", 6, "a joblib-style file whose pickle has no PROTO"),
        _weights({"weights.npy": cb.npy_object(system_call(3))}, "u-npy-object", 6,
                 "an object-dtype .npy: numpy.load(allow_pickle=True) unpickles os.system"),
        _weights({"weights.npy": cb.npy_object(system_call(3), version=2)}, "u-npy-object-v2", 6,
                 "an object-dtype .npy, format version 2"),
        _weights({"weights.npz": cb.zip_bytes({"arr_0.npy": cb.npy_object(system_call(3))})}, "u-npz-object", 6,
                 "an .npz whose member is an object-dtype array"),
        _weights({"pytorch_model.bin": cb.zip_bytes({"inner.zip": cb.torch_zip(system_call(2))})}, "u-zip-in-zip",
                 6, "a torch zip stored inside another zip"),
        _weights({"pytorch_model.bin": cb.zip_bytes({"archive/data.pkl": cb.torch_zip(system_call(2))})},
                 "u-zip-as-data-pkl", 6, "a zip whose data.pkl is itself a torch zip"),
        _weights({"pytorch_model.bin": cb.torch_zip(system_call(0), deflate=True)}, "u-torchzip-deflate-p0", 6,
                 "torch zip, data.pkl deflated and protocol 0"),
        _weights({"pytorch_model.bin": cb.torch_zip(dumps(CLASSIC["os-system"], 2, proto_opcode=False))},
                 "u-torchzip-noproto", 6, "torch zip whose data.pkl has no PROTO"),
        _weights({"pytorch_model.bin": cb.torch_zip(system_call(2), pickle_name="data")}, "u-torchzip-member-name",
                 6, "torch zip with the pickle as 'archive/data' (no .pkl suffix)"),
        _weights({"model.pt": cb.torchscript_zip(dumps(CLASSIC["os-system"], 0))}, "u-torchscript-constants", 6,
                 "TorchScript-style zip: a protocol-0 constants.pkl"),
    ]
    return found


def permissive_bypasses() -> list[Case]:
    found = []
    for name, payload in UNLISTED.items():
        for protocol in (2, 4):
            found.append(_weights({"pytorch_model.bin": dumps(payload, protocol)}, f"a-{name}-p{protocol}", 7,
                                  f"{name} at protocol {protocol}"))
        found.append(_weights({"pytorch_model.bin": cb.torch_zip(dumps(payload, 2))}, f"a-{name}-torchzip", 7,
                              f"{name} in a torch zip"))
    for name, payload in UNLISTED_DOTTED.items():
        for protocol in (4, 5):
            found.append(_weights({"pytorch_model.bin": dumps(payload, protocol)}, f"a-{name}-p{protocol}", 7,
                                  f"{name} (a dotted import) at protocol {protocol}"))
    elf = b"\x7fELF\x02\x01\x01" + bytes(57)
    found += [
        Case("a-elf", 7, "an ELF executable beside the weights", {"libcg.so": elf}),
        Case("a-script", 7, "a #! script beside the weights", {"setup.sh": b"#!/bin/sh\necho cg-corpus\n"}),
        _weights({"model.safetensors": safetensors_bytes({"a": {"dtype": "F32", "shape": [4],
                                                               "data_offsets": [0, 16]}}, bytes(8))},
                 "a-safetensors-short", 7, "safetensors whose tensor runs past the end of the file"),
        _weights({"model.safetensors": safetensors_bytes({"a": {"dtype": "F32", "shape": [2],
                                                               "data_offsets": [0, 8]}}, bytes(8) + b"junk" * 8)},
                 "a-safetensors-slack", 7, "safetensors with bytes no tensor accounts for"),
        _weights({"model.safetensors": safetensors_bytes(b'{"a": {"dtype": "F32", "shape": [1], '
                                                         b'"data_offsets": [0, 4]}, "a": {}}', bytes(4))},
                 "a-safetensors-dup-key", 7, "safetensors header with a duplicate key"),
    ]
    return found


def polyglots() -> list[Case]:
    member = {"archive/data.pkl": system_call(2), "archive/version": b"3\n"}
    return [
        _weights({"model.safetensors": cb.safetensors_zip_polyglot(member)}, "g-safetensors-zip", 4,
                 "valid safetensors whose data area is a torch zip (torch.load runs it)"),
        _weights({"pytorch_model.bin": cb.safetensors_zip_polyglot(member)}, "g-safetensors-zip-bin", 4,
                 "the same polyglot named pytorch_model.bin"),
        _weights({"model.safetensors": cb.safetensors_then(cb.torch_zip(system_call(2)))},
                 "g-safetensors-trailing-zip", 4, "safetensors with a torch zip after its data area"),
        _weights({"model.safetensors": system_call(2)}, "g-pickle-named-safetensors", 4,
                 "a payload pickle named model.safetensors"),
        _weights({"model.safetensors": cb.torch_zip(system_call(2))}, "g-zip-named-safetensors", 4,
                 "a torch zip named model.safetensors"),
        _weights({"model.gguf": cb.gguf_bytes([_arch()]) + cb.torch_zip(system_call(2))}, "g-gguf-zip", 4,
                 "a GGUF header followed by a torch zip"),
        _weights({"pytorch_model.bin": b"\x93NUMPY" + cb.torch_zip(system_call(2))}, "g-npy-magic-zip", 4,
                 "a torch zip behind a NumPy magic"),
        _weights({"tokenizer.json": b'{"a": 1}' + cb.torch_zip(system_call(2))}, "g-json-zip", 4,
                 "JSON followed by a torch zip, named tokenizer.json"),
    ]


def ambiguous_zips() -> list[Case]:
    benign = cb.torch_zip(b"\x80\x02}q\x00.")
    hostile = cb.torch_zip(system_call(2))
    local_header = hostile[: hostile.index(b"PK\x01\x02")]
    renamed = cb.rename_in_central_directory(cb.zip_bytes({"archive/data.pkl": system_call(2)}),
                                             "archive/data.pkl", "archive/version1")
    duplicate = cb.zip_bytes({"archive/data.pkl": system_call(2)}).replace(b"PK\x05\x06", b"PK\x05\x07")
    return [
        _weights({"pytorch_model.bin": hostile + benign}, "z-two-archives", 5,
                 "a hostile torch zip followed by a benign one (two end-of-central-directory records)"),
        _weights({"pytorch_model.bin": local_header + cb.zip_bytes(
            {"archive/data.pkl": b"\x80\x02}q\x00.", "archive/version": b"3\n"}, absolute=False)},
            "z-prepended-local-entries", 5,
            "hostile local entries before a benign zip whose offsets are relative (Python adjusts, miniz does not)"),
        _weights({"pytorch_model.bin": system_call(2) + benign}, "z-prepended-pickle", 5,
                 "a pickle prepended to a benign zip"),
        _weights({"pytorch_model.bin": cb.hidden_local_entry(benign, "archive/data.pkl", system_call(2))},
                 "z-hidden-local-entry", 5, "a local entry that the central directory does not list"),
        _weights({"pytorch_model.bin": renamed}, "z-cd-local-mismatch", 5,
                 "central directory and local header name the pickle differently"),
        _weights({"pytorch_model.bin": cb.rename_in_local_header(cb.zip_bytes({"archive/data.pkl": system_call(2)}),
                                                                 "archive/data.pkl", "archive/version1")},
                 "z-local-cd-mismatch", 5, "the central directory names data.pkl, the local header another name"),
        _weights({"pytorch_model.bin": _duplicate_members()}, "z-duplicate-member", 5,
                 "two members named archive/data.pkl, hostile first"),
        _weights({"pytorch_model.bin": duplicate + benign}, "z-broken-first-eocd", 5,
                 "a hostile zip with a damaged end record, then a benign zip"),
    ]


def _duplicate_members() -> bytes:
    import io
    import warnings
    import zipfile

    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # "Duplicate name" is the point
        archive.writestr(cb.fixed_time("archive/data.pkl"), system_call(2))
        archive.writestr(cb.fixed_time("archive/data.pkl"), b"\x80\x02}q\x00.")
        archive.writestr(cb.fixed_time("archive/version"), b"3\n")
    return buffer.getvalue()


def links_and_paths() -> list[Case]:
    def link(name: str, target: str) -> Extra:
        return lambda folder, outside: os.symlink(target.format(outside=outside), folder / name)

    def hard_link(name: str, source: str) -> Extra:
        return lambda folder, outside: os.link(outside / source, folder / name)

    def link_dir(folder: Path, outside: Path) -> None:
        os.symlink(outside, folder / "extra", target_is_directory=True)

    clean = valid_safetensors()
    index = '{{"weight_map": {{"a": "{shard}"}}}}'
    return [
        Case("l-symlink-secret", 3, "a link to a file outside the folder",
             extra=link("notes.txt", "{outside}/secret.txt")),
        Case("l-symlink-relative", 3, "a relative link climbing out of the folder",
             extra=link("tokenizer.model", "../_outside/secret.txt")),
        Case("l-symlink-etc", 3, "a link to /etc/hostname", extra=link("vocab.txt", "/etc/hostname")),
        Case("l-symlink-weights", 3, "the weights are a link to safetensors outside", with_weights=False,
             extra=link("model.safetensors", "{outside}/model.safetensors")),
        Case("l-symlink-pickle", 3, "pytorch_model.bin links to a payload outside",
             extra=link("pytorch_model.bin", "{outside}/payload.bin")),
        Case("l-symlink-dangling", 3, "a link to nothing", extra=link("special_tokens_map.json", "/nonexistent/x")),
        Case("l-symlink-dir", 3, "a linked folder outside", extra=link_dir),
        Case("l-hardlink-secret", 3, "a hard link to a file outside the folder",
             extra=hard_link("notes.txt", "secret.txt")),
        Case("l-hardlink-weights", 3, "the weights are a hard link to a file outside", with_weights=False,
             extra=hard_link("model.safetensors", "model.safetensors")),
        Case("l-backslash-climb", 3, "a file named ..\\..\\model.safetensors", {"..\\..\\model.safetensors": clean}),
        Case("l-backslash-drive", 3, "a file named C:\\Windows\\cg.safetensors",
             {"C:\\Windows\\cg.safetensors": clean}),
        Case("l-index-climb", 3, "an index naming ../../x.safetensors",
             {"model.safetensors.index.json": index.format(shard="../../x.safetensors").encode()}),
        Case("l-index-absolute", 3, "an index naming /etc/passwd",
             {"model.safetensors.index.json": index.format(shard="/etc/passwd").encode()}),
        Case("l-index-backslash", 3, "an index naming ..\\\\..\\\\x",
             {"model.safetensors.index.json": index.format(shard="..\\\\..\\\\x.safetensors").encode()}),
    ]


def _arch() -> tuple[str, int, bytes]:
    return ("general.architecture", cb.GGUF_STRING, cb.gguf_string("llama"))


def gguf_cases() -> list[Case]:
    template = ("tokenizer.chat_template", cb.GGUF_STRING,
                cb.gguf_string("{{ ''.__class__.__mro__[1].__subclasses__() }}{{ messages[0]['content'] }}"))
    lenient = {"default": BLOCK, "strict": BLOCK, "permissive": EITHER}
    huge_string = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + cb.gguf_string("general.architecture") + \
        struct.pack("<I", cb.GGUF_STRING) + struct.pack("<Q", 2**62) + b"llama"
    return [
        _weights({"model.gguf": cb.gguf_bytes([_arch(), template])}, "f-gguf-template-escape", 8,
                 "GGUF whose chat template probes the Jinja sandbox"),
        _weights({"model.gguf": cb.gguf_bytes([_arch()])}, "f-gguf-arch-only", 8,
                 "a GGUF of a few dozen bytes: only general.architecture", expect=lenient),
        _weights({"model.gguf": cb.gguf_bytes([_arch(), ("x.nested", cb.GGUF_ARRAY, cb.gguf_nested_array(5000))])},
                 "f-gguf-nested-arrays", 8, "GGUF with arrays nested 5000 deep", expect=lenient),
        _weights({"model.gguf": cb.gguf_bytes([_arch()], tensor_count=2**40)}, "f-gguf-tensor-count", 8,
                 "GGUF declaring 2**40 tensors", expect=lenient),
        _weights({"model.gguf": cb.gguf_bytes([_arch()], kv_count=2**40)}, "f-gguf-kv-count", 8,
                 "GGUF declaring 2**40 metadata entries", expect=lenient),
        _weights({"model.gguf": huge_string}, "f-gguf-string-length", 8, "GGUF with a 2**62-byte string length",
                 expect=lenient),
    ]


def names_and_configs() -> list[Case]:
    either = dict.fromkeys(POLICIES, EITHER)
    no_weights = {"default": BLOCK, "strict": BLOCK, "permissive": EITHER}
    auto_map = {"AutoModelForCausalLM": "modeling_cg.CgForCausalLM"}
    import json

    def config(data: object) -> dict[str | bytes, bytes]:
        return {"config.json": json.dumps(data).encode()}

    return [
        Case("n-non-utf8-pickle", 11, "a payload pickle under a non-UTF-8 name",
             {b"model\xff\xfe.bin": system_call(2)}),
        Case("n-non-utf8-clean", 11, "clean safetensors under a non-UTF-8 name", {b"extra\xff.safetensors":
                                                                                   valid_safetensors()}, expect=either),
        Case("n-non-utf8-dir", 11, "a payload in a folder with a non-UTF-8 name", {b"sub\xff/pytorch_model.bin":
                                                                                     system_call(2)}),
        Case("n-config-only", 11, "config.json and nothing else", with_weights=False, expect=no_weights),
        Case("n-tokenizer-only", 11, "config and tokenizer files, no weights", {"tokenizer_config.json": b"{}",
             "special_tokens_map.json": b"{}"}, with_weights=False, expect=no_weights),
        Case("n-automap-nested", 11, "auto_map under text_config", with_config=False,
             files=config({"model_type": "llama", "text_config": {"auto_map": auto_map}})),
        Case("n-automap-deep", 11, "auto_map three levels down", with_config=False,
             files=config({"model_type": "llama", "a": {"b": {"c": {"auto_map": auto_map}}}})),
        Case("n-automap-in-list", 11, "auto_map inside a list", with_config=False,
             files=config({"model_type": "llama", "sub_configs": [{"auto_map": auto_map}]})),
        Case("n-automap-tokenizer", 11, "auto_map nested in tokenizer_config.json",
             {"tokenizer_config.json": json.dumps({"extra": {"auto_map": {"AutoTokenizer": ["t.Tok", None]}}})
              .encode()}),
    ]


def controls() -> list[Case]:
    clean = dict.fromkeys(POLICIES, PASS)
    shards: dict[str | bytes, bytes] = {
        "model-00001-of-00002.safetensors": valid_safetensors(),
        "model-00002-of-00002.safetensors": valid_safetensors(),
        "model.safetensors.index.json": b'{"weight_map": {"a": "model-00001-of-00002.safetensors", '
                                        b'"b": "model-00002-of-00002.safetensors"}}'}
    found = [Case("c-clean-safetensors", 100, "a clean safetensors model", expect=clean),
             Case("c-clean-sharded", 100, "clean safetensors in two shards with an index", shards, expect=clean,
                  with_weights=False)]
    if importlib.util.find_spec("torch") is not None:
        accepted_pickle = {"default": BLOCK, "strict": BLOCK, "permissive": PASS}
        found += [Case("c-torch-save-zip", 100, "torch.save of a plain state dict", with_weights=False,
                       expect=accepted_pickle, extra=_torch_save(legacy=False)),
                  Case("c-torch-save-legacy", 100, "torch.save of a plain state dict, legacy format",
                       with_weights=False, expect=accepted_pickle, extra=_torch_save(legacy=True))]
    return found


def _torch_save(*, legacy: bool) -> Extra:
    def write(folder: Path, outside: Path) -> None:
        import torch

        state = {"model.embed.weight": torch.zeros(4, 2), "lm_head.bias": torch.ones(2, dtype=torch.bfloat16)}
        torch.save(state, folder / "pytorch_model.bin", _use_new_zipfile_serialization=not legacy)

    return write


def build_cases() -> list[Case]:
    return (baseline() + links_and_paths() + polyglots() + ambiguous_zips() + unrecognised_pickles()
            + permissive_bypasses() + gguf_cases() + names_and_configs() + controls())
