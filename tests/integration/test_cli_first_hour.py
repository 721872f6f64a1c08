"""What a new user meets in the first hour with the ``driftscope`` CLI (issue 18), on a real SQLite store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from monitor.cli import main as cli


def driftscope(*args: str, env: dict[str, str] | None = None) -> Result:
    cli._register_commands()
    return CliRunner().invoke(cli.app, list(args), env=env)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "driftscope.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "store": f"sqlite:///{tmp_path / 'store.db'}",
                "models": {
                    "churn": {
                        "task": "binary",
                        "features": {"tenure": "numeric", "plan": "categorical"},
                        "fields": {"score": "score", "label": "label"},
                    }
                },
            }
        )
    )
    result = driftscope("db", "upgrade", "-c", str(path))
    assert result.exit_code == 0, result.output
    return path


def training_frame(rows: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(6)
    return pd.DataFrame(
        {
            "tenure": rng.normal(0, 1, rows),
            "plan": rng.choice(["basic", "pro"], rows),
            "score": rng.uniform(0, 1, rows),
            "label": rng.integers(0, 2, rows),
        }
    )


WRITERS = {
    ".csv": lambda frame, path: frame.to_csv(path, index=False),
    ".csv.gz": lambda frame, path: frame.to_csv(path, index=False, compression="gzip"),
    ".parquet": lambda frame, path: frame.to_parquet(path, index=False),
    ".pq": lambda frame, path: frame.to_parquet(path, index=False),
}


@pytest.mark.parametrize("terminal", ["1", "0"], ids=["terminal", "pipe"])
@pytest.mark.parametrize("suffix", list(WRITERS))
def test_reference_upload_reads_every_supported_format(
    config_path: Path, tmp_path: Path, suffix: str, terminal: str
) -> None:
    # TTY_COMPATIBLE=1 makes rich draw the progress bar as on a terminal, where the
    # Parquet row counter once formatted a total that was not known yet.
    file = tmp_path / f"churn_train{suffix}"
    WRITERS[suffix](training_frame(), file)
    result = driftscope(
        "reference", "upload", "--model", "churn", str(file), "-c", str(config_path), env={"TTY_COMPATIBLE": terminal}
    )
    assert result.exit_code == 0, result.output
    assert f"reference dataset 'churn_train{suffix}' of model 'churn': 500 rows stored" in result.stdout


def driftscope_process(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``driftscope ARGS`` as a separate process with stdout and stderr on pipes, as under CI or a log shipper."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_errors_on_a_pipe_are_not_wrapped(config_path: Path, tmp_path: Path) -> None:
    missing = tmp_path / ("a_training_file_whose_name_is_longer_than_any_terminal_is_wide_" * 2 + ".csv")
    result = driftscope_process(
        "reference", "upload", "--model", "churn", str(missing), "-c", str(config_path), cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert f"error: {missing}: no such file\n" in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", [["db", "upgrade"], ["db", "current"], ["worker"], ["alerts", "list"]])
def test_an_unreachable_store_is_one_line_without_the_password(tmp_path: Path, command: list[str]) -> None:
    port = free_port()  # closed: nothing listens on it
    store = f"postgresql+psycopg://user:secret@127.0.0.1:{port}/db"
    result = driftscope_process(*command, cwd=tmp_path, env={"DRIFTSCOPE_STORE": store})
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"127.0.0.1:{port}" in errors[0] and "refused" in errors[0].lower(), errors[0]
    assert "secret" not in result.stderr + result.stdout


def store_config(directory: Path, store_file: str) -> Path:
    """A driftscope.yaml in ``directory`` whose store is the migrated SQLite file ``store_file`` there."""
    directory.mkdir(exist_ok=True)
    path = directory / "driftscope.yaml"
    path.write_text(yaml.safe_dump({"store": f"sqlite:///{directory / store_file}"}))
    assert driftscope("db", "upgrade", "-c", str(path)).exit_code == 0
    return path


def test_a_command_beside_driftscope_yaml_reads_it_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store_config(tmp_path, "here.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIFTSCOPE_CONFIG", raising=False)
    monkeypatch.delenv("DRIFTSCOPE_STORE", raising=False)
    result = driftscope("alerts", "list")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "driftscope.db").exists()  # the built-in default store was not created
    [line] = [line for line in result.stderr.splitlines() if "store" in line]
    assert "config driftscope.yaml" in line and f"store sqlite:///{tmp_path / 'here.db'}" in line


def test_config_precedence_is_option_then_environment_then_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_config(tmp_path, "cwd.db")
    from_env = store_config(tmp_path / "env", "env.db")
    from_option = store_config(tmp_path / "option", "option.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIFTSCOPE_STORE", raising=False)

    def store_used(*args: str) -> str:
        result = driftscope("db", "current", *args)
        assert result.exit_code == 0, result.output
        [line] = [line for line in result.stderr.splitlines() if "store sqlite" in line]
        return line.split("store sqlite:///")[1].split()[0]

    monkeypatch.setenv("DRIFTSCOPE_CONFIG", str(from_env))
    assert store_used("-c", str(from_option)).endswith("option.db")
    assert store_used().endswith("env.db")
    monkeypatch.delenv("DRIFTSCOPE_CONFIG")
    assert store_used().endswith("cwd.db")


def test_without_a_config_file_the_line_says_built_in_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIFTSCOPE_STORE", f"sqlite:///{tmp_path / 'x.db'}")
    result = driftscope("db", "current")
    assert result.exit_code == 0, result.output
    assert "config built-in defaults" in result.stderr
