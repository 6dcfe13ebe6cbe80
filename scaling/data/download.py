"""Fetch a corpus file once, check its sha256, and only then put it in place (temp file + rename)."""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
import uuid
from email.message import Message
from pathlib import Path

from scaling.console import progress_bar
from scaling.errors import UserError

_CHUNK = 1 << 20


def download(url: str, sha256: str | None, dest: Path, *, progress: bool = True) -> Path:
    """Return `dest`, downloading `url` to it first if missing.

    A file that fails the sha256 check is deleted and raises UserError, so a bad or partial download never
    sits where a later run would trust it. sha256=None (a source without a pinned hash) keeps the file and
    prints its hash so it can be pinned.
    """
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    digest = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(url, timeout=60) as response,
            part.open("wb") as out,
            progress_bar(
                total=_content_length(response.headers),
                unit="B",
                unit_scale=True,
                desc=f"downloading {dest.name}",
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as err:
        part.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or err
        raise UserError(
            f"could not download {url} ({reason}); without internet, pass a local copy's path as data.corpus"
        ) from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    actual = digest.hexdigest()
    if sha256 is not None and actual != sha256.lower():
        part.unlink(missing_ok=True)
        raise UserError(f"{url}: sha256 is {actual}, expected {sha256}; the download was discarded")
    if sha256 is None:
        print(f"note: {url} has no pinned sha256; downloaded file's sha256 is {actual}", file=sys.stderr)
    os.replace(part, dest)
    return dest


def _content_length(headers: Message) -> int | None:
    value = headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None
