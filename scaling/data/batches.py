"""Batches as pure functions of (seed, step), so resume is exact and instant and hosts need no coordination.

Training samples walk through epochs: each epoch is a seeded permutation of the non-overlapping windows of
seq_len + 1 tokens (consecutive windows share one token, the last target of one is the first input of the
next), shifted by a seeded offset so window edges move between epochs. Global sample i of step s is number
s * global_batch + i in that sequence, so no window repeats within an epoch and any step is computed directly.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

from scaling.errors import UserError


def check_context_fits(tokens: np.ndarray, seq_len: int, split: str) -> None:
    """UserError unless the split holds at least one window of seq_len + 1 tokens."""
    if seq_len < 1:
        raise UserError(f"seq_len must be at least 1, got {seq_len}")
    if len(tokens) < seq_len + 1:
        raise UserError(
            f"context longer than the {split} split: seq_len {seq_len} needs {seq_len + 1} tokens, "
            f"the {split} split has {len(tokens)}; use a shorter seq_len, a larger corpus or a larger "
            "val_fraction"
        )


def _process_rows(global_batch: int, process_index: int, process_count: int) -> range:
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
    if global_batch < 1 or global_batch % process_count:
        raise UserError(
            f"global batch {global_batch} must be a positive multiple of the process count {process_count}"
        )
    per_process = global_batch // process_count
    return range(process_index * per_process, (process_index + 1) * per_process)


@functools.lru_cache(maxsize=2)  # a batch spans at most a few epochs; the order is reused across steps
def _epoch_order(seed: int, epoch: int, n_windows: int, slack: int) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n_windows).astype(np.int32 if n_windows < 1 << 31 else np.int64)
    order.flags.writeable = False
    return order, int(rng.integers(0, slack + 1))


def _gather(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> np.ndarray:
    return np.asarray(tokens[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int32)


def train_batch(
    tokens: np.ndarray,
    *,
    seed: int,
    step: int,
    global_batch: int,
    seq_len: int,
    process_index: int = 0,
    process_count: int = 1,
) -> np.ndarray:
    """int32 [global_batch // process_count, seq_len + 1]: this process's rows of global batch `step`."""
    check_context_fits(tokens, seq_len, "train")
    if seed < 0 or step < 0:
        raise ValueError(f"seed and step must be non-negative, got seed={seed}, step={step}")
    rows = _process_rows(global_batch, process_index, process_count)
    n_windows = (len(tokens) - 1) // seq_len
    slack = len(tokens) - 1 - n_windows * seq_len
    sample = step * global_batch + np.arange(rows.start, rows.stop, dtype=np.int64)
    epoch, position = np.divmod(sample, n_windows)
    starts = np.empty(len(sample), dtype=np.int64)
    for e in np.unique(epoch):
        order, offset = _epoch_order(seed, int(e), n_windows, slack)
        here = epoch == e
        starts[here] = offset + order[position[here]].astype(np.int64) * seq_len  # int32 would overflow
    return _gather(tokens, starts, seq_len)


def eval_batches(
    tokens: np.ndarray,
    *,
    batch: int,
    seq_len: int,
    max_batches: int | None,
    process_index: int = 0,
    process_count: int = 1,
    max_group: int = 1,
) -> Iterator[np.ndarray]:
    """The validation windows in order, `batch` (global) per batch, full batches only, at most `max_batches`.

    `max_group` > 1 joins consecutive batches into one of `group * batch` windows, `group` the largest
    divisor of the batch count up to `max_group`: the same windows in the same order, in fewer and equal
    calls (small models spend most of an evaluation call on its fixed cost). Validates eagerly, so a split
    too short for one batch fails when called rather than silently yielding nothing.
    """
    check_context_fits(tokens, seq_len, "validation")
    _process_rows(batch, process_index, process_count)  # checked first: its error names the batch set
    n_windows = (len(tokens) - 1) // seq_len
    n_batches = n_windows // batch
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    if n_batches < 1:
        raise UserError(
            f"the validation split has {n_windows} windows of {seq_len + 1} tokens, fewer than one "
            f"evaluation batch of {batch}; lower the eval batch or seq_len, or raise val_fraction"
        )
    group = eval_group(n_batches, max_group)
    rows = _process_rows(group * batch, process_index, process_count)
    return _eval_iter(tokens, n_batches // group, group * batch, seq_len, rows)


def eval_group(n_batches: int, max_group: int) -> int:
    """The largest divisor of `n_batches` that is at most `max_group` (at least 1)."""
    return max(g for g in range(1, max(1, min(max_group, n_batches)) + 1) if n_batches % g == 0)


def _eval_iter(
    tokens: np.ndarray, n_batches: int, batch: int, seq_len: int, rows: range
) -> Iterator[np.ndarray]:
    for b in range(n_batches):
        starts = (b * batch + np.arange(rows.start, rows.stop, dtype=np.int64)) * seq_len
        yield _gather(tokens, starts, seq_len)
