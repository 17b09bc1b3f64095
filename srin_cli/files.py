"""Atomic writes, and the cleaning of what a killed write leaves behind.

Every file srin writes (images, label maps, CSVs, reports, checkpoints, ONNX files) goes through
:func:`atomic_write` / :func:`atomic_open`: the bytes go to a hidden temporary file beside the target,
``.NAME.PID.XXXXXXXX.part``, which is renamed over the target when complete, so a file appears complete or
not at all. :func:`clean_stale_parts` removes the temporary files of killed runs: only names of exactly that
form, only in the folders a run writes (never recursively), only for the files it writes when it says which, and
never those of a live run (the name carries the writer's PID). :func:`check_writable` probes a folder before
any work.
"""
from __future__ import annotations

import errno
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

@contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C (SIGINT) held until the block ends, then raised as KeyboardInterrupt: a file and the record that
    lists it land together (an interrupt between the rename and the record would leave a written file off the
    list that an interrupted batch prints). Only in the main thread with Python's own SIGINT handler; elsewhere
    the block runs as is."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    pending: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pending:
        raise KeyboardInterrupt


# the hidden temp files of atomic_open: .NAME.PID.XXXXXXXX.part (mkstemp's 8 random characters)
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.part$")

#: the longest NAME kept whole in a temp name: with the PID, 8 random characters and ".part" the temp name stays
#: under the 255 bytes a file name may have, whenever the target's own name fits
_TEMP_STEM_BYTES = 200


def _temp_stem(name: str) -> str:
    """NAME as its temp files carry it: as is, or, when long, its first characters and a digest of the whole."""
    raw = os.fsencode(name)
    if len(raw) <= _TEMP_STEM_BYTES:
        return name
    import hashlib

    return os.fsdecode(raw[:_TEMP_STEM_BYTES - 17]) + "~" + hashlib.sha256(raw).hexdigest()[:16]


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """A file object on a hidden temporary file beside ``path``, renamed to ``path`` when the block ends
    without an exception (and removed when it raises): a kill never leaves a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the PID in the name lets clean_stale_parts leave the temp files of a live run alone
    fd, tmp = tempfile.mkstemp(prefix=f".{_temp_stem(path.name)}.{os.getpid()}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None and exc.errno is not None:  # a failed write says which file (a full disk, say)
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str, encoding: str = "utf-8") -> None:
    """Write ``data`` (bytes, or text in ``encoding``) to ``path`` atomically."""
    if isinstance(data, str):
        data = data.encode(encoding)
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def _written_by_live_process(pid: int) -> bool:
    """True when ``pid`` (from a temp file's name) is a running process other than this one (another run writing there now)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else (PermissionError)
    return True


def clean_stale_parts(folder: Path, names: set[str] | None = None) -> list[Path]:
    """Remove the temp files a killed srin run left in ``folder`` (not in its sub-folders): regular files named
    exactly like :func:`atomic_open`'s, ``.NAME.PID.XXXXXXXX.part``, and with ``names`` only those whose NAME is
    one of them (the files this run writes there).

    A leftover one is never a finished output: writes are renamed when complete. Files whose PID is a running
    process are left alone: another run may be writing them. Returns the removed paths."""
    removed: list[Path] = []
    stems = {_temp_stem(n) for n in names} if names is not None else None
    try:
        entries = list(os.scandir(folder))
    except OSError:  # missing, not a folder, unreadable: nothing of ours to clean
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or (names is not None and match.group("name") not in stems):
            continue
        if entry.is_file(follow_symlinks=False) and not _written_by_live_process(int(match.group("pid"))):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed


def clean_stale_temp(targets) -> list[Path]:
    """:func:`clean_stale_parts` for the files a run is about to write: each target's folder, that target's temp names."""
    by_folder: dict[Path, set[str]] = {}
    for target in targets:
        target = Path(target)
        by_folder.setdefault(target.parent, set()).add(target.name)
    return [p for folder, names in by_folder.items() for p in clean_stale_parts(folder, names)]


def check_writable(folder: Path, option: str = "-o/--out") -> None:
    """Make ``folder`` (and its parents) and prove a file can be written there, before any work: a probe file
    with a temp name is created and removed. An unwritable folder is one UsageError (exit 2)."""
    from .errors import UsageError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".srin-write-check.{os.getpid()}.", suffix=".part", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or os.strerror(exc.errno or errno.EIO)
        raise UsageError(f"cannot write to {option} {folder}: {reason}") from None
