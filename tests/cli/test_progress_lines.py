"""Progress that CI logs can show: with stderr not a terminal, plain lines per phase and at a set cadence."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from crowguard.cli.plain_progress import DEFAULT_INTERVAL, INTERVAL_ENV, PlainProgress, progress_interval

LINE = re.compile(r"^crowguard: (?P<phase>.+?) (?P<done>\d+)/(?P<total>\d+) \(\d+%\), (?P<elapsed>\d+:\d\d) elapsed, "
                  r"(about \d+:\d\d left|done|estimate after the first step)(, .*)?$")
NOTE = re.compile(r"^crowguard: [^,]+, \d+:\d\d elapsed$")  # a phase without counts (heartbeat included)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _reporter(interval: float = 30.0) -> tuple[PlainProgress, list[str], FakeClock]:
    clock, lines = FakeClock(), []
    return PlainProgress(lines.append, interval=interval, clock=clock), lines, clock


def test_one_line_per_phase_start_and_end_and_none_in_between_before_the_interval() -> None:
    progress, lines, clock = _reporter()
    progress.update("searching", 0, 100)
    for done in range(1, 100):
        clock.now += 0.1
        progress.update("searching", done, 100)
    progress.update("searching", 100, 100)
    assert lines == ["crowguard: searching 0/100 (0%), 0:00 elapsed, estimate after the first step",
                     "crowguard: searching 100/100 (100%), 0:09 elapsed, done"]


def test_a_line_at_least_every_interval_with_estimate() -> None:
    progress, lines, clock = _reporter()
    progress.update("training", 0, 400, "CE 2.0")
    for step in range(1, 200):
        clock.now += 1.0
        progress.update("training", step, 400, "CE 1.5")
    assert len(lines) == 1 + 199 // 30
    assert lines[1] == "crowguard: training 30/400 (7%), 0:30 elapsed, about 6:10 left, CE 1.5"
    assert all(LINE.match(line) for line in lines)


def test_the_heartbeat_speaks_when_no_update_arrives() -> None:
    progress, lines, clock = _reporter()
    progress.note("loading the model")
    clock.now += 29
    progress.beat()
    assert len(lines) == 1
    clock.now += 2
    progress.beat()
    assert lines[-1] == "crowguard: loading the model, 0:31 elapsed"
    progress.update("verifying", 3, 3)
    clock.now += 45
    progress.beat()
    assert lines[-1] == "crowguard: verifying finished 0:45 ago, the next step is running"


def test_a_new_phase_prints_at_once_and_a_phase_counts_from_its_own_start() -> None:
    progress, lines, clock = _reporter()
    progress.update("ranking vocabulary", 5, 10)
    clock.now += 3700
    progress.update("searching", 1, 4)
    assert lines[-1] == "crowguard: searching 1/4 (25%), 0:00 elapsed, about 0:00 left"
    clock.now += 3700
    progress.update("searching", 2, 4)
    assert lines[-1] == "crowguard: searching 2/4 (50%), 1:01:40 elapsed, about 1:01:40 left"


def test_interval_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "0.5")
    assert progress_interval() == 0.5
    for bad in ("zero", "0", "-3", "1e9"):
        monkeypatch.setenv(INTERVAL_ENV, bad)
        assert progress_interval() == DEFAULT_INTERVAL


def test_a_scan_with_stderr_to_a_file_leaves_lines_at_the_cadence(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A behaviour scan run as CI runs it: stderr is a file; lines arrive at least every 0.5 s (plus slack)."""
    words = ["the", "cat", "sat", "on", "mat", "what", "is", "two", "plus", "four", "hello", "world"]
    probes = tmp_path / "probes.jsonl"
    probes.write_text("".join(json.dumps({"instruction": f"{a} {b} {c} ?"}) + "\n"
                              for a, b, c in zip(words, words[3:] + words[:3], words[6:] + words[:6])))
    log = tmp_path / "stderr.log"
    env = {**os.environ, INTERVAL_ENV: "0.5", "OMP_NUM_THREADS": "1"}
    env.pop("FORCE_COLOR", None)
    command = [sys.executable, "-m", "crowguard", "scan", str(tiny_model_dir), "--threads", "1", "--device", "cpu",
               "--probes", str(probes), "--probe-count", "4", "--report", str(tmp_path / "report.json")]
    arrivals: list[tuple[float, str]] = []
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        seen = 0
        deadline = time.monotonic() + 600
        while process.poll() is None and time.monotonic() < deadline:
            lines = log.read_text(errors="replace").splitlines()
            arrivals += [(time.monotonic(), line) for line in lines[seen:] if line.startswith("crowguard: ")]
            seen = len(lines)
            time.sleep(0.05)
        process.wait(timeout=60)
    assert process.returncode in (0, 1), log.read_text()
    progress = [line for _, line in arrivals]
    assert any(line.startswith("crowguard: searching") for line in progress), progress
    counted = [m for line in progress if (m := LINE.match(line))]
    assert {"ranking vocabulary", "searching", "verifying candidates"} <= {m["phase"] for m in counted}
    assert all(LINE.match(line) or NOTE.match(line) or " finished " in line for line in progress), progress
    assert progress[0] == "crowguard: behaviour scan, 0:00 elapsed"
    assert "\x1b[" not in log.read_text()  # plain text, no terminal codes
    times = [t for t, _ in arrivals]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) < 2.5, list(zip(gaps, progress[1:]))  # 0.5 s asked; generous for a loaded machine
