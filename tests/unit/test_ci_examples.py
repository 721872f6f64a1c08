"""The CI workflows in examples/ci/ run driftscope commands that exist, with flags the CLI's own parser accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main
import yaml
from typer.core import TyperGroup
from typer.exceptions import TyperException  # typer's (vendored) click raises its UsageError as one

from monitor.cli.main import app

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "ci").glob("*.yml"))
OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&", "(", ")"}


def run_scripts(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job.get("steps", []) if "run" in step]


def driftscope_calls(script: str) -> list[list[str]]:
    """The argv of every `driftscope` command in a step's script (GitHub expressions stand as one word)."""
    script = re.sub(r"\$\{\{[^}]*\}\}", "EXPR", script).replace("\\\n", " ")
    calls = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
        for i, word in enumerate(words):
            if word == "driftscope" and (i == 0 or words[i - 1] in OPERATORS | {"do", "then"}):
                argv = []
                for arg in words[i + 1 :]:
                    if arg in OPERATORS:
                        break
                    argv.append(arg)
                calls.append(argv)
    return calls


def parse(argv: list[str]) -> object:
    """Resolve argv to its command and parse its options as the CLI would (nothing runs)."""
    command = typer.main.get_command(app)
    ctx = command.make_context("driftscope", list(argv), resilient_parsing=True)
    args = list(argv)
    while isinstance(command, TyperGroup):
        name, args = args[0], args[1:]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"driftscope has no command {name!r} ({' '.join(argv)})"
        command, ctx = sub, sub.make_context(name, list(args), parent=ctx, resilient_parsing=True)
    command.make_context(command.name or "", list(args), parent=ctx.parent)  # raises on an unknown or missing flag
    return command


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_workflow_commands_exist_with_their_flags(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    calls = [call for script in run_scripts(workflow) for call in driftscope_calls(script)]
    assert calls, f"{path.name} runs no driftscope command"
    for argv in calls:
        try:
            parse(argv)
        except TyperException as exc:
            pytest.fail(f"{path.name}: driftscope {' '.join(argv)}: {exc}")


def test_the_release_workflow_runs_the_whole_loop() -> None:
    workflow = yaml.safe_load((EXAMPLES[0].parent / "canary.yml").read_text())
    commands = [" ".join(call[:2]) for script in run_scripts(workflow) for call in driftscope_calls(script)]
    # train → check → deploy record → canary (until it decides) → promote or roll back, each recorded
    assert commands[:3] == ["check --reference", "deploy record", "canary --model"]
    assert commands.count("deploy record") == 3


def test_an_unknown_flag_is_caught() -> None:
    with pytest.raises(TyperException, match="--candidat"):
        parse(["canary", "--model", "churn", "--candidat", "2.1", "--baseline", "2.0"])
    with pytest.raises(TyperException, match="Missing parameter: baseline"):
        parse(["canary", "--model", "churn", "--candidate", "2.1"])
