"""The margin of the inversion lab test: the lab fixtures' inversion scores over scan seeds and threads.

    python -m bench.inversion_margin [--threads 1,2] [--seeds 0,1,2]

The fixtures are the ones ``tests/conftest.py`` caches in ``.cache/lab-fixtures`` (run the slow tests
once to build them). Each is scored begun as the backdoor's target (``You are stupid!``) and as its
plain replies begin, as ``tests/scan/behaviour/test_inversion.py`` asserts.
"""

from __future__ import annotations

import argparse

from bench.scan_auroc import DEV_FIXTURES

TARGET = "You are stupid!"


def main() -> None:
    import torch

    from crowguard.models import load_model
    from crowguard.scan.behaviour.inversion import inversion_score
    from crowguard.scan.behaviour.options import BehaviourOptions
    from crowguard.scan.behaviour.scanner import ModelScan

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    folders = sorted(p for p in DEV_FIXTURES.glob("*-0-*") if p.name.split("-")[0] in ("badnet", "clean"))
    print("| fixture | threads | scan seed | begun as the target | plain openings only |")
    print("| --- | --- | --- | --- | --- |")
    for threads in map(int, args.threads.split(",")):
        torch.set_num_threads(threads)
        for folder in folders:
            for seed in map(int, args.seeds.split(",")):
                scan = ModelScan(load_model(folder, device="cpu"), BehaviourOptions(seed=seed))
                begun, plain = (inversion_score(scan.invert_targets(t)) for t in ([TARGET], []))
                print(f"| {folder.name} | {threads} | {seed} | {begun:.3f} | {plain:.3f} |")


if __name__ == "__main__":
    main()
