"""Random and truncated bytes under every name a scanner looks at: findings, never a crash.

Every scanner runs on every case (the stage runs them all); a scanner that raised would turn the
stage to failed with an error, which these tests forbid. Seeded, so a failure replays.
"""

import json
import random
from pathlib import Path

import pytest

from tests.scan import payloads

NAMES = ("model.safetensors", "pytorch_model.bin", "model.pt", "config.json", "model.safetensors.index.json",
         "weights.pkl", "notes.txt")


def _sources(tmp_path: Path) -> list[bytes]:
    zipped = payloads.hand_zip_with_payload(tmp_path / "source.zip").read_bytes()
    (tmp_path / "source.zip").unlink()
    index = json.dumps({"weight_map": {"a": "model.safetensors"}}).encode()
    return [payloads.valid_safetensors(), payloads.system_pickle(), payloads.truncated_pickle(), zipped, index,
            payloads.DYNAMIC_IMPORT]


def _mutate(rng: random.Random, sources: list[bytes]) -> bytes:
    choice = rng.random()
    if choice < 0.35:
        return rng.randbytes(rng.randint(0, 3000))
    source = rng.choice(sources)
    data = bytearray(source[: rng.randint(0, len(source))])
    if choice > 0.7 and data:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


@pytest.mark.parametrize("seed", range(16))
def test_random_and_truncated_bytes(tmp_path: Path, scan, seed: int) -> None:
    rng = random.Random(seed)
    folder = tmp_path / "model"
    sources = _sources(tmp_path)
    written = {name: payloads.write(folder, name, _mutate(rng, sources)).read_bytes() for name in NAMES}
    stage = scan(folder, "permissive")
    assert stage.status == "completed" and stage.errors == (), stage.errors
    if written["model.safetensors"] != payloads.valid_safetensors():
        assert any(f.file == "model.safetensors" for f in stage.findings)


@pytest.mark.parametrize("seed", range(3))
def test_random_templates_and_tokenizer_configs(tmp_path: Path, scan, seed: int) -> None:
    rng = random.Random(1000 + seed)
    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    cut = template[: rng.randint(0, len(template))] + rng.randbytes(40).decode("latin-1")
    payloads.write(tmp_path, "chat_template.jinja", cut)
    payloads.write(tmp_path, "tokenizer_config.json", rng.randbytes(rng.randint(0, 200)))
    stage = scan(tmp_path)
    assert stage.status == "completed" and stage.errors == (), stage.errors
