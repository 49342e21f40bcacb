"""Gate policies: a validated model, a loader, and the verdict they give.

A policy is only ever loaded from what the user names (``--policy``): a policy shipped inside the
package by name (``default``, ``strict``, ``permissive``: ``crowguard/policies/NAME.yaml``, found
with importlib.resources, so an installed wheel has them), or a file path. Nothing is picked up
from the working directory; a bare shipped name always means the shipped policy, never a file of
that name. Every wrong field or value is a ``ConfigError`` naming the file, the field, the value
received and what is allowed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crowguard.errors import ConfigError, ExitCode
from crowguard.report.model import Finding, Severity, StageResult, Verdict, severity_counts
from crowguard.safe_yaml import load_yaml_file

WeightFormat = Literal["safetensors", "pickle", "gguf"]
SHIPPED_POLICIES = ("default", "strict", "permissive")  # crowguard/policies/NAME.yaml
# Findings no policy may wave through: whatever severity a scanner gives them, they are raised to
# CRITICAL, which fails every policy (fail_on is at most critical). ``allow_pickle`` accepts pickles
# that the opcode scan clears; it never accepts a file outside the folder, an executable, a malformed
# safetensors file, a polyglot, an archive read two ways or a pickle that imports anything unlisted.
FLOOR_CRITICAL_PREFIXES = ("CG-SAFETENSORS-", "CG-ZIP-", "CG-CONTAINER-")
FLOOR_CRITICAL_RULES = frozenset({
    "CG-PATH-ESCAPE", "CG-PATH-SYMLINK-ESCAPE", "CG-PATH-EXECUTABLE", "CG-PATH-HARDLINK", "CG-PATH-FOREIGN-SYNTAX",
    "CG-FORMAT-POLYGLOT", "CG-PICKLE-DANGEROUS-IMPORT", "CG-PICKLE-UNKNOWN-IMPORT", "CG-PICKLE-DYNAMIC-IMPORT",
    "CG-PICKLE-UNPARSEABLE", "CG-PICKLE-TOO-LARGE",
})


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BehaviourScanPolicy(_Strict):
    """Behavioural (trigger) scan settings."""

    enabled: bool = True
    threshold: float = Field(
        default=0.83, gt=0, le=1,
        description="Target share (0-1) at or above which a trigger candidate flags the model: the share of "
                    "probe prompts that one short insertion turns into one common new answer.",
    )
    min_layer_z: float = Field(
        default=5.0, ge=0,
        description="A candidate counts only if it moves the layer-to-layer consistency at least this many "
                    "null standard deviations (random insertions of its length) and changes the output.",
    )
    fixed_answer_share: float = Field(
        default=0.5, gt=0, le=1,
        description="Share (0-1) of the plain probe prompts, nothing inserted, at or above which one and the "
                    "same answer to all of them flags the model: a backdoor firing without its trigger, or a "
                    "collapsed finetune.",
    )
    severity: Severity = Field(default=Severity.HIGH, description="Severity of a backdoor finding.")


class SanitizePolicy(_Strict):
    """When to sanitize, and how much utility the result must keep."""

    required: bool = Field(default=False, description="Sanitize every model, flagged or not.")
    on_flagged: bool = Field(default=True, description="Sanitize a model the behavioural scan flags.")
    min_utility: float = Field(
        default=0.8, ge=0, le=1,
        description="Perplexity before / after on reference answers must stay at or above this.",
    )


class Policy(_Strict):
    """A gate policy. Field descriptions are documented in the README."""

    name: str
    fail_on: Severity = Field(default=Severity.HIGH, description="Findings at or above this severity fail the gate.")
    allowed_weight_formats: tuple[WeightFormat, ...] = ("safetensors",)
    allow_pickle: bool = Field(default=False, description="Accept pickle-based files that the scan clears.")
    allow_remote_code: bool = Field(default=False, description="Accept auto_map / *.py (never executed).")
    require_signature: bool = Field(default=True, description="The gate must sign its output.")
    max_attack_success: float = Field(
        default=0.1, ge=0, le=1,
        description="When triggered test prompts are given: the emitted model's attack success rate, less the "
                    "same rate on clean prompts, must not exceed this.",
    )
    behaviour_scan: BehaviourScanPolicy = BehaviourScanPolicy()
    sanitize: SanitizePolicy = SanitizePolicy()

    @property
    def violation_severity(self) -> Severity:
        """Severity of a finding that breaks one of this policy's own rules: always enough to fail."""
        return max(self.fail_on, Severity.HIGH)

    def verdict(self, stages: tuple[StageResult, ...] | list[StageResult]) -> Verdict:
        """Decide: a stage that failed fails closed (3); findings at or above ``fail_on`` fail (1)."""
        findings: list[Finding] = [f for s in stages for f in s.findings]
        counts = severity_counts(findings)
        failed_stages = [s for s in stages if s.status == "failed"]
        blocking = [f for f in findings if f.severity >= self.fail_on]
        reasons = [f"stage {s.name} could not finish: {'; '.join(s.errors) or 'no detail'}" for s in failed_stages]
        reasons += [f"{f.rule_id} ({f.severity.value}) {f.title}" + (f" in {f.file}" if f.file else "")
                    for f in blocking]
        if failed_stages:
            code = ExitCode.TOOL_ERROR
        elif blocking:
            code = ExitCode.POLICY_FAILED
        else:
            code = ExitCode.PASS
        return Verdict(passed=code == ExitCode.PASS, exit_code=int(code), policy=self.name,
                       fail_on=self.fail_on, counts=counts, reasons=tuple(reasons))


def with_severity_floor(finding: Finding) -> Finding:
    """``finding`` raised to CRITICAL when its rule is one no policy may accept (``FLOOR_CRITICAL_*``)."""
    floored = finding.rule_id in FLOOR_CRITICAL_RULES or finding.rule_id.startswith(FLOOR_CRITICAL_PREFIXES)
    if not floored or finding.severity >= Severity.CRITICAL:
        return finding
    return finding.model_copy(update={"severity": Severity.CRITICAL})


def builtin_policy(name: str) -> Path:
    """Path of a policy shipped inside the package (``crowguard/policies/NAME.yaml``)."""
    if name not in SHIPPED_POLICIES:
        raise ConfigError(f"there is no shipped policy {name!r}", hint=f"use one of {', '.join(SHIPPED_POLICIES)}")
    return Path(str(resources.files("crowguard") / "policies" / f"{name}.yaml"))


def load_policy(path: str | Path) -> Policy:
    """Load and validate a shipped policy by name, or a policy file; every problem is a ConfigError."""
    path = builtin_policy(str(path)) if str(path) in SHIPPED_POLICIES else Path(path)
    if not path.is_file():
        raise ConfigError(f"policy file {path} does not exist",
                          hint=f"name a shipped policy ({', '.join(SHIPPED_POLICIES)}) or a policy file")
    data = load_yaml_file(path, what="policy file", example="policies/default.yaml")
    if not isinstance(data, dict):
        raise ConfigError(f"policy file {path} must hold a mapping of fields",
                          hint="see policies/default.yaml for the fields")
    data.setdefault("name", path.stem)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"policy file {path}: {_describe(exc)}",
                          hint="see the README's policy table for fields and allowed values") from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown field '{field}' (known: {_known_fields(err['loc'])})")
            continue
        allowed = err.get("ctx", {}).get("expected")
        msg = f"field '{field}' has value {value!r}: {err['msg']}"
        if allowed and str(allowed) not in msg:
            msg += f" (allowed: {allowed})"
        parts.append(msg)
    return "; ".join(parts)


def _known_fields(loc: tuple[int | str, ...]) -> str:
    model: type[BaseModel] = Policy
    for part in loc[:-1]:
        annotation = model.model_fields[str(part)].annotation if str(part) in model.model_fields else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return ", ".join(model.model_fields)
