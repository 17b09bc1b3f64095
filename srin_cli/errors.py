"""One exception family; the CLI turns each into one line on stderr and an exit code.

Exit codes: 0 all done, 1 some items failed (or a quality gate failed), 2 usage / input error.
"""


class SrinError(Exception):
    exit_code = 2


class UsageError(SrinError):
    exit_code = 2


class InputError(SrinError):
    """A file that cannot be read or paired."""

    exit_code = 2


class CheckpointError(SrinError):
    exit_code = 2


def first_line(exc: BaseException, limit: int | None = None, empty: str | None = None) -> str:
    """The first non-empty line of an exception's message (cut to ``limit`` characters), for one-line reports;
    ``empty`` (default: the exception's type name) when the message is blank."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__ if empty is None else empty
    line = text.splitlines()[0]
    return line[:limit] if limit is not None else line
