"""JSON-lines files whose every non-blank line is an object with a "text" string: corpora and task files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from scaling.errors import UserError


def text_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each non-blank line; UserError naming the line for anything else."""
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise UserError(f'{path}:{lineno}: no "text" field holding a string')
            yield lineno, record
