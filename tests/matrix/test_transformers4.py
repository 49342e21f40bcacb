"""The matrix's sanitized and gated folders read the same in transformers 4.57 as crowguard reads them in 5.

4.57 runs in its own interpreter (``bench/compat_transformers4.py``'s venv, or ``$CROWGUARD_TF4_PYTHON``),
one process for every folder: its ``AutoTokenizer`` must give the shipped ``tokenizer.json``'s ids and
the same chat text, and its model the same logits on those ids as transformers 5 computes here.
"""

from __future__ import annotations

import pytest

from bench.compat_transformers4 import TF4_ENV, check_texts, compare, probe, reference, tf4_python
from tests.matrix.builders import FAMILIES
from tests.matrix.conftest import Matrix

pytestmark = pytest.mark.slow


def test_outputs_read_the_same_in_transformers_457(matrix: Matrix) -> None:
    python = tf4_python()
    if python is None:
        pytest.skip(f"no transformers 4.57 interpreter: set {TF4_ENV}, or run python -m bench.compat_transformers4 "
                    "once (it creates bench/.cache/venv-tf457)")
    folders = {f"{family} {command}": run.out for family in FAMILIES
               for command, run in (("sanitize", matrix.sanitize(family)), ("gate", matrix.gate(family)))}
    references, jobs = {}, []
    for name, folder in folders.items():
        texts = check_texts(folder)
        references[name] = reference(folder, texts)
        jobs.append({"folder": str(folder), "texts": texts, "ids": references[name]["ids"], "special_tokens": False})
    results = dict(zip(folders, probe(python, jobs)))
    for name, got in results.items():
        assert got.get("version", "").startswith("4.57"), (name, got)
        row = compare(references[name], got)
        assert row["loads"] and row["same_ids"] and row["same_chat"], (name, row)
        assert row["max_abs_logit_diff"] < 1e-5 and not got["missing_keys"], (name, row, got["missing_keys"])
