"""The progress bar of the commands that stream a data file into the store (``labels upload``,
``reference upload``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from monitor.cli.main import err_console


@contextmanager
def reading_bar(file: Path) -> Iterator[Callable[[int, int | None], None]]:
    """A bar on stderr, gone when the block ends, fed by the ``progress(done, total)`` callback it
    yields: bytes read of a CSV, rows of a Parquet file."""
    columns = [TextColumn("reading {task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn()]
    if file.suffix.lower() in (".parquet", ".pq"):
        # Parquet reports rows, and its total is unknown until the footer is read: "?" until then.
        columns[2] = MofNCompleteColumn(" of ")
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(file.name, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)
