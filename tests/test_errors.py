"""Exit codes are part of the interface; they must not move."""

from crowguard.errors import ConfigError, ExitCode, IntegrityError, ModelFolderError, ToolError, UsageError


def test_exit_codes_are_the_documented_ones() -> None:
    assert [int(c) for c in (ExitCode.PASS, ExitCode.POLICY_FAILED, ExitCode.USAGE,
                             ExitCode.TOOL_ERROR, ExitCode.INTEGRITY)] == [0, 1, 2, 3, 4]
    assert UsageError("x").exit_code == 2
    assert ConfigError("x").exit_code == 2
    assert ModelFolderError("x").exit_code == 2
    assert ToolError("x").exit_code == 3
    assert IntegrityError("x").exit_code == 4


def test_error_carries_hint() -> None:
    err = ConfigError("bad", hint="fix it")
    assert (err.message, err.hint, str(err)) == ("bad", "fix it", "bad")
