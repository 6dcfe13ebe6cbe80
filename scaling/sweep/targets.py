"""Targets: the large runs that check a ladder's prediction, sized by the ladder's own fit.

The user's workflow, automated: fit the finished ladder with the law named in `targets.law`, take the
compute-optimal size it gives for each target budget, train that model. The choice is written once to
`<sweep dir>/targets.json` (with the fit that made it, `targets_fit.json`), so reruns, resumes and
status see the same target runs even if the ladder's table is later extended.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import traceback
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scaling.errors import UserError
from scaling.fitting import FitOptions, fit_table, load_table, predict_compute
from scaling.fitting.predict import loss_fn
from scaling.fitting.result import FitResult
from scaling.fitting.table import FitWarning
from scaling.model.config import ModelConfig
from scaling.sweep.collect import TARGET_PREFIX as PREFIX
from scaling.sweep.ledger import Ledger
from scaling.sweep.plan import PlannedRun, base_model, format_count, format_sci, planned_run
from scaling.sweep.spec import SweepSpec, Target
from scaling.train.run_dir import RunDir, atomic_write_text


@dataclass(frozen=True)
class TargetChoice:
    """One target as chosen: its budget (None for explicit ones), model size and tokens."""

    flops: float | None
    params: float
    tokens: float | None


def plan_path(ledger: Ledger) -> Path:
    return ledger.sweep_dir / "targets.json"


def fit_path(ledger: Ledger) -> Path:
    return ledger.sweep_dir / "targets_fit.json"


def choose(
    spec: SweepSpec, ladder: tuple[PlannedRun, ...], results_csv: Path
) -> tuple[FitResult | None, list[TargetChoice]]:
    """Fit `targets.law` to the ladder and pick each budget target's compute-optimal model (no fit when
    every target is explicit)."""
    assert spec.targets is not None
    if all(t.flops is None for t in spec.targets.runs):
        return None, [_choice(spec, None, target) for target in spec.targets.runs]
    fit = _fit_in_child(spec, results_csv, tuple(r.name for r in ladder))
    if not fit.identified:
        raise UserError(
            f"targets: the ladder's {fit.law} fit is not identified "
            f"({'; '.join(fit.diagnostics['unidentified'])}), so it cannot size the targets: "
            f"{fit.diagnostics['advice']}"
        )
    return fit, [_choice(spec, fit, target) for target in spec.targets.runs]


def _fit_in_child(spec: SweepSpec, results_csv: Path, names: tuple[str, ...]) -> FitResult:
    """The point fit, in a spawned process: the launcher forks trainers next, and a parent that has
    started JAX's threads must not fork (JAX warns of deadlocks). Ctrl-C is the parent's to handle: the
    child ignores it and is terminated when the parent stops waiting."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_fit_to_pipe, args=(send, spec, results_csv, names), daemon=True)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited: ignored from the child's start
    try:
        child.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    send.close()
    try:
        ok, outcome = receive.recv()
    except EOFError:
        child.join()
        raise UserError(
            f"targets: the process fitting the ladder died (exit code {child.exitcode}); rerun to retry"
        ) from None
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
    if not ok:
        raise outcome
    return outcome


def _fit_to_pipe(send, spec: SweepSpec, results_csv: Path, names: tuple[str, ...]) -> None:
    try:
        send.send((True, _fit_ladder(spec, results_csv, names)))
    except UserError as err:
        send.send((False, err))
    except Exception as err:  # a bug: its traceback goes to the log, the sweep gets one line
        traceback.print_exc()
        send.send((False, UserError(f"targets: fitting the ladder failed ({type(err).__name__}: {err})")))


def _fit_ladder(spec: SweepSpec, results_csv: Path, names: tuple[str, ...]) -> FitResult:
    assert spec.targets is not None
    table = load_table(results_csv, params=spec.targets.params).named(names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)  # the fit's flags are in its diagnostics
        return fit_table(table, spec.targets.law, FitOptions(n_boot=0, progress=False))


def _choice(spec: SweepSpec, fit: FitResult | None, target: Target) -> TargetChoice:
    if target.flops is None or fit is None:
        assert target.params is not None
        model = _candidates(spec, target.params)[0]
        return TargetChoice(None, model.params_nonembedding, target.tokens)
    prediction = predict_compute(fit, target.flops)
    if prediction.params is None or not np.isfinite(prediction.params) or prediction.params <= 0:
        raise UserError(f"targets: the {fit.law} fit gives no compute-optimal size for {target.flops:.3g}")
    models = _candidates(spec, prediction.params)
    fn = loss_fn(fit)
    if fn is not None:
        # The closed form assumes C = k N D with one k; the recipe's real models have their own exact
        # FLOPs per token (embeddings and attention weigh more on small ones), so minimise the fitted
        # L(N, D) over them at D = C / flops_per_token instead.
        counts = np.array([_count(spec, m) for m in models], np.float64)
        tokens = np.array([target.flops / m.flops_per_token for m in models], np.float64)
        models = [models[int(np.argmin(fn(fit.params, counts, tokens)))]]
    return TargetChoice(target.flops, models[0].params_nonembedding, None)


def _count(spec: SweepSpec, model: ModelConfig) -> int:
    assert spec.targets is not None
    return model.params if spec.targets.params == "total" else model.params_nonembedding


def _candidates(spec: SweepSpec, count: float) -> list[ModelConfig]:
    """The recipe's distinct models from count/8 to 8 x count (in `targets.params`), nearest first."""
    base = base_model(spec)
    models: dict[tuple[int, int], ModelConfig] = {}
    for n in np.geomspace(count / 8, count * 8, 49):
        model = spec.recipe.shape.shape_for(float(n), base)
        models[(model.D, model.L)] = model
    return sorted(models.values(), key=lambda m: abs(np.log(_count(spec, m) / count)))


def load_or_choose(
    spec: SweepSpec, ledger: Ledger, ladder: tuple[PlannedRun, ...], results_csv: Path
) -> list[TargetChoice]:
    """The stored choice, or a new one from the finished ladder (written before any target starts)."""
    assert spec.targets is not None
    path = plan_path(ledger)
    if path.exists():
        return read_choices(spec, path)
    fit, choices = choose(spec, ladder, results_csv)
    if fit is not None:
        fit.save(fit_path(ledger))
    payload = {
        "law": spec.targets.law,
        "fit": fit_path(ledger).name if fit is not None else None,
        "targets": [asdict(c) for c in choices],
    }
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
    return choices


def read_choices(spec: SweepSpec, path: Path) -> list[TargetChoice]:
    """targets.json, checked against the sweep file (same law, same number of targets)."""
    assert spec.targets is not None
    try:
        data = json.loads(path.read_text())
        choices = [TargetChoice(**entry) for entry in data["targets"]]
        law = data["law"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise UserError(
            f"{path} is not a targets file written by `scaling sweep run` ({err}); delete it to choose again"
        ) from None
    if law != spec.targets.law or len(choices) != len(spec.targets.runs):
        raise UserError(
            f"{path} holds {len(choices)} targets chosen by the {law} law, but the sweep file asks for "
            f"{spec.targets.law} and {len(spec.targets.runs)}: delete {path} to choose again"
        )
    return choices


def repeated_data(
    ladder: tuple[PlannedRun, ...], chosen: tuple[PlannedRun, ...], ledger: Ledger
) -> list[str]:
    """A warning for each target that will see its corpus more than once: the ladder's fit knows only
    fresh data. The corpus size comes from a finished ladder run's recorded epochs."""
    summaries = [s for s in (RunDir(ledger.run_dir(r.name)).summary() for r in ladder) if s and s.epochs]
    if not summaries or max(s.epochs for s in summaries) > 1:
        return []  # nothing recorded, or the ladder repeated its data too: its fit has seen repetition
    corpus = summaries[0].tokens / summaries[0].epochs
    return [
        f"warning: {r.name} will train {r.tokens / corpus:.2f} epochs of the corpus ({corpus:,.0f} training "
        "tokens); the ladder never repeated its data, so its prediction does not allow for repetition"
        for r in chosen
        if r.tokens > corpus
    ]


def target_runs(spec: SweepSpec, choices: list[TargetChoice]) -> tuple[PlannedRun, ...]:
    """Planned runs for the chosen targets (names `target_c1e13_n1.2M` or `target_n1.2M_t20M`)."""
    model_base = base_model(spec)
    runs = []
    for i, choice in enumerate(choices):
        model = spec.recipe.shape.shape_for(choice.params, model_base)
        n = format_count(model.params_nonembedding)
        entry = f"targets.runs[{i}]"
        if choice.flops is not None:
            tokens = choice.flops / model.flops_per_token
            name = f"{PREFIX}c{format_sci(choice.flops)}_n{n}"
        else:
            assert choice.tokens is not None
            tokens = choice.tokens
            name = f"{PREFIX}n{n}_t{format_count(tokens)}"
        runs.append(planned_run(spec, name, entry, choice.flops, choice.params, model, tokens))
    return tuple(runs)
