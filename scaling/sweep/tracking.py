"""A sweep's validation sent to its trackers (`track:` in the sweep's base config): the figure, the
table of predictions and each law's median error and coverage, logged beside its runs (the same W&B
group, the same TensorBoard root) as one more run, `validation`, kept in `.sweep/validation/`."""

from __future__ import annotations

import math
from pathlib import Path

from scaling.sweep.workflow import Sweep
from scaling.track.tracker import open_tracker

NAME = "validation"


def track_validation(
    sweep: Sweep, result, table: tuple[tuple[str, ...], list[tuple]], figure: Path, step: int
) -> None:
    """Log one validation (`table`: columns and rows of validation.csv) at `step`, the number of
    completed targets, so that validating the same targets again logs nothing new."""
    track = sweep.ladder[0].config.track
    if not track.enabled:
        return
    config = {"sweep": sweep.spec.name, "recipe": sweep.spec.recipe.name, "law": result.chooser}
    # `.sweep/validation` is a level further below the sweep directory than a run's own directory.
    with open_tracker(track.relocated(".."), sweep.ledger.root / NAME, NAME, config, job=NAME) as tracker:
        tracker.image("validation", figure, step)
        tracker.table("predictions", *table, step)
        scalars = {}
        for law in result.results:
            for key in ("median_are", "coverage"):
                value = getattr(law, key)
                if math.isfinite(value):
                    scalars[f"{law.law}/{key}"] = float(value)
        tracker.log(step, scalars)
        tracker.summary(result.summary())
