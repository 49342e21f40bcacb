"""``crowguard pull`` as a pipeline: pull a model under a policy and describe it as a report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from crowguard.policy import Policy
from crowguard.pull import PullResult, PullSettings, pull
from crowguard.report.model import Report


@dataclass(frozen=True)
class PullRequest:
    """A model to pull into ``out``; the policy's ``allow_pickle`` decides whether pickle-only weights come."""

    reference: str
    out: Path
    source: PullSettings = field(default_factory=PullSettings)
    policy: Policy = field(default_factory=Policy)
    force: bool = False


@dataclass(frozen=True)
class PullRun:
    """The pull's typed result and its report (the pull record)."""

    result: PullResult
    report: Report


def run_pull(request: PullRequest) -> PullRun:
    """Pull ``request.reference`` into ``request.out`` (staged, renamed into place when complete)."""
    started = time.perf_counter()
    result = pull(request.reference, request.out, revision=request.source.revision,
                  endpoint=request.source.endpoint, allow_pickle=request.policy.allow_pickle,
                  gguf_file=request.source.gguf_file, force=request.force)
    report = Report(command="pull", source=result.source, stages=(result.stage(time.perf_counter() - started),),
                    output=str(result.output),
                    settings={"revision": request.source.revision, "gguf": request.source.gguf_file,
                              "policy": request.policy.name, "allow_pickle": request.policy.allow_pickle})
    return PullRun(result, report)
