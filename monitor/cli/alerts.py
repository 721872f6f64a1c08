"""``driftscope alerts list|ack|silence|silences|expire|failed|test``: alerts from the command line.

The store (SQLAlchemy) is imported inside each command: ``driftscope alerts --help`` imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from monitor.cli.main import ConfigOption, open_store, out_console, user_errors
from monitor.config import Config, load_config, parse_duration, parse_time
from monitor.errors import DriftscopeError

if TYPE_CHECKING:
    from sqlalchemy import Engine

alerts_app = typer.Typer(help="List, acknowledge and silence alerts; inspect and test delivery.", no_args_is_help=True)

STATES = ("pending", "firing", "resolved")


def _store(config_path: Path | None) -> tuple[Config, Engine]:
    from monitor.store.engine import check_migrated

    settings = load_config(config_path)
    engine = open_store(settings)
    check_migrated(engine)
    return settings, engine


def _print_table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """A table on a terminal; tab-separated lines when piped, so scripts (and grep) see whole values."""
    if out_console.is_terminal:
        table = Table(*headers)
        for row in rows:
            # Cells are data (alert text, deployment notes and URLs): Text, so rich reads no markup in them.
            table.add_row(*(Text(cell) for cell in row))
        out_console.print(table)
        return
    for line in (headers, *rows):
        typer.echo("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in line))


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _parse_time(text: str, option: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise typer.BadParameter(
            f"expected an ISO time like 2026-03-02T08:00Z, got {text!r}", param_hint=option
        ) from None


@alerts_app.command("list")
@user_errors
def list_alerts(
    state: Annotated[str, typer.Option(help="pending, firing, resolved or all.")] = "firing",
    limit: Annotated[int, typer.Option(min=1)] = 50,
    config: ConfigOption = None,
) -> None:
    """Alerts, newest first (default: firing ones)."""
    from sqlalchemy import select

    from monitor.store.tables import Alert

    if state != "all" and state not in STATES:
        raise typer.BadParameter(f"expected one of {', '.join(STATES)} or all", param_hint="--state")
    _, engine = _store(config)
    query = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if state != "all":
        query = query.where(Alert.state == state)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    lines = []
    for row in rows:
        labels = " ".join(f"{k}={v}" for k, v in row.labels.items() if k not in ("rule", "severity"))
        ack = f"{row.acknowledged_by} {_when(row.acknowledged_at)}" if row.acknowledged_by else ""
        since = (row.annotations or {}).get("since") or _when(row.started_at)
        value = "" if row.value is None else f"{row.value:.4g}"
        lines.append((str(row.id), row.state, row.severity, row.rule, labels, value, since, ack))
    _print_table(("id", "state", "severity", "rule", "labels", "value", "since", "acknowledged"), lines)


@alerts_app.command("ack")
@user_errors
def ack(
    alert_id: Annotated[int, typer.Argument(help="Alert id (see `alerts list`).", show_default=False)],
    user: Annotated[str, typer.Option("--user", "-u", help="Who acknowledges.", show_default=False)],
    comment: Annotated[str, typer.Option("--comment", "-m")] = "",
    config: ConfigOption = None,
) -> None:
    """Acknowledge a firing alert: no more repeat notifications (it still resolves)."""
    from monitor.store.actions import acknowledge

    _, engine = _store(config)
    acknowledge(engine, alert_id, user, comment, now=datetime.now(UTC))
    out_console.print(f"alert {alert_id} acknowledged by {user}", highlight=False)


@alerts_app.command("silence")
@user_errors
def silence(
    match: Annotated[
        list[str],
        typer.Option("--match", help="label=value (repeatable), e.g. --match model=churn.", show_default=False),
    ],
    author: Annotated[str, typer.Option("--author", "-a", show_default=False)],
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why.", show_default=False)],
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 2h or 30m.")] = "2h",
    starts: Annotated[str | None, typer.Option(help="ISO start (default: now).")] = None,
    config: ConfigOption = None,
) -> None:
    """Mute matching alerts for a while; they keep their state but notify no one."""
    from monitor.store.actions import create_silence

    matchers: dict[str, str] = {}
    for item in match:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise typer.BadParameter(f"expected label=value, got {item!r}", param_hint="--match")
        matchers[key.strip()] = value.strip()
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--for") from None
    begin = _parse_time(starts, "--starts") if starts else datetime.now(UTC)
    _, engine = _store(config)
    silence_id = create_silence(engine, matchers, begin, begin + length, author, comment)
    out_console.print(f"silence {silence_id} until {_when(begin + length)}", highlight=False)


@alerts_app.command("silences")
@user_errors
def silences(config: ConfigOption = None) -> None:
    """Active and upcoming silences."""
    from monitor.store.actions import active_silences

    _, engine = _store(config)
    lines = []
    for s in active_silences(engine, datetime.now(UTC)):
        matchers = " ".join(f"{k}={v}" for k, v in s.matchers.items())
        lines.append((str(s.id), matchers, _when(s.starts_at), _when(s.ends_at), s.created_by, s.comment))
    _print_table(("id", "matchers", "starts", "ends", "author", "comment"), lines)


@alerts_app.command("expire")
@user_errors
def expire(
    silence_id: Annotated[int, typer.Argument(help="Silence id (see `alerts silences`).", show_default=False)],
    config: ConfigOption = None,
) -> None:
    """End a silence now."""
    from monitor.store.actions import expire_silence

    _, engine = _store(config)
    expire_silence(engine, silence_id, now=datetime.now(UTC))
    out_console.print(f"silence {silence_id} expired", highlight=False)


@alerts_app.command("failed")
@user_errors
def failed(limit: Annotated[int, typer.Option(min=1)] = 50, config: ConfigOption = None) -> None:
    """Notifications that could not be delivered, with the reason (secrets are never part of it)."""
    from sqlalchemy import select

    from monitor.store.tables import Notification

    _, engine = _store(config)
    query = (
        select(Notification.id, Notification.channel, Notification.event, Notification.attempts)
        .add_columns(Notification.created_at, Notification.last_error)
        .where(Notification.status == "failed")
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    lines = []
    for row in rows:
        created = _when(row.created_at)
        lines.append((str(row.id), row.channel, row.event, str(row.attempts), created, row.last_error or ""))
    _print_table(("id", "channel", "event", "attempts", "created", "reason"), lines)


@alerts_app.command("test")
@user_errors
def test(
    channel: Annotated[str, typer.Argument(help="A channel name from alerts.channels.", show_default=False)],
    config: ConfigOption = None,
) -> None:
    """Send a test notification to CHANNEL now; prints whether it was delivered (never the target's answer)."""
    from alerts.outbox import send_test

    settings = load_config(config)
    try:
        send_test(settings, channel, datetime.now(UTC))
    except DriftscopeError as exc:
        raise DriftscopeError(f"test notification to {channel!r} failed: {exc}") from None
    out_console.print(f"test notification delivered to {channel}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
