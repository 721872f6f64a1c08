"""The CLI starts without the heavy libraries; they load with the command that needs them (issue 18, item 16).

No timing here (bench/cli_startup.py measures it): what is asserted is which modules a start imports.
"""

from __future__ import annotations

import json
import subprocess
import sys

import typer
import typer.main
from typer.core import TyperGroup

from monitor.cli import main as cli

HEAVY: tuple[str, ...] = ("pandas", "numpy", "scipy", "sklearn", "evidently", "dash", "plotly", "pyarrow")
HEAVY += ("elasticsearch", "fastapi", "uvicorn", "apscheduler", "sqlalchemy", "alembic", "structlog")

# Runs the console script's main() with ARGV and prints the top-level packages and monitor.cli modules imported.
PROBE = """
import json, sys
from monitor.cli.main import main
sys.argv = ["driftscope", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
sys.stdout = sys.__stdout__
print(json.dumps(sorted(name for name in sys.modules if "." not in name or name.startswith("monitor.cli."))))
"""


def modules_imported_by(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


# Shows the help of each argv in turn (argv as JSON in sys.argv[1]) in this one process, one process
# for all rather than one each to keep the suite fast, and prints per argv the exit code and the heavy
# libraries (sys.argv[2]) its help imported first: one an earlier argv imported is not counted again.
HELP_WALK_PROBE = """
import contextlib, io, json, sys
from monitor.cli.main import main
heavy = set(json.loads(sys.argv[2]))
seen, report = set(sys.modules), {}
for argv in json.loads(sys.argv[1]):
    sys.argv = ["driftscope", *argv, "--help"]
    code = 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main()
        except SystemExit as exc:
            code = exc.code or 0
    new = {name.split(".")[0] for name in set(sys.modules) - seen}
    seen = set(sys.modules)
    report[" ".join(argv)] = [code, sorted(new & heavy)]
print(json.dumps(report))
"""


def command_paths() -> list[list[str]]:
    """The argv of every command and sub-command the root group lists (imports every area module)."""
    paths: list[list[str]] = []

    def walk(group: TyperGroup, prefix: list[str]) -> None:
        ctx = typer.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            paths.append([*prefix, name])
            if isinstance(command, TyperGroup):
                walk(command, [*prefix, name])

    walk(typer.main.get_group(cli.app), [])
    return paths


def test_the_walk_reaches_every_command_and_sub_command() -> None:
    paths = {" ".join(path) for path in command_paths()}
    assert {*cli.LAZY_COMMANDS, "config", "db"} <= paths
    assert {"alerts list", "apikey create", "dashboard hash-password", "db upgrade", "config validate"} <= paths


def test_no_command_help_imports_a_heavy_library() -> None:
    result = subprocess.run(
        [sys.executable, "-c", HELP_WALK_PROBE, json.dumps(command_paths()), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout.splitlines()[-1])
    assert {argv: code for argv, (code, _) in report.items() if code != 0} == {}
    assert {argv: heavy for argv, (_, heavy) in report.items() if heavy} == {}


def test_importing_the_cli_imports_no_heavy_library() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import sys, monitor.cli.main; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = {name.split(".")[0] for name in result.stdout.split()}
    assert not loaded & set(HEAVY)


def test_top_level_help_imports_no_command_module() -> None:
    loaded = modules_imported_by("--help")
    assert not loaded & set(HEAVY)
    assert not {name for name in loaded if name.startswith("monitor.cli.")} - {"monitor.cli", "monitor.cli.main"}


def loaded_commands() -> dict[str, object]:
    """Every command as its area module registers it (imports them all)."""
    commands: dict[str, object] = {}
    for module in cli.COMMAND_MODULES:
        area = typer.Typer()
        __import__(f"monitor.cli.{module}", fromlist=["register"]).register(area)
        for name, command in typer.main.get_group(area).commands.items():
            assert cli.LAZY_COMMANDS[name][0] == module, f"{name} is registered by monitor.cli.{module}"
            commands[name] = command
    return commands


def test_the_listed_commands_are_those_the_modules_register_with_their_help_line() -> None:
    commands = loaded_commands()
    assert set(commands) == set(cli.LAZY_COMMANDS)
    for name, command in commands.items():
        own = (command.short_help or command.help or "").split("\n\n")[0].strip()  # type: ignore[attr-defined]
        assert " ".join(own.split()) == cli.LAZY_COMMANDS[name][1], name
