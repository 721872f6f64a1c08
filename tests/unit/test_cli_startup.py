"""The CLI starts without the heavy libraries; they load with the command that needs them (issue 18, item 16).

No timing here (bench/cli_startup.py measures it): what is asserted is which modules a start imports.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
import typer.main

from monitor.cli import main as cli

HEAVY = ("pandas", "numpy", "scipy", "sklearn", "evidently", "dash", "plotly", "pyarrow", "elasticsearch", "fastapi")
HEAVY += ("uvicorn", "apscheduler", "sqlalchemy", "alembic", "structlog")

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


@pytest.mark.parametrize(
    "args", [["db", "upgrade"], ["collect", "elasticsearch"], ["reference", "upload"], ["report"], ["config", "validate"]]
)
def test_command_help_imports_no_heavy_library(args: list[str]) -> None:
    assert not modules_imported_by(*args, "--help") & set(HEAVY)


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
