"""Benchmarks behind bench/RESULTS.md; run each from the repository root as ``python -m bench.NAME --help``.

They share ``bench.harness`` (cache folder, crowguard child processes, threads, machine line, tables).
Nothing here is part of the crowguard package.
"""
