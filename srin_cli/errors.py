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


class MissingExtra(UsageError):
    """Something that needs an optional part of srin (``pip install 'srin-cli[train]'`` etc.)."""


# the optional modules srin imports, and the extra that brings each
EXTRAS = {"torch": "train", "onnx": "train", "onnxscript": "train", "torchvision": "sam", "segment_anything": "sam",
          "sam2": "sam2"}


def missing_extra(exc: ImportError, what: str = "this", extra: str | None = None) -> "MissingExtra | None":
    """The one-line error for an optional module that is not installed (None when it is not one of srin's);
    ``extra``: the extra to name (default: the one that brings the missing module)."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if name not in EXTRAS:
        return None
    extra = extra or EXTRAS[name]
    if extra is None:
        return None
    return MissingExtra(f"{what} needs {name}, which is not installed: pip install 'srin-cli[{extra}]'")


def first_line(exc: BaseException, limit: int | None = None, empty: str | None = None) -> str:
    """The first non-empty line of an exception's message (cut to ``limit`` characters), for one-line reports;
    ``empty`` (default: the exception's type name) when the message is blank."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__ if empty is None else empty
    line = text.splitlines()[0]
    return line[:limit] if limit is not None else line


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 127)} | {10: "\\n", 13: "\\r", 9: "\\t"}


def printable(text: str) -> str:
    """``text`` (a file name, a message naming one) with its control characters escaped (a newline as ``\\n``):
    one name, one line, whatever bytes the name holds."""
    return str(text).translate(_CONTROL)
