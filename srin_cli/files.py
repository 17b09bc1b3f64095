"""Atomic writes, and the cleaning of what a killed write leaves behind.

Every file srin writes (images, label maps, CSVs, reports, checkpoints, ONNX files) goes through
:func:`atomic_write` / :func:`atomic_open`: the bytes go to a hidden temporary file beside the target,
``.NAME.PID.XXXXXXXX.part``, which is renamed over the target when complete, so a file appears complete or
not at all. :func:`clean_stale_parts` removes the temporary files of killed runs (never those of a live one:
the name carries the writer's PID).
"""
from __future__ import annotations

import fnmatch
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

STALE_PART = ".*.part"  # the hidden temp files of atomic_open: .NAME.PID.XXXXXXXX.part
_WRITER_PID = re.compile(r"\.(\d+)\.[^.]+\.part$")

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """A file object on a hidden temporary file beside ``path``, renamed to ``path`` when the block ends
    without an exception (and removed when it raises): a kill never leaves a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the PID in the name lets clean_stale_parts leave the temp files of a live run alone
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str, encoding: str = "utf-8") -> None:
    """Write ``data`` (bytes, or text in ``encoding``) to ``path`` atomically."""
    if isinstance(data, str):
        data = data.encode(encoding)
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def _written_by_live_process(name: str) -> bool:
    """True when the temp file's name carries the PID of a running process (another run writing there now)."""
    match = _WRITER_PID.search(name)
    if match is None:
        return False
    pid = int(match.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else (PermissionError)
    return True


def clean_stale_parts(out_dir: Path) -> list[Path]:
    """Remove temp files a killed run left in ``out_dir`` (recursively): regular files named ``.*.part`` only.

    Writes go to such a file and are renamed when complete, so a leftover one is never a finished output.
    Files whose name carries the PID of a running process are left alone: another run may be writing them.
    Returns the removed paths."""
    removed: list[Path] = []
    if not out_dir.is_dir():
        return removed
    for folder, _dirs, names in os.walk(out_dir):  # does not follow symlinked folders
        for name in fnmatch.filter(names, STALE_PART):
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink() and not _written_by_live_process(name):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
