"""The srin command line: one Typer app, one module per command. Heavy imports happen inside commands."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import __version__
from .evaluate import evaluate
from .harmonize import harmonize
from .segment import segment
from .train import train

app = typer.Typer(
    name="srin",
    help="Harmonize composite images in batch with SRIN (semantic-guided region-aware instance normalization).\n\n"
         "Exit codes: 0 all done, 1 some items failed (or a quality gate failed), 2 usage or input error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"srin {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = None) -> None:
    pass


for command in (segment, harmonize, evaluate, train):
    app.command()(command)


if __name__ == "__main__":
    app()
