"""A progress display for terminals: one bar per blob in flight and one for the total.

rich is imported only here, and this module only when standard error is a terminal, so the hook Job
(no terminal) never pays for it.
"""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
)
from rich.text import Text

from promoter.cli.common import human_size
from promoter.oci.digest import Digest
from promoter.remote.copy import BlobAction, CopyProgress


def binary_rate(bytes_per_second: float | None) -> str:
    """A transfer rate in the units every other size promoter prints uses (KiB, MiB: powers of
    1024), where rich's own speed column says kB/s and MB/s beside its MiB totals."""
    if bytes_per_second is None:
        return "?"
    return f"{human_size(int(bytes_per_second))}/s"


class BinarySpeedColumn(ProgressColumn):
    """The transfer speed, in :func:`binary_rate` units."""

    def render(self, task: Task) -> Text:
        """The task's current speed."""
        return Text(binary_rate(task.finished_speed or task.speed), style="progress.data.speed")


class TerminalProgress(CopyProgress):
    """Bytes per blob and in total, on standard error."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            BinarySpeedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._total = self._progress.add_task("total", total=0)
        self._tasks: dict[Digest, TaskID] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> TerminalProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def blob_started(self, digest: Digest, size: int) -> None:
        """Add a bar for the blob and grow the total."""
        with self._lock:
            self._tasks[digest] = self._progress.add_task(digest.short, total=size)
            total = self._progress.tasks[self._total].total or 0
            self._progress.update(self._total, total=total + size)

    def blob_advanced(self, digest: Digest, nbytes: int) -> None:
        """Advance the blob's bar and the total."""
        task = self._tasks.get(digest)
        if task is not None:
            self._progress.advance(task, nbytes)
        self._progress.advance(self._total, nbytes)

    def blob_finished(self, digest: Digest, action: BlobAction) -> None:  # noqa: ARG002 - interface
        """Drop the blob's bar."""
        with self._lock:
            task = self._tasks.pop(digest, None)
        if task is not None:
            self._progress.remove_task(task)
