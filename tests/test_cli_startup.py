"""What keeps a cold ``srin harmonize`` short without changing the CLI: srin's quick option conversion
(srin_cli.cli.coercion) gives what typer's own (pydantic) conversion gives, value for value and error for error,
on every parameter of every command; commands are built on first use; a quiet run imports neither pydantic nor
Rich."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from srin_cli.cli import coercion
from srin_cli.cli.common import Device
from srin_cli.cli.main import app

from conftest import LIGHT, REPO

SAMPLES = {
    int: ["0", "1", "5", "100", "101", "-3", "007", "+5", " 5", "5.0", "5_0", "", "abc", "1" * 25, 0, 7, 100, 101, -1, True, 2.0],
    float: ["0", "0.5", "1", "1.50", "-1", "-0.0", "1e3", ".5", "5.", "inf", "nan", "", "abc", "1" * 30, 0.25, 2, 0.0, 1.0,
            1.5, -0.5, float("nan")],
    str: ["abc", "", "\udcff", "a b", 5],
    bool: [True, False, "true", "0", 1],
    Path: ["a", "", ".", "-", "x\x00y", "/no/such/place", "\udcff.png", Path("harmonized"), 5],
    Device: ["cpu", "auto", "cuda", "CPU", "gpu", "", Device.cpu, 1],
}


def parameters():
    """(command name, parameter) for every parameter of srin (the group's own and --help included)."""
    group = typer.main.get_command(app)
    ctx = group.make_context("srin", ["harmonize", "x"], resilient_parsing=True)
    found = [("srin", p) for p in group.params] + [("srin", group.get_help_option(ctx))]
    for name, command in group.commands.items():
        sub = command.make_context(name, ["x"], resilient_parsing=True)
        found += [(name, p) for p in command.params] + [(name, command.get_help_option(sub))]
    return found


def outcome(run):
    try:
        value = run()
    except typer.Exit as exc:
        return ("exit", exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        return ("error", type(exc).__name__, message)
    return ("value", type(value), repr(value))


def test_quick_conversion_matches_typer(tmp_path):
    # typer's own conversion, which srin's must match (a typer without it gets no quick conversion either)
    build_runtime_param = pytest.importorskip("typer._coercion").build_runtime_param
    unreadable_checked = tmp_path / "here"
    unreadable_checked.mkdir()
    group = typer.main.get_command(app)
    ctx = group.make_context("srin", ["harmonize", "x"], resilient_parsing=True)
    seen = set()
    for command, param in parameters():
        descriptor = param.type_descriptor
        annotation = descriptor.annotation
        many = getattr(annotation, "__origin__", None) is list
        base = annotation.__args__[0] if many else annotation
        samples = list(SAMPLES[base]) + [str(unreadable_checked), None]
        if descriptor.parameter_info.parser is not None:
            samples = ["default", "lab", "model", "nope", "", None]  # a registry's names and others
        if many:
            samples = [tuple(str(s) for s in SAMPLES[base][:3]), ["a"], (), "a", ("x\x00y",), None]
        for value in samples:
            param._runtime_param = None
            coercion.install([param])
            quick = param._runtime_param
            assert isinstance(quick, coercion.QuickCoercion), (command, param.name)
            got = outcome(lambda: quick.coerce(value, param=param, ctx=ctx))
            expected = outcome(lambda: build_runtime_param(descriptor).coerce(value, param=param, ctx=ctx))
            assert got == expected, (command, param.name, value)
            seen.add(base)
        param._runtime_param = None
        coercion.install([param])
        quick = param._runtime_param
        quick.coerce(param.default, param=param, ctx=ctx)
        assert param._runtime_param is quick, (command, param.name)  # a default never needs typer's conversion
    assert seen >= {int, float, str, bool, Path, Device}




def test_quiet_harmonize_imports_neither_pydantic_nor_rich(tmp_path):
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", LIGHT, "harmonize", str(REPO / "sample_inputs"), "-o",
                        str(tmp_path / "o"), "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 10, r.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "srin_cli.colour" in imported and "onnxruntime" in imported  # the run did its work
    assert not {m for m in imported if m.split(".")[0] in ("pydantic", "rich")}


def test_a_finished_harmonize_process_ends_without_pythons_shutdown_and_says_everything(tmp_path):
    """The quick exit (common.allow_quick_exit) keeps the exit code, stdout and stderr of a run with a failure."""
    import shutil

    root = tmp_path / "in"
    shutil.copytree(REPO / "sample_inputs", root)
    broken = next((root / "composite_images").iterdir())
    broken.write_bytes(b"not an image")
    r = subprocess.run([sys.executable, "-c", LIGHT, "harmonize", str(root), "-o", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert len(r.stdout.splitlines()) == 9 and all(Path(p).is_file() for p in r.stdout.splitlines())
    assert f"failed: {broken}" in r.stderr and "9 images written" in r.stderr
    r = subprocess.run([sys.executable, "-c", LIGHT + "raise SystemExit('not reached')\n", "harmonize", str(root), "-o",
                        str(tmp_path / "o"), "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and '"skipped": 9' in r.stdout and "not reached" not in r.stderr


@pytest.mark.parametrize("args,says", [(["--quality", "0"], "--quality"), (["--workers", "x"], "--workers"),
                                       (["--device", "gpu"], "--device"), (["--method", "nope"], "unknown --method 'nope'")])
def test_bad_values_still_get_typers_message(tmp_path, args, says):
    from conftest import run_cli

    r = run_cli("harmonize", REPO / "sample_inputs", "-o", tmp_path / "o", *args)
    assert r.exit_code == 2 and says in r.output


def test_a_run_builds_its_own_command_only():
    from srin_cli.cli.main import LazyCommands

    group = typer.main.get_command(app)
    assert isinstance(group.commands, LazyCommands) and list(group.commands) == ["segment", "harmonize", "compose", "evaluate", "train"]
    ctx = group.make_context("srin", ["harmonize", "x"], resilient_parsing=True)
    assert group.get_command(ctx, "harmonize").name == "harmonize" and group.get_command(ctx, "nope") is None
    assert list(group.commands._built) == ["harmonize"]
    assert [c.name for c in group.commands.values()] == ["segment", "harmonize", "compose", "evaluate", "train"]
