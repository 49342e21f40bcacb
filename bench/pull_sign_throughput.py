"""Throughput of pull (download + checksum) from a loopback hub stand-in, of the checksum alone, and of sign / verify.

Usage: python -m bench.pull_sign_throughput [--mib 256]
The weight file is random bytes (hashing cost does not depend on content). Prints one table row per
step. The pull row is bounded by the stand-in server (Python http.server) and the loopback link,
not by a real network; the checksum row is what pull adds on top of any download.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.harness import machine, table_head, table_row
from crowguard.pull import pull
from crowguard.pull.files import file_entry
from crowguard.sign import generate_keypair, sign_folder, verify_folder
from tests.pull.hub_server import FakeHub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256, help="size of the weight file in MiB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weights = os.urandom(args.mib << 20)
        files = {"config.json": json.dumps({"model_type": "llama"}).encode(), "model.safetensors": weights}
        hub = FakeHub()
        try:
            hub.add_repo("bench/model", files)
            rows = [_timed("pull (hub stand-in, sha256 checked)", args.mib,
                           lambda: pull("bench/model", root / "out", endpoint=hub.endpoint, cache_dir=root / "c"))]
        finally:
            hub.close()
        rows.append(_timed("checksum + format sniff alone (pull's own cost)", args.mib,
                           lambda: file_entry(root / "out" / "model.safetensors", "model.safetensors")))
        pair = generate_keypair(root / "k")
        rows.append(_timed("sign (model_signing, sha256)", args.mib, lambda: sign_folder(root / "out", pair.private)))
        rows.append(_timed("verify (model_signing, sha256)", args.mib,
                           lambda: verify_folder(root / "out", pair.public)))
    print("\n".join(table_head("step", "MiB", "seconds", "MiB/s")))
    for name, mib, seconds in rows:
        print(table_row(name, mib, f"{seconds:.2f}", f"{mib / seconds:.0f}"))
    print(f"\n{machine()}")


def _timed(name: str, mib: int, step) -> tuple[str, int, float]:  # noqa: ANN001
    started = time.perf_counter()
    step()
    return name, mib, time.perf_counter() - started


if __name__ == "__main__":
    main()
