"""TensorBoard event files through tensorboardX (no TensorFlow, no torch needed). Scalars are tagged by
their metrics.jsonl column; the summary and tables become markdown text, figures images."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class TensorBoardTracker:
    def __init__(self, directory: Path):
        from tensorboardX import SummaryWriter

        directory.mkdir(parents=True, exist_ok=True)
        # Event files are named by the second they open in: a resume within it would overwrite the last.
        self.writer = SummaryWriter(logdir=str(directory), filename_suffix=f".{uuid.uuid4().hex[:8]}")
        self.step = 0

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()  # a kill loses nothing the run directory says was logged
        self.step = step

    def summary(self, values: Mapping[str, Any]) -> None:
        rows = [(key, value) for key, value in values.items()]
        self.table("summary", ("key", "value"), rows, self.step)

    def image(self, name: str, path: Path, step: int) -> None:
        from matplotlib.image import imread

        self.writer.add_image(name, imread(path), step, dataformats="HWC")
        self.writer.flush()

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        self.writer.add_text(name, markdown_table(columns, rows), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """TensorBoard's text tab renders markdown."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
