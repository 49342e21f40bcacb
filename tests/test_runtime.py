"""The one Runtime of a request: a bad thread count is a config error naming the field and the value."""

import pytest

from crowguard.errors import ConfigError
from crowguard.runtime import Runtime


@pytest.mark.parametrize("threads", [0, -1, True, 1.5])
def test_bad_thread_counts_name_field_and_value(threads: object) -> None:
    with pytest.raises(ConfigError, match=f"threads={threads!r}"):
        Runtime(threads=threads)  # type: ignore[arg-type]


def test_defaults_and_settings() -> None:
    assert Runtime().settings() == {"device": "auto", "threads": None, "dtype": "auto"}
    assert Runtime(device="cpu", threads=2).threads == 2
