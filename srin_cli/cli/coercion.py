"""Option values converted without pydantic when the answer is plain, so a run does not pay for typer's validators.

typer (0.29) converts every parameter's value, defaults included, through a pydantic ``TypeAdapter`` built on
first use: importing pydantic and building an adapter for each of a command's ~30 options is about a quarter
of a second of ``srin harmonize``'s cold start, against ~20 ms of work for a small image. srin's options are
plain types (str, int, float, Path, an Enum, lists of Path, names checked by a registry parser), so
:func:`install` gives each parameter a converter that returns the same value typer would for the common
inputs (a default, a decimal number within its bounds, a path, an exact choice) and hands anything else
(a value it is not sure of, and so every error) to typer's own conversion: messages and exit codes stay
typer's. ``tests/test_cli_startup.py`` checks both against each other on every option of every command.

This leans on typer internals (``_TyperParameter.type_descriptor`` and its lazily built ``_runtime_param``);
when they are not there (another typer), nothing is installed and typer converts as usual.
"""
from __future__ import annotations

import os
import re
from enum import Enum
from pathlib import Path
from typing import Any, Callable, get_args, get_origin

_INT = re.compile(r"-?[0-9]{1,18}")
_FLOAT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")


class _Unsure(Exception):
    """The quick converter does not decide this value: typer's own conversion does."""


def _number(kind: type, minimum, maximum) -> Callable[[Any], Any]:
    pattern = _INT if kind is int else _FLOAT

    def convert(value: Any) -> Any:
        if type(value) is kind or (kind is float and type(value) is int):
            number = kind(value)
        elif type(value) is str and pattern.fullmatch(value):
            number = kind(value)
        else:
            raise _Unsure
        if (minimum is not None and not number >= minimum) or (maximum is not None and not number <= maximum):
            raise _Unsure  # out of range: typer says so
        return number

    return convert


def _text(value: Any) -> str:
    if type(value) is not str:
        raise _Unsure
    return value


def _flag(value: Any) -> bool:
    if type(value) is not bool:
        raise _Unsure
    return value


def _path(value: Any) -> Path:
    if type(value) is str and "\0" not in value:
        path = Path(value)
    elif isinstance(value, Path):
        path = value
    else:
        raise _Unsure
    if os.path.exists(path) and not os.access(path, os.R_OK):
        raise _Unsure  # typer refuses an unreadable path
    return path


def _choice(enum: type[Enum]) -> Callable[[Any], Enum]:
    members = {str(m.value): m for m in enum}

    def convert(value: Any) -> Enum:
        if isinstance(value, enum):
            return value
        if type(value) is str and value in members:
            return members[value]
        raise _Unsure

    return convert


def _parsed(parser: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A ``typer.Option(parser=...)``: the parser's result (its own errors, e.g. srin's one-line ``fail``, pass as
    they do through typer; a ValueError is typer's to word)."""

    def convert(value: Any) -> Any:
        try:
            return parser(value)
        except (ValueError, AssertionError):
            raise _Unsure from None

    return convert


def _plain_path_options(info) -> bool:
    """A Path option without typer's checks beyond 'readable when it exists' (srin declares no others)."""
    return (getattr(info, "path_type", None) is None and not info.exists and not info.resolve_path and not info.allow_dash
            and not info.writable and info.file_okay and info.dir_okay)


def _converter(annotation: Any, info) -> Callable[[Any], Any] | None:
    """The quick converter of one value of ``annotation``, or None (typer converts this parameter)."""
    if getattr(info, "parser", None) is not None:
        return _parsed(info.parser)
    if annotation in (int, float):
        return None if getattr(info, "clamp", False) else _number(annotation, info.min, info.max)
    if annotation is str:
        return _text
    if annotation is bool:
        return _flag
    if annotation is Path:
        return _path if _plain_path_options(info) else None
    if isinstance(annotation, type) and issubclass(annotation, Enum) and info.case_sensitive:
        return _choice(annotation)
    return None


class QuickCoercion:
    """Stands in for typer's runtime conversion of one parameter (same ``coerce`` call)."""

    def __init__(self, convert: Callable[[Any], Any], many: bool):
        self.convert = convert
        self.many = many

    def coerce(self, value: Any, param, ctx) -> Any:
        multi = param.multiple or param.nargs == -1
        if value is None:
            return () if multi else None
        try:
            if self.many:
                if not isinstance(value, (list, tuple)):
                    raise _Unsure
                return [self.convert(item) for item in value]
            if multi:
                raise _Unsure
            return self.convert(value)
        except _Unsure:
            pass
        param._runtime_param = None  # typer's own conversion (built now, kept for the rest of the run)
        return param.get_runtime_param().coerce(value, param=param, ctx=ctx)


def install(params) -> None:
    """Give each of ``params`` (a command's) the quick converter where srin knows its type; see the module."""
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", False) is not None \
                or not hasattr(param, "get_runtime_param") or getattr(descriptor, "file_annotation", None) is not None:
            continue
        try:
            annotation, info = descriptor.annotation, descriptor.parameter_info
            many = get_origin(annotation) is list
            if many:
                args = get_args(annotation)
                if len(args) != 1:
                    continue
                annotation = args[0]
            convert = _converter(annotation, info)
        except AttributeError:  # a typer whose parameter info reads otherwise: it converts this one itself
            continue
        if convert is not None:
            param._runtime_param = QuickCoercion(convert, many)


class QuickParams:
    """Mixin for a typer command or group: :func:`install` on its parameters, the ``--help`` option included
    (which click makes on first use)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        install(self.params)

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            install([option])
        return option
