"""Engines, sessions and migrations for the store.

Nothing here runs at import and constructors open nothing: :func:`make_engine` is lazy like
every SQLAlchemy engine, and the schema is created only by :func:`upgrade` (Alembic).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import store_url
from monitor.errors import StoreError, StoreUnreachable

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

# Alembic is imported by the functions that migrate: most commands only check the revision
# when they run, and importing it costs a third of a second at every start.

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # monitor/


def migrations_dir() -> Path:
    """``monitor/_alembic`` in an installed wheel, ``./alembic`` in a source checkout."""
    for candidate in (_PACKAGE_DIR / "_alembic", _PACKAGE_DIR.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise StoreError("migrations not found: expected monitor/_alembic or alembic/ beside the package")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` (any spelling :func:`~monitor.config.store_url` accepts) with the
    settings each backend needs for concurrent use."""
    # The URL may carry a password: never echo it (store_url's messages do not).
    try:
        parsed = make_url(store_url(url))
    except ValueError as exc:
        raise StoreError(f"store: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; emit it ourselves. Write transactions
        # (see transaction()) take the write lock at BEGIN IMMEDIATE, so one that reads first can
        # never fail with "database is locked" because another writer committed in between.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def safe_url(engine: Engine) -> str:
    """The engine's URL as a user may see it: the password masked."""
    return engine.url.render_as_string(hide_password=True)


def ping(engine: Engine) -> None:
    """Connect once, so that a store that is down fails here with one line rather than deep in a command."""
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        # The driver's own first line says why (refused, unknown host, authentication failed);
        # SQLAlchemy's wrapper around it adds the statement and a link, not useful to a user.
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        raise StoreUnreachable(f"cannot reach the store {safe_url(engine)}: {reason}") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" listener own transactions
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (dashboard) never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Table statistics let the planner pick the partial indexes (e.g. claimable runs); cheap when fresh.
    cursor.execute("PRAGMA optimize")
    cursor.close()


_WRITE_OPTION = "driftscope_write"


def _sqlite_begin(connection: Any) -> None:
    immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A write session: commits on success, rolls back on any error; on SQLite it holds the write lock."""
    with session_factory(engine.execution_options(**{_WRITE_OPTION: True})).begin() as session:
        yield session


def _alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to ``revision``; on a partitioned Postgres store, then create the weekly partitions ahead."""
    from datetime import UTC, datetime

    from alembic import command

    from monitor.store import partitions

    command.upgrade(_alembic_config(engine), revision)
    partitions.ensure(engine, datetime.now(UTC))


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(_alembic_config(engine), revision)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://"))).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_migrated(engine: Engine) -> None:
    """Fail with a clear message when the store is behind the code's migrations."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise StoreError(
            f"store at revision {current or 'none (empty)'}, code expects {head}: run `driftscope db upgrade`"
        )
