"""Issue 13.7: under allow_pickle, any import off the allow-list is critical; some findings fail every policy."""

import json
import pickle
from pathlib import Path

import pytest

from crowguard.report.model import Severity
from crowguard.scan.files.pickle_allowlist import SAFE_GLOBALS, is_allowed
from tests.scan import payloads
from tests.scan.conftest import policy, rules

POLICIES = ("default", "strict", "permissive")
UNLISTED_CALLS = [
    ("yaml", "unsafe_load"), ("jinja2", "Template"), ("pathlib", "Path"), ("numpy", "load"),
    ("torch.package", "PackageImporter"), ("pandas", "read_pickle"), ("ctypes", "CDLL"),
    ("torch.utils.cpp_extension", "load_inline"), ("torch.nn.modules.linear", "Linear"),
]


@pytest.mark.parametrize(("module", "name"), UNLISTED_CALLS)
def test_unlisted_import_fails_the_permissive_policy(tmp_path: Path, scan, module: str, name: str) -> None:
    payloads.write(tmp_path, "pytorch_model.bin", payloads.raw_import_pickle(module, name))
    stage = scan(tmp_path, "permissive")
    severities = {f.severity for f in stage.findings if f.rule_id.startswith("CG-PICKLE-") and "IMPORT" in f.rule_id}
    assert severities == {Severity.CRITICAL}, stage.findings
    assert not policy("permissive").verdict([stage]).passed


def test_tensor_and_array_pickles_pass_the_permissive_policy(tmp_path: Path, scan) -> None:
    import numpy as np

    payloads.clean_torch_checkpoints(tmp_path)
    payloads.write(tmp_path, "arrays.pkl", pickle.dumps({"a": np.arange(4, dtype=np.float32)}, protocol=2))
    payloads.write(tmp_path, "py2names.pkl", b"c__builtin__\nset\n(]tR.")  # Python 2 spelling of builtins.set
    stage = scan(tmp_path, "permissive")
    assert stage.findings == ()
    assert policy("permissive").verdict([stage]).passed


def test_python2_names_are_mapped_before_the_allow_list() -> None:
    assert is_allowed("__builtin__", "set") and not is_allowed("__builtin__", "eval")
    assert not is_allowed("builtins", "getattr") and not is_allowed("torch", "load")


def test_allow_list_is_torch_weights_only_plus_numpy_reconstruction() -> None:
    from torch._weights_only_unpickler import _get_allowed_globals

    torch_allowed = set(_get_allowed_globals())
    assert torch_allowed <= SAFE_GLOBALS
    assert SAFE_GLOBALS - torch_allowed == {"numpy.ndarray", "numpy.dtype", "numpy.core.multiarray._reconstruct",
                                           "numpy._core.multiarray._reconstruct", "numpy.core.multiarray.scalar",
                                           "numpy._core.multiarray.scalar"}


@pytest.mark.parametrize("policy_name", POLICIES)
def test_floor_findings_fail_every_shipped_policy(tmp_path: Path, scan, policy_name: str) -> None:
    payloads.write(tmp_path, "model.safetensors", payloads.safetensors_bytes({"a": {"dtype": "F32"}}, b""))
    payloads.write(tmp_path, "bin/tool", b"\x7fELF\x02\x01\x01" + bytes(120))
    index = {"weight_map": {"a": "../../etc/shadow"}}
    payloads.write(tmp_path, "model.safetensors.index.json", json.dumps(index))
    stage = scan(tmp_path, policy_name)
    floor = {f.rule_id: f.severity for f in stage.findings
             if f.rule_id in ("CG-PATH-ESCAPE", "CG-PATH-EXECUTABLE") or f.rule_id.startswith("CG-SAFETENSORS-")}
    assert {"CG-PATH-ESCAPE", "CG-PATH-EXECUTABLE"} <= set(floor) and len(floor) >= 3, stage.findings
    assert set(floor.values()) == {Severity.CRITICAL}
    assert not policy(policy_name).verdict([stage]).passed
    assert "CG-PATH-ESCAPE" in rules(stage)
