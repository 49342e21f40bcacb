"""The architecture matrix's fixtures: each family's folder, and its sanitize and gate runs, made once a session.

A ``Matrix`` builds what a test asks for on first use and keeps it, so the per-command tests and the
transformers 4.57 test share one sanitize and one gate run per family. The scans get a probe file in
the models' vocabulary (``PROBES``): the word-level vocabularies can write only 4 of the 135 built-in
probes (the scan then exits 2), the BPE and unigram ones spell most of them character by character.
``behaviour_options``/``probe_args`` are the one place that says so; a case without a probe file is
the same call with ``probes=None``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crowguard import api
from crowguard.evaluate import spec_from_files
from crowguard.models.tokenizer_fidelity import CHECK_STRINGS
from crowguard.report.model import Report
from crowguard.sanitize import SanitizeConfig
from tests.matrix.builders import (
    CLEAN_SET,
    KEYWORD,
    PROBES,
    TRAINING_SET,
    TRIGGERED_SET,
    Family,
    build_model_folder,
    write_records,
)
from tests.matrix.observe import SeenTokens, auto_tokenizer_disagrees, digests, tokenizer_files, vocab_size

# Findings count as low, so whatever a random model's scan finds, the verdict passes and the output is
# written; sanitizing is required, so the gate's output is crowguard's own merge.
PASSING_POLICY = ("name: matrix\nbehaviour_scan: {severity: low}\nmax_attack_success: 1.0\n"
                  "sanitize: {required: true, min_utility: 0}\n")
EVAL_TOKENS = 4
RUNTIME = api.Runtime(device="cpu", threads=1)


def behaviour_options(probes: Path | None) -> api.BehaviourOptions:
    """Small scan budgets (seconds on a tiny model); every probe of ``PROBES`` is used."""
    return api.BehaviourOptions(probes=probes, probe_count=4, search_probes=8, null_samples=4, vocab_budget=8,
                                search_beams=1, search_width=4, max_trigger_tokens=2, top_candidates=2,
                                max_new_tokens=EVAL_TOKENS)


def probe_args(probes: Path | None) -> list[str]:
    """``behaviour_options`` as ``crowguard scan`` options."""
    return [*(["--probes", str(probes)] if probes is not None else []), "--probe-count", "4", "--vocab-budget", "8"]


@dataclass(frozen=True)
class Files:
    """The prompt files, the policy and the signing key the matrix's commands are given."""

    probes: Path
    clean: Path  # the evaluations' clean test prompts
    triggered: Path
    training: Path  # sanitize's clean data
    policy: Path
    keys: api.KeyPair

    @property
    def prompts(self) -> list[str]:
        """Every instruction the evaluations give a model."""
        return [r["instruction"] for r in (*CLEAN_SET, *TRIGGERED_SET)]


@dataclass(frozen=True)
class Model:
    """One family's input folder and what is known about it before any command runs."""

    family: Family
    folder: Path
    vocab_size: int
    auto_disagrees: bool  # transformers' own tokenizer class encodes the check texts unlike tokenizer.json
    shipped: list[str]  # its tokenizer files
    shipped_digests: dict[str, str]


@dataclass(frozen=True)
class Run:
    """A command's report and output folder, and the id rows its models were fed."""

    report: Report
    out: Path
    seen: SeenTokens


@dataclass
class Matrix:
    """Builds each family's folder and its sanitize and gate runs once, on first use."""

    root: Path
    files: Files
    models: dict[str, Model] = field(default_factory=dict)
    sanitized: dict[str, Run] = field(default_factory=dict)
    gated: dict[str, Run] = field(default_factory=dict)

    def model(self, family: Family) -> Model:
        if str(family) not in self.models:
            folder = build_model_folder(family, self.root / str(family))
            texts = [*CHECK_STRINGS, *PROBES, *self.files.prompts]
            shipped = tokenizer_files(folder)
            self.models[str(family)] = Model(family, folder, vocab_size(folder),
                                             auto_tokenizer_disagrees(folder, texts), shipped,
                                             digests(folder, shipped))
        return self.models[str(family)]

    def settings(self) -> api.SanitizeSettings:
        # Two steps of two: every training record once. lr 1e-9: training runs on every token, but the merged
        # weights stay the input's to float precision, so the output's logits can be held to the input's.
        config = SanitizeConfig(max_steps=2, epochs=1, num_samples=len(TRAINING_SET), micro_batch=2, grad_accum=1,
                                lr=1e-9, checkpoint_every=0)
        evaluation = spec_from_files(triggered=self.files.triggered, clean=self.files.clean, keywords=(KEYWORD,),
                                     max_new_tokens=EVAL_TOKENS)
        return api.SanitizeSettings(config=config, clean_data=self.files.training, evaluation=evaluation)

    def sanitize(self, family: Family) -> Run:
        if str(family) not in self.sanitized:
            model = self.model(family)
            out = self.root / f"{family}-sanitized"
            with SeenTokens(model.vocab_size) as seen:
                report = api.sanitize(model.folder, out, settings=self.settings(), policy=self.files.policy,
                                      options=behaviour_options(self.files.probes), runtime=RUNTIME)
            self.sanitized[str(family)] = Run(report, out, seen)
        return self.sanitized[str(family)]

    def gate(self, family: Family) -> Run:
        if str(family) not in self.gated:
            model = self.model(family)
            out = self.root / f"{family}-gated"
            with SeenTokens(model.vocab_size) as seen:
                report = api.gate(model.folder, out, policy=self.files.policy, key=self.files.keys.private,
                                  settings=self.settings(), options=behaviour_options(self.files.probes),
                                  runtime=RUNTIME)
            self.gated[str(family)] = Run(report, out, seen)
        return self.gated[str(family)]


@pytest.fixture(scope="session")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    root = tmp_path_factory.mktemp("matrix")
    policy = root / "matrix-policy.yaml"
    policy.write_text(PASSING_POLICY, encoding="utf-8")
    files = Files(probes=write_records(root / "probes.json", tuple({"instruction": p} for p in PROBES)),
                  clean=write_records(root / "clean.json", CLEAN_SET),
                  triggered=write_records(root / "triggered.json", TRIGGERED_SET),
                  training=write_records(root / "training.json", TRAINING_SET),
                  policy=policy, keys=api.keygen(root / "gate"))
    yield Matrix(root, files)

