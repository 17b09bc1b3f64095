"""Shared CLI pieces: consoles, progress, device choice, error handling. Nothing heavy is imported here."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from enum import Enum

import typer


def stderr_console():
    """srin's one Rich console on stderr, made on first use: a run that prints nothing there (``-q``) does not
    import Rich (a few hundredths of a second of start-up)."""
    global _console
    if _console is None:
        from rich.console import Console

        # soft_wrap: a message stays on one line whatever the width (no wrapping at 80 columns in logs and pipes)
        _console = Console(stderr=True, highlight=False, soft_wrap=True)
    return _console


_console = None


class _StderrConsole:
    """``err_console.print(...)``, ``err_console.width``...: :func:`stderr_console`'s, made when first used."""

    def __getattr__(self, name: str):
        return getattr(stderr_console(), name)


err_console = _StderrConsole()


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def resolve_device(device: Device | str) -> str:
    """``auto`` is CUDA when PyTorch is installed and sees a GPU, else the CPU (the light install: no torch).
    torch is imported only to answer that: not for ``cpu``, nor for ``auto`` on a machine with no NVIDIA driver
    (importing it costs seconds, more than harmonizing a few images on the ONNX path)."""
    name = device.value if isinstance(device, Device) else device
    if name == "cpu" or (name == "auto" and not _may_have_cuda()):
        return "cpu"
    try:
        import torch
    except ImportError:
        if name == "cuda":
            fail("--device cuda needs PyTorch: pip install 'srin-cli[train]'")
        return "cpu"
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        fail("--device cuda was asked for but no CUDA device is available (use --device auto or cpu)")
    return name


def _may_have_cuda() -> bool:
    """False where CUDA cannot be there: Linux without an NVIDIA driver's device files, macOS, or
    CUDA_VISIBLE_DEVICES hiding every GPU; else True (torch decides)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return any(os.path.exists(p) for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"))  # dxg: WSL 2
    return True


_quick_exit = False


def allow_quick_exit() -> None:
    """Said by a command that has finished its work and holds nothing Python's shutdown must close (no child
    processes; every file written, closed and renamed): a ``srin`` process then ends without that shutdown
    (:meth:`srin_cli.cli.main.OneLineErrors.main`), which unloads onnxruntime, OpenCV and numpy for ~0.05 s
    of a cold run."""
    global _quick_exit
    _quick_exit = True


def quick_exit_allowed() -> bool:
    return _quick_exit


def fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


@contextmanager
def handled_errors(command: str = "this command"):
    """Turn srin's own errors (and a few common ones) into one line on stderr + an exit code. ``command``: how a
    missing optional package's message names what needed it."""
    from ..errors import SrinError, first_line, missing_extra

    try:
        yield
    except SrinError as exc:
        fail(str(exc), exc.exit_code)
    except ImportError as exc:
        extra = missing_extra(exc, command)
        if extra is None:
            fail(f"unexpected ImportError: {first_line(exc, 300)}", 1)
        fail(str(extra), extra.exit_code)
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        fail(f"{exc.strerror or type(exc).__name__}: {exc.filename}")
    except OSError as exc:  # the run itself failed (a full disk, an I/O error): exit 1, like a failed item
        reason = exc.strerror or first_line(exc, 300, empty=type(exc).__name__)
        fail(f"{reason}: {exc.filename}" if exc.filename else reason, 1)
    except ValueError as exc:
        fail(first_line(exc, empty="invalid value"))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130)
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if os.environ.get("SRIN_DEBUG"):
            raise
        fail(f"unexpected {type(exc).__name__}: {first_line(exc, 300, empty='')} (run with SRIN_DEBUG=1 for the traceback)", 1)


def print_path(path: str) -> None:
    """One written path per line on stdout, byte for byte, even when the name is not valid UTF-8 (Linux allows
    any bytes in a name; Python keeps them as surrogates, which a strict stdout refuses to encode); control
    characters (a newline in a name) are escaped, so one path stays one line."""
    from ..errors import printable

    path = printable(path)
    try:
        print(path)
    except UnicodeEncodeError:
        sys.stdout.flush()
        sys.stdout.buffer.write(os.fsencode(path) + b"\n")
        sys.stdout.buffer.flush()


def failure_printer(progress, quiet: bool = False):
    """``on_failure(name, message)`` for a batch: one yellow line per failed file above the progress bar
    (with ``quiet``, none: the failures are listed at the end, :func:`print_failures`)."""
    if quiet:
        return lambda name, message: None
    from rich.markup import escape

    from ..errors import printable

    # names are not markup, and a newline in one does not split its line
    return lambda name, message: progress.console.print(f"[yellow]failed[/] {escape(printable(name))}: {escape(printable(message))}")


def mask_warnings(quiet: bool = False) -> None:
    """The readers' one-line warnings (an ambiguous RGBA mask: which channel was read) on stderr; none with -q."""
    from ..data.io import set_warning_handler

    set_warning_handler(None if quiet else lambda message: err_console.print(f"warning: {message}", markup=False))


def print_notes(method, quiet: bool = False) -> None:
    """One warning line per note a method left (an ONNX file beside the checkpoint that is not used, and why)."""
    if not quiet:
        for note in getattr(method, "notes", []):
            err_console.print(f"warning: {note}", markup=False)


def print_failures(failures: list[tuple[str, str]]) -> None:
    """One line per failed item on stderr, ``-q`` or not: a failure is never chatter."""
    from ..errors import printable

    for name, message in failures:
        err_console.print(f"  failed: {printable(name)}: {printable(message)}", markup=False)


class NoProgress:
    """What :func:`make_progress` gives when nothing is shown: the same calls, no bar (and no import of
    rich.progress, a tenth of a second of start-up)."""

    console = err_console
    disable = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        return None


def make_progress(quiet: bool = False):
    """Rich progress on stderr, shown only when stderr is a terminal (never in pipes, logs or CI)."""
    if quiet or not sys.stderr.isatty():
        return NoProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr_console(),
        disable=quiet or not sys.stderr.isatty(),
        transient=False,
    )

