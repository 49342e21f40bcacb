"""Is the file scan bound by reading speed? Time it against sha256sum and cat on large files.

Generates --size-gb of safetensors in --shards files (valid headers, tensors filled from a repeated
random block), then times, alternately and --repeats times each: ``cat FILES > /dev/null`` (raw
read), ``sha256sum FILES``, and crowguard's whole file scan of the folder (inventory with streamed
sha256, format sniffing, safetensors header validation, every other scanner). "cold" runs drop the
files' pages from the page cache first (posix_fadvise DONTNEED, no root needed; a VM's host may
still cache them); "warm" runs read from the cache, so they measure hashing alone. Prints MB/s
(10^6 bytes). The files go to a fresh folder under --dir (default ``bench/.cache/hash-speed``) and
are deleted at the end unless --keep.

    .venv/bin/python -m bench.hash_speed --size-gb 4 --shards 1 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import cache_path, machine

BLOCK = 64 * 1024 * 1024


def write_safetensors(path: Path, size: int, tensors: int = 8) -> int:
    """A valid safetensors file of about ``size`` bytes; returns its exact size."""
    per_tensor = size // tensors // 4 * 4
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    for i in range(tensors):
        header[f"layer.{i}.weight"] = {"dtype": "F32", "shape": [per_tensor // 4],
                                        "data_offsets": [i * per_tensor, (i + 1) * per_tensor]}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    block = os.urandom(BLOCK)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(raw)) + raw)
        remaining = per_tensor * tensors
        while remaining:
            chunk = block[: min(BLOCK, remaining)]
            out.write(chunk)
            remaining -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return path.stat().st_size


def drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def time_command(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def time_crowguard(folder: Path) -> float:
    from crowguard.policy import builtin_policy, load_policy
    from crowguard.scan.files.stage import run_file_scan

    policy = load_policy(builtin_policy("default"))
    started = time.perf_counter()
    stage = run_file_scan(folder, policy).stage
    elapsed = time.perf_counter() - started
    if stage.status != "completed" or stage.findings:
        raise SystemExit(f"unexpected scan result: {stage.status} {stage.errors} {stage.findings}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=4.0, help="file size in GiB (default 4)")
    parser.add_argument("--shards", type=int, default=1, help="number of files the size is split into")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=cache_path("hash-speed"),
                        help="a fresh folder for the files is made in here [bench/.cache/hash-speed]")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="crowguard-bench-", dir=args.dir))
    paths = [folder / f"model-{i + 1:05d}-of-{args.shards:05d}.safetensors" for i in range(args.shards)]
    try:
        size = sum(write_safetensors(p, int(args.size_gb * 1024**3 / args.shards)) for p in paths)
        print(f"{len(paths)} file(s) in {folder}, {size / 1e9:.2f} GB, {os.cpu_count()} CPUs")
        names = [str(p) for p in paths]
        tools = {"cat": lambda: time_command(["cat", *names]),
                 "sha256sum": lambda: time_command(["sha256sum", *names]),
                 "crowguard file scan": lambda: time_crowguard(folder)}
        for mode in ("cold", "warm"):
            seconds: dict[str, list[float]] = {name: [] for name in tools}
            if mode == "warm":
                time_command(["cat", *names])  # load the page cache once
            for _ in range(args.repeats):
                for name, run in tools.items():
                    if mode == "cold":
                        for path in paths:
                            drop_cache(path)
                    seconds[name].append(run())
            for name, values in seconds.items():
                best, median = min(values), statistics.median(values)
                runs = ", ".join(f"{v:.2f}" for v in values)
                print(f"{mode:4s}  {name:20s} best {size / best / 1e6:7.0f} MB/s  "
                      f"median {size / median / 1e6:7.0f} MB/s  ({runs} s)")
        print(machine())
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
