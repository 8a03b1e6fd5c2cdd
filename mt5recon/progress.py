"""Progress of long work: a live bar on a terminal, a plain line now and then in a log or a pipe.

Either way the work ends with one line saying what was done (`Progress.done`), so a log read the
next morning tells the same story as the screen did.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Self, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

PLAIN_EVERY_SECS = 5.0


class Progress:
    """`total` steps of `label`; `advance()` after each, `done(summary)` at the end."""

    def __init__(
        self, label: str, total: int, *, stream: TextIO | None = None, plain_every_secs: float = PLAIN_EVERY_SECS
    ) -> None:
        self.label = label
        self.total = total
        self.completed = 0
        self.stream = stream if stream is not None else sys.stderr
        self.plain_every_secs = plain_every_secs
        self.started = time.monotonic()
        self._last_line = self.started
        self._bar: RichProgress | None = None
        if self.stream.isatty():
            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(file=self.stream),
                transient=True,
            )
            self._task = self._bar.add_task(label, total=total, note="")
            self._bar.start()

    def advance(self, steps: int = 1, note: str = "") -> None:
        """`steps` more done; `note` says what the last one was (shown beside the bar)."""
        self.completed += steps
        if self._bar is not None:
            self._bar.update(self._task, advance=steps, note=note)
            return
        now = time.monotonic()
        if now - self._last_line >= self.plain_every_secs or self.completed >= self.total:
            self._last_line = now
            suffix = f": {note}" if note else ""
            print(f"{self.label}: {self.completed}/{self.total}{suffix}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def done(self, summary: str) -> None:
        """Stop the bar and say what was done, with the time it took."""
        self.close()
        elapsed = time.monotonic() - self.started
        print(f"{summary} ({elapsed:.1f} s)", file=self.stream, flush=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
