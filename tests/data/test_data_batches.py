import numpy as np
import pytest

from scaling.data.batches import check_context_fits, eval_batches, train_batch
from scaling.errors import UserError

# Distinct token values make each row's origin recoverable: a row is a window iff it counts up by one.
TOKENS = np.arange(1003, dtype=np.uint32)


def batch(step, **kw):
    args = {"seed": 7, "step": step, "global_batch": 8, "seq_len": 10} | kw
    return train_batch(TOKENS, **args)


def test_pure_function_of_seed_and_step():
    first = batch(5)
    assert first.dtype == np.int32 and first.shape == (8, 11)
    assert np.array_equal(first, batch(5))
    assert not np.array_equal(first, batch(6))
    assert not np.array_equal(first, batch(5, seed=8))


def test_rows_are_windows_of_the_stream():
    real = np.random.default_rng(0).integers(0, 50, size=500).astype(np.uint16)
    windows = np.lib.stride_tricks.sliding_window_view(real, 17)
    rows = train_batch(real, seed=1, step=3, global_batch=6, seq_len=16)
    for row in rows:
        assert (windows == row).all(axis=1).any()
    for row in batch(11):
        assert np.array_equal(row, np.arange(row[0], row[0] + 11))


def test_process_slices_concatenate_to_the_global_batch():
    whole = batch(3)
    parts = [batch(3, process_index=p, process_count=4) for p in range(4)]
    assert all(part.shape == (2, 11) for part in parts)
    assert np.array_equal(np.concatenate(parts), whole)


def test_an_epoch_visits_every_window_once():
    n_windows = (len(TOKENS) - 1) // 10  # 100 windows, 8 per step
    starts = np.concatenate([batch(s)[:, 0] for s in range(n_windows // 8)])
    assert len(np.unique(starts)) == len(starts)
    assert len(np.unique(starts % 10)) == 1  # one grid per epoch
    next_epoch = np.concatenate([batch(s)[:, 0] for s in range(13, 25)])[4:]
    assert len(np.unique(next_epoch)) == len(next_epoch)


def test_eval_batches_walk_the_split_in_order():
    batches = list(eval_batches(TOKENS, batch=4, seq_len=10, max_batches=None))
    assert len(batches) == 25  # 100 windows, 4 per batch
    starts = np.concatenate(batches)[:, 0]
    assert np.array_equal(starts, np.arange(100) * 10)
    assert len(list(eval_batches(TOKENS, batch=4, seq_len=10, max_batches=3))) == 3
    halves = [
        list(eval_batches(TOKENS, batch=4, seq_len=10, max_batches=2, process_index=p, process_count=2))
        for p in range(2)
    ]
    assert np.array_equal(np.concatenate([halves[0][1], halves[1][1]]), batches[1])


@pytest.mark.parametrize(
    ("max_batches", "max_group", "group"), [(24, 5, 4), (24, 24, 24), (23, 8, 1), (6, 1, 1)]
)
def test_grouped_eval_batches_are_the_same_windows_in_fewer_equal_calls(max_batches, max_group, group):
    alone = np.concatenate(list(eval_batches(TOKENS, batch=4, seq_len=10, max_batches=max_batches)))
    grouped = list(eval_batches(TOKENS, batch=4, seq_len=10, max_batches=max_batches, max_group=max_group))
    assert {b.shape for b in grouped} == {(4 * group, 11)}  # one shape: one compile
    assert np.array_equal(np.concatenate(grouped), alone)
    by_process = [
        list(
            eval_batches(
                TOKENS,
                batch=4,
                seq_len=10,
                max_batches=max_batches,
                max_group=max_group,
                process_index=p,
                process_count=2,
            )
        )
        for p in range(2)
    ]
    joined = [np.concatenate(parts) for parts in zip(*by_process, strict=True)]
    assert np.array_equal(np.concatenate(joined), alone)  # the processes' rows of each call, in order


def test_context_and_batch_errors():
    with pytest.raises(UserError, match="context longer than the validation split: seq_len 10 needs 11"):
        check_context_fits(TOKENS[:10], 10, "validation")
    check_context_fits(TOKENS[:11], 10, "validation")
    with pytest.raises(UserError, match="context longer than the train split"):
        train_batch(TOKENS[:5], seed=0, step=0, global_batch=2, seq_len=8)
    with pytest.raises(UserError, match="global batch 6 must be a positive multiple of the process count 4"):
        batch(0, global_batch=6, process_count=4)
    with pytest.raises(UserError, match="fewer than one evaluation batch of 200"):
        eval_batches(TOKENS, batch=200, seq_len=10, max_batches=None)
