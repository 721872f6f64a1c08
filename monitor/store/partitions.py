"""Weekly partitions of the ``prediction`` table on Postgres (migration 0010); SQLite keeps one table.

``prediction`` is ``PARTITION BY RANGE (ts)``: one partition per week (Monday 00:00 UTC to the next
Monday, named ``prediction_p20261130`` after its Monday) and ``prediction_default`` for the rest
(weeks not created, e.g. a backfill of old data), so an insert never fails for want of a partition.
A week keeps retention's drops coarse enough that a year is ~53 partitions (queries that cannot
prune, like the stale scan by reception time, visit each one), and fine enough that at most a week
beyond a model's retention is left to batch deletes.

Postgres requires every unique constraint of a partitioned table to include ``ts``, so uniqueness of
``(model_id, prediction_id)`` lives in the unpartitioned ``prediction_key`` (primary key
``(model_id, prediction_id)`` → ``ts``), filled and emptied by statement triggers on ``prediction``:
any insert of a second row with the same id fails as the old ``UNIQUE`` did. The writer upserts with
the stored ``ts`` of an id it finds there, so a record re-sent with a different timestamp updates its
one row (conflict target ``(model_id, prediction_id, ts)``), and labels find their row's partition
through it.

:func:`ensure` creates the weeks ahead (``driftscope db upgrade`` and the worker, hourly); a week
created while ``prediction_default`` holds rows of it takes them over in the same transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

WEEK = timedelta(days=7)
_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)
# Weeks created ahead of the current one: a worker down for a month still finds its partitions.
AHEAD = 4
DEFAULT = "prediction_default"
KEY_TABLE = "prediction_key"
_NAME = re.compile(r"^prediction_p(\d{8})$")
# A partition is created or dropped under a lock on ``prediction``; waiting longer than this for it
# (behind a long window load) gives up until the next pass rather than queueing every insert behind it.
LOCK_TIMEOUT = "10s"


@dataclass(frozen=True, slots=True)
class Partition:
    """One week of ``prediction``: rows with ``start <= ts < end``."""

    name: str
    start: datetime
    end: datetime


def week(moment: datetime) -> Partition:
    """The weekly partition ``moment`` belongs to."""
    start = _MONDAY + ((moment - _MONDAY) // WEEK) * WEEK
    return Partition(f"prediction_p{start:%Y%m%d}", start, start + WEEK)


def is_partitioned(connection: Connection) -> bool:
    """Whether ``prediction`` is the partitioned table of migration 0010 (Postgres only)."""
    if connection.dialect.name != "postgresql":
        return False
    found = connection.scalar(
        text("SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('prediction'))")
    )
    return bool(found)


def partitions(connection: Connection) -> list[Partition]:
    """The weekly partitions attached to ``prediction``, oldest first (the default partition apart)."""
    names = connection.scalars(
        text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
             "WHERE i.inhparent = to_regclass('prediction')")
    ).all()  # fmt: skip
    found = []
    for name in names:
        match = _NAME.match(name)
        if match:
            found.append(week(datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)))
    return sorted(found, key=lambda p: p.start)


def create(connection: Connection, partition: Partition) -> bool:
    """Attach ``partition``, moving the default partition's rows of its week into it; in the caller's transaction.

    Inserts wait for the (short) transaction: none may route a row of the week into the default
    partition between the move and the attach, which would make the attach fail. False if another
    process created it first.
    """
    bounds = {"start": partition.start, "end": partition.end}
    connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    connection.execute(text("LOCK TABLE prediction IN SHARE ROW EXCLUSIVE MODE"))
    if connection.scalar(text("SELECT to_regclass(:name)"), {"name": partition.name}) is not None:
        return False
    connection.execute(text(f"CREATE TABLE {partition.name} (LIKE prediction INCLUDING DEFAULTS)"))
    # Rows move with their ids and timestamps: their prediction_key rows stay right (no trigger fires
    # on a partition or on a table not attached yet).
    connection.execute(
        text(f"WITH moved AS (DELETE FROM {DEFAULT} WHERE ts >= :start AND ts < :end RETURNING *) "
             f"INSERT INTO {partition.name} SELECT * FROM moved"),
        bounds,
    )  # fmt: skip
    connection.execute(
        text(f"ALTER TABLE prediction ATTACH PARTITION {partition.name} "
             f"FOR VALUES FROM ('{partition.start.isoformat()}') TO ('{partition.end.isoformat()}')")
    )  # fmt: skip
    return True


def ensure(engine: Engine, now: datetime) -> list[Partition]:
    """Create the partitions of the current week and :data:`AHEAD` weeks after it that are missing; returns them."""
    with engine.connect() as connection:
        if not is_partitioned(connection):
            return []
        existing = {p.name for p in partitions(connection)}
    wanted = [week(now + i * WEEK) for i in range(AHEAD + 1)]
    created = []
    for partition in wanted:
        if partition.name in existing:
            continue
        with engine.begin() as connection:
            if create(connection, partition):
                created.append(partition)
    return created


def row_count(connection: Connection, partition: Partition) -> int:
    return int(connection.scalar(text(f"SELECT count(*) FROM {partition.name}")) or 0)


def drop(connection: Connection, partition: Partition) -> None:
    """Drop ``partition`` with its rows, in the caller's transaction (keys are the caller's business)."""
    connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    connection.execute(text(f"DROP TABLE {partition.name}"))
