"""The srin command line: one Typer app, one module per command. Heavy imports happen inside commands."""
from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from .coercion import QuickParams
from .common import quick_exit_allowed
from .compose import compose
from .evaluate import evaluate
from .harmonize import harmonize
from .segment import segment
from .train import train

# click's exception classes, wherever this typer takes click from (its own copy or the click package)
_CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _tidy(text: str) -> str:
    """Help as people read it: ``IMAGES...`` rather than ``{IMAGES...}...``, no ``<bool>`` after flags, no
    ``<list[Path]>`` after arguments."""
    text = re.sub(r"\{([^{}\s]+?)(\.\.\.)?\}(\.\.\.)?", lambda m: m.group(1) + ("..." if m.group(2) or m.group(3) else ""), text)
    return re.sub(r" <(bool|list\[[^\]]*\])>", "", text)


class SrinCommand(QuickParams, TyperCommand):
    """A command whose usage line and help entries are :func:`_tidy` (before the help text is wrapped), and whose
    option values are converted without pydantic when they are plain (:mod:`srin_cli.cli.coercion`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            def record(ctx, original=param.get_help_record):
                entry = original(ctx)
                return entry if entry is None else (_tidy(entry[0]), entry[1])

            param.get_help_record = record

    def format_usage(self, ctx, formatter) -> None:
        formatter.write_usage(ctx.command_path, _tidy(" ".join(self.collect_usage_pieces(ctx))))

    def get_usage(self, ctx) -> str:
        return _tidy(super().get_usage(ctx))

    def parse_args(self, ctx, args):
        """No option takes NaN or infinity: a threshold of NaN compares false with everything (a quality gate
        that cannot fail), a scale of NaN or infinity means nothing."""
        rest = super().parse_args(ctx, args)
        for param in self.params:
            value = ctx.params.get(param.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise typer.BadParameter(f"{value} is not a finite number", ctx=ctx, param=param)
        return rest


class LazyCommands(MutableMapping):
    """The group's name -> command table, each command built by typer from its function on first use: a run
    builds (and reads the ~30 annotated parameters of) its own command only, not all four (~0.03 s of start-up).
    ``srin --help`` lists them all, so builds them all, in their order."""

    def __init__(self, registry: typer.Typer):
        self._registry = registry
        self._infos = {typer.main.get_command_name(i.callback.__name__): i for i in registry.registered_commands}
        self._built: dict = {}

    def __getitem__(self, name: str):
        if name not in self._built:
            info = self._infos[name]  # KeyError: no such command (the group then says so)
            self._built[name] = typer.main.get_command_from_info(
                info, pretty_exceptions_short=self._registry.pretty_exceptions_short,
                rich_markup_mode=self._registry.rich_markup_mode)
        return self._built[name]

    def __setitem__(self, name: str, command) -> None:
        self._infos.setdefault(name, None)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._infos[name]
        self._built.pop(name, None)

    def __iter__(self):
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)


class OneLineErrors(QuickParams, TyperGroup):
    """Usage errors (missing argument, out-of-range value, unknown option, ...) as srin's other errors: one line
    on stderr, exit 2, instead of click's usage block; option values as :class:`SrinCommand`'s. Its commands
    are :data:`COMMANDS`', built on first use (:class:`LazyCommands`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(COMMANDS)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        except _CLICK_ERROR as exc:
            if not standalone_mode:
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":  # plain `srin`: the help, as asked
                print(exc.format_message(), file=sys.stderr)
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            message = " ".join(exc.format_message().split())
            print(f"error: {message}{hint}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            print("aborted", file=sys.stderr)
            sys.exit(1)
        if not standalone_mode:
            return code
        code = code if isinstance(code, int) else 0
        if args is None and quick_exit_allowed():  # a srin process (its own command line), its work done
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except OSError:  # a closed pipe, say: the usual exit says what it says
                sys.exit(code)
            os._exit(code)  # without Python's shutdown (common.allow_quick_exit)
        sys.exit(code)


app = typer.Typer(
    cls=OneLineErrors,
    name="srin",
    help="Harmonize composite images in batch with SRIN (semantic-guided region-aware instance normalization).\n\n"
         "Exit codes: 0 all done, 1 some items failed (or a quality gate failed), 2 usage or input error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"srin {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = None) -> None:
    import os
    import warnings

    if not os.environ.get("SRIN_DEBUG"):
        # library warnings (PIL, torch, ONNX) are not srin's messages: they never reach stderr as raw Python
        # warnings; srin says what matters in its own one-line messages (SRIN_DEBUG=1 shows them)
        warnings.simplefilter("ignore")


SHORT_HELP = {
    segment: "Semantic label maps, once (reusable).",
    harmonize: "Harmonize composites (one image per input).",
    compose: "Paste cut-outs onto scenes and harmonize them.",
    evaluate: "Score against real images; quality gate, report.",
    train: "Train a model, option by option or by a recipe of stages (--recipe default).",
}
# the commands, registered on a Typer of their own so that typer does not build them all with the group:
# OneLineErrors builds each when it is used (same settings as the app's)
COMMANDS = typer.Typer(pretty_exceptions_enable=False, rich_markup_mode=None)
for command in (segment, harmonize, compose, evaluate, train):
    COMMANDS.command(short_help=SHORT_HELP[command], cls=SrinCommand)(command)


if __name__ == "__main__":
    app()
