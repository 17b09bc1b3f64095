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
