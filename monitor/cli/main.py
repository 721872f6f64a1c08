"""The ``driftscope`` command line.

This is an entry point: it may wire collectors, detectors and alerts together, which the
monitor core never does. Each area adds its commands in its own module (``monitor/cli/``)
through ``register(app)``, listed once in :data:`LAZY_COMMANDS` with the line ``driftscope
--help`` shows for it: a module, and the libraries it needs, is imported only when one of its
commands runs or shows its own help, so that every command starts fast.

User mistakes (a bad config, a store not migrated) print one clear message and exit 2, a
store that cannot be reached one line and exit 1; only bugs show a traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar
from functools import cache, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

import typer
import typer.main
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from monitor.config import Config, ConfigError, load_config
from monitor.errors import DriftscopeError, StoreUnreachable

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr)
    # Off a terminal rich assumes 80 columns and breaks lines mid-word; logs and CI output
    # read better with each message on one line, wrapped (if at all) by whatever shows it.
    console.soft_wrap = not console.is_terminal
    return console


err_console = _console(stderr=True)
out_console = _console(stderr=False)

# Area module of each command and the line `driftscope --help` lists for it (the first paragraph
# of the command's own help; tests/unit/test_cli_startup.py holds the two equal).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "api": ("api", "Serve the ingestion API (POST /v1/models/{model}/predictions and /labels)."),
    "worker": (
        "worker",
        "Run collectors, compute every closed window of every monitor, evaluate alerts; stop on SIGTERM/Ctrl-C.",
    ),
    "dashboard": ("dashboard", "The web dashboard (Dash)."),
    "up": (
        "run",
        "Run the API, the worker and the dashboard in one process (one machine; see `api`, `worker`, `dashboard`).",
    ),
    "demo": (
        "run",
        "A live demo on an embedded store: a simulated loan model whose traffic starts drifting after 30 seconds.",
    ),
    "demo-service": (
        "demo_service",
        "Run a demo loan-approval model service that logs every prediction to Elasticsearch.",
    ),
    "check": (
        "check",
        "Gate a deployment: exit 1 if drift or a performance drop fails a test, 0 if all pass, 2 on bad input.",
    ),
    "canary": (
        "canary",
        "Compare a candidate version with its baseline: exit 0 to promote, 1 if worse, 2 if not enough data yet.",
    ),
    "deploy": ("deploy", "Record deployments of model versions; list them."),
    "status": (
        "status",
        "Print each model's live health; exit 0 if healthy, 1 if an alert fires, 2 if there is no data yet.",
    ),
    "report": (
        "report",
        "Write Evidently's HTML report (drift, and performance when labelled) of one window against its reference.",
    ),
    "alerts": ("alerts", "List, acknowledge and silence alerts; inspect and test delivery."),
    "runs": ("runs", "List the runs of the monitors' windows; start failed ones again."),
    "apikey": ("api", "Create, list and revoke API keys for the ingestion API."),
    "collect": ("collect", "Read a source into the store now."),
    "reference": ("reference", "Reference datasets that monitors compare windows with."),
    "labels": ("labels", "Ground truth (labels) for stored predictions."),
    "prune": ("prune", "Delete what each model's retention lets go, never what a reference or a window still needs."),
}
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(module for module, _ in LAZY_COMMANDS.values()))


class _LazyGroup(TyperGroup):
    """The root group: knows every command by name and help line, imports a command's module on first use."""

    _listing: ClassVar[bool] = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in LAZY_COMMANDS if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, help_line = LAZY_COMMANDS[cmd_name]
            if self._listing:
                return TyperCommand(cmd_name, help=help_line)
            area = typer.Typer()
            importlib.import_module(f"monitor.cli.{module}").register(area)
            self.commands.update(typer.main.get_group(area).commands)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.list_commands(ctx):
            # An unknown name fails in there, with typer's "did you mean" drawn from self.commands:
            # let it see every command's name.
            for name, (_, help_line) in LAZY_COMMANDS.items():
                self.commands.setdefault(name, TyperCommand(name, help=help_line))
        return super().resolve_command(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # The command list needs names and help lines only: import no module for it.
        type(self)._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            type(self)._listing = False


app = typer.Typer(
    cls=_LazyGroup,
    name="driftscope",
    help="Driftscope: watch ML models in production — ingest predictions, score drift, alert, show it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Check a driftscope.yaml.", no_args_is_help=True)
db_app = typer.Typer(help="Create and migrate the store (Alembic).", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")

DEFAULT_CONFIG_FILE = Path("driftscope.yaml")
# Which config file the running command read, for the line open_store logs; set as its options are parsed.
_config_source: ContextVar[str] = ContextVar("config_source", default="built-in defaults")


def _find_config(value: Path | None) -> Path | None:
    """-c, else $DRIFTSCOPE_CONFIG (click reads both), else ./driftscope.yaml, else the built-in defaults."""
    if value is None and DEFAULT_CONFIG_FILE.is_file():
        value = DEFAULT_CONFIG_FILE
    _config_source.set("built-in defaults" if value is None else str(value))
    return value


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="DRIFTSCOPE_CONFIG",
        callback=_find_config,
        help="driftscope.yaml (default: $DRIFTSCOPE_CONFIG, else ./driftscope.yaml, "
        "else built-in defaults with store sqlite:///driftscope.db).",
        show_default=False,
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn Driftscope's own errors into a message and exit code 2 instead of a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            err_console.print(f"[red]error:[/red] invalid configuration ({exc.source}):", highlight=False)
            for path, message in exc.errors:
                err_console.print(f"  {path}: {message}", highlight=False, markup=False)
            raise typer.Exit(2) from None
        except DriftscopeError as exc:
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            # A store that is down is no mistake in the command: exit 1, as for any failed run.
            raise typer.Exit(1 if isinstance(exc, StoreUnreachable) else 2) from None

    return wrapper  # type: ignore[return-value]


def open_store(config: Config) -> Engine:
    """The store of ``config``, connected to once: every command that uses the store opens it here."""
    from monitor.store.engine import make_engine, ping, safe_url

    engine = make_engine(config.store)
    log.info("config %s, store %s", _config_source.get(), safe_url(engine))
    ping(engine)
    return engine


@app.callback()
def main_options(
    log_level: Annotated[
        str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.", envvar="DRIFTSCOPE_LOG_LEVEL")
    ] = "INFO",
    log_format: Annotated[
        str, typer.Option(help="console (key=value) or json (one object per line).", envvar="DRIFTSCOPE_LOG_FORMAT")
    ] = "console",
) -> None:
    if log_format not in ("console", "json"):
        raise typer.BadParameter("expected console or json", param_hint="--log-format")
    from monitor.logs import configure_logging

    configure_logging(log_level, "json" if log_format == "json" else "console")


@config_app.command("validate")
@user_errors
def config_validate(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(help="The driftscope.yaml to check (or give it with -c/--config).", show_default=False),
    ] = None,
    config_file: ConfigOption = None,
    check_sources: Annotated[
        bool, typer.Option("--check-sources", help="Also dry-run every Prometheus query against its source.")
    ] = False,
) -> None:
    """Exit 0 if FILE (or -c FILE, or $DRIFTSCOPE_CONFIG) is valid; else print every error with its key path, exit 2."""
    # FILE wins over $DRIFTSCOPE_CONFIG; FILE and -c naming two different files is a mistake.
    chosen = file or config_file
    if (
        file is not None
        and config_file is not None
        and file != config_file
        # by name: typer vendors its own click, whose ParameterSource is not click's
        and getattr(ctx.get_parameter_source("config_file"), "name", None) == "COMMANDLINE"
    ):
        raise typer.BadParameter(f"two files given: {file} and {config_file}", param_hint="FILE / --config")
    if chosen is None:
        raise typer.BadParameter(
            "give the file to check: FILE, -c FILE, $DRIFTSCOPE_CONFIG or ./driftscope.yaml", param_hint="FILE"
        )
    config = load_config(chosen)
    from alerts import RuleError, compile_rules  # alert expressions are parsed by alerts/, not by pydantic

    try:
        compile_rules(config)
    except RuleError as exc:
        raise ConfigError(exc.errors, str(chosen)) from None
    if check_sources:
        from collectors.prometheus import check_queries

        if errors := check_queries(config):
            raise ConfigError(errors, str(chosen))
    out_console.print(
        f"{chosen}: valid — {len(config.models)} model(s), {len(config.monitors)} monitor(s), "
        f"{len(config.sources)} source(s), {len(config.alerts.rules)} alert rule(s)",
        highlight=False,
    )


@db_app.command("upgrade")
@user_errors
def db_upgrade(
    config: ConfigOption = None,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from monitor.store.engine import current_revision, upgrade

    engine = open_store(load_config(config))
    upgrade(engine, revision)
    out_console.print(f"store at revision {current_revision(engine)}", highlight=False)


@db_app.command("downgrade")
@user_errors
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.", show_default=False)],
    config: ConfigOption = None,
) -> None:
    """Revert migrations down to REVISION."""
    from monitor.store.engine import current_revision, downgrade

    engine = open_store(load_config(config))
    downgrade(engine, revision)
    out_console.print(f"store at revision {current_revision(engine) or 'base (empty)'}", highlight=False)


@db_app.command("current")
@user_errors
def db_current(config: ConfigOption = None) -> None:
    """Print the store's revision and whether it is up to date."""
    from monitor.store.engine import current_revision, head_revision

    engine = open_store(load_config(config))
    current, head = current_revision(engine), head_revision()
    state = "up to date" if current == head else f"behind (newest is {head}): run `driftscope db upgrade`"
    out_console.print(f"{current or 'none (empty store)'} — {state}", highlight=False)


@cache  # once per process: tests that walk the whole command tree call it
def _register_commands() -> None:
    """Import every area module and add its commands now, rather than on first use."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"monitor.cli.{name}").register(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
