"""Progress off a terminal: plain lines, bounded in number, never carriage-return repaints."""

import io

from tqdm import tqdm

from scaling import console
from scaling.console import LineProgress, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_a_line_progress_and_a_terminal_gets_tqdm():
    assert isinstance(progress_bar(total=10, desc="x", stream=io.StringIO()), LineProgress)
    bar = progress_bar(total=10, desc="x", stream=_Terminal())
    assert isinstance(bar, tqdm)
    bar.close()


def test_a_short_task_prints_its_start_and_its_end():
    out = io.StringIO()
    with progress_bar(total=1000, desc="steps", unit="step", stream=out) as bar:
        for _ in range(1000):
            bar.update()
            bar.set_postfix(loss="1.0")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 2
    assert lines[0].startswith("steps:   0%")
    assert "1000/1000" in lines[-1] and "loss=1.0" in lines[-1]


def _clocked(monkeypatch, total: int) -> tuple[LineProgress, io.StringIO, list[float]]:
    now = [0.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    return LineProgress(total=total, desc="x", unit="it", unit_scale=False, initial=0, stream=out), out, now


def test_a_slow_task_prints_a_line_each_interval(monkeypatch):
    bar, out, now = _clocked(monkeypatch, total=10**6)
    for _ in range(30):
        now[0] += 10.0
        bar.update(1)  # far below 10% of the total: only the clock prints
    bar.close()
    # 300 s in 10 s updates: a line every 30 s (10), plus the start and the close.
    assert len(out.getvalue().splitlines()) == 1 + 10 + 1


def test_a_steady_task_prints_a_line_each_tenth(monkeypatch):
    bar, out, now = _clocked(monkeypatch, total=20)
    for _ in range(20):
        now[0] += 6.0  # 5% of the total every 6 s: a new tenth every 12 s
        bar.update(1)
    bar.close()
    assert len(out.getvalue().splitlines()) == 1 + 10 + 1


def test_track_yields_every_item():
    assert list(console.track(range(5), total=5, desc="x", disable=True)) == list(range(5))
