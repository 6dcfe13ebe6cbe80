"""Read back what the trackers wrote, with readers independent of the writers: TensorBoard's own event
reader, and the records of an offline W&B run parsed from its `.wandb` file (W&B's Api needs a server)."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

BLOCK = 32 * 1024  # the .wandb file is a LevelDB-style log: 32 KiB blocks of chunked records
HEADER = struct.Struct("<IHB")  # chunk: crc32c, length, kind (1 whole, 2 first, 3 middle, 4 last)


def tensorboard_scalars(directory: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} of every scalar in the event files under `directory`, duplicates kept apart
    (a step logged twice fails the caller's comparison with a list of its own)."""
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator", reason="tensorboard is not installed"
    )
    acc = event_accumulator.EventAccumulator(
        str(directory), size_guidance={event_accumulator.SCALARS: 0}, purge_orphaned_data=False
    )
    acc.Reload()
    out: dict[str, dict[int, float]] = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        assert len(steps) == len(set(steps)), f"{tag}: steps logged more than once: {steps}"
        out[tag] = {e.step: e.value for e in events}
    return out


def tensorboard_tags(directory: Path) -> dict[str, list[str]]:
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(directory), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    return acc.Tags()


def wandb_records(path: Path) -> list:
    """Every record of one `.wandb` file, as W&B's own protobuf `Record`s."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    records, pieces, pos = [], b"", 7  # file header: ':W&B', magic, version
    while pos + HEADER.size <= len(data):
        if BLOCK - pos % BLOCK < HEADER.size:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = HEADER.unpack_from(data, pos)
        if pos + HEADER.size + length > len(data):  # still being written
            break
        pieces += data[pos + HEADER.size : pos + HEADER.size + length]
        pos += HEADER.size + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            records.append(record)
            pieces = b""
    return records


def wandb_runs(wandb_dir: Path, timeout: float = 30.0) -> list[Path]:
    """The offline W&B run files under `wandb_dir` (one per session of a resumed run), oldest first, once
    each is whole: W&B's service may still be writing one when `finish()` has returned."""
    files = sorted(wandb_dir.glob("wandb/offline-run-*/run-*.wandb"))
    deadline = time.monotonic() + timeout
    for path in files:
        while not any(r.WhichOneof("record_type") == "exit" for r in wandb_records(path)):
            assert time.monotonic() < deadline, f"{path} has no exit record after {timeout} s"
            time.sleep(0.1)
    return files


def wandb_history(wandb_dir: Path) -> list[dict]:
    """Every history row logged to the offline runs under `wandb_dir`, in order, values decoded; a
    media value's fields keyed `name/field` (`validation/_type`)."""
    rows = []
    for path in wandb_runs(wandb_dir):
        for record in wandb_records(path):
            if record.WhichOneof("record_type") == "history":
                rows.append(
                    {
                        item.key or "/".join(item.nested_key): json.loads(item.value_json)
                        for item in record.history.item
                    }
                )
    return rows


def wandb_run_info(path: Path) -> dict:
    """The run record of one `.wandb` file (id, group, name, project) and its last summary."""
    info, summary = {}, {}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            info = {
                "id": run.run_id,
                "group": run.run_group,
                "name": run.display_name,
                "project": run.project,
            }
        elif kind == "summary":
            summary.update({item.key: json.loads(item.value_json) for item in record.summary.update})
    return {**info, "summary": summary}
