"""Progress on stderr: a repainting tqdm bar on a terminal, plain lines at a bounded rate elsewhere.

A bar that repaints every half second is right for a person watching and wrong for a SLURM log or a file
(a 40-minute sweep wrote thousands of carriage-return frames). Off a terminal, `progress_bar` gives a
`LineProgress`: one line at the start, then one each `LINE_SECONDS` or each `LINE_FRACTION` of the total
(but not within `MIN_LINE_SECONDS` of the last), and one at the end: a short task prints two lines.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

from tqdm import tqdm

LINE_SECONDS = 30.0
LINE_FRACTION = 0.1
MIN_LINE_SECONDS = 5.0
T = TypeVar("T")


def progress_bar(
    *,
    total: float | None,
    desc: str,
    unit: str = "it",
    unit_scale: bool = False,
    initial: float = 0,
    disable: bool = False,
    leave: bool = True,
    stream: IO[str] | None = None,
):
    """A tqdm bar when `stream` (default stderr) is a terminal, else a `LineProgress` (same interface)."""
    stream = stream or sys.stderr
    interactive = getattr(stream, "isatty", lambda: False)()
    if disable or interactive:
        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=unit_scale,
            initial=initial,
            disable=disable,
            leave=leave,
            file=stream,
            dynamic_ncols=True,
        )
    return LineProgress(
        total=total, desc=desc, unit=unit, unit_scale=unit_scale, initial=initial, stream=stream
    )


def track(
    items: Iterable[T], *, total: int, desc: str, unit: str = "it", disable: bool = False
) -> Iterator[T]:
    """`items` with a progress bar, as `tqdm(items)` would give."""
    with progress_bar(total=total, desc=desc, unit=unit, disable=disable) as bar:
        for item in items:
            yield item
            bar.update()


class LineProgress:
    """The part of tqdm's interface this project uses (`update`, `n`, `set_postfix[_str]`, `close`, `with`),
    printed as whole lines in tqdm's own format, at most one per `LINE_SECONDS` or `LINE_FRACTION`."""

    def __init__(self, *, total, desc: str, unit: str, unit_scale: bool, initial: float, stream: IO[str]):
        self.total, self.desc, self.unit, self.unit_scale = total, desc, unit, unit_scale
        self.n = self.initial = initial
        self.stream = stream
        self.postfix = ""
        self.started = time.monotonic()
        self.closed = False
        self._last_time = -math.inf
        self._last_bucket = -1
        self._emit()

    def update(self, n: float = 1) -> None:
        self.n += n
        self.refresh()

    def set_postfix(self, refresh: bool = True, **values) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())
        if refresh:
            self.refresh()

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = text
        if refresh:
            self.refresh()

    def refresh(self) -> None:
        """Print a line if `LINE_SECONDS` passed, or `MIN_LINE_SECONDS` and the count crossed into a new
        `LINE_FRACTION`."""
        quiet = time.monotonic() - self._last_time
        if quiet >= LINE_SECONDS or (quiet >= MIN_LINE_SECONDS and self._bucket() > self._last_bucket):
            self._emit()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._emit()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _bucket(self) -> int:
        if not self.total:
            return -1
        return int(min(self.n / self.total, 1.0) / LINE_FRACTION)

    def _emit(self) -> None:
        self._last_time, self._last_bucket = time.monotonic(), self._bucket()
        line = tqdm.format_meter(
            self.n,
            self.total,
            time.monotonic() - self.started,
            prefix=self.desc,
            unit=self.unit,
            unit_scale=self.unit_scale,
            postfix=self.postfix or None,
            ncols=0,  # no bar: the percentage and counts say it in a log
            initial=self.initial,
        )
        self.stream.write(line + "\n")
        self.stream.flush()
