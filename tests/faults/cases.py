"""The table of bad inputs, one row per case, across every verb of the CLI.

A case names the files it lays out in an empty work directory and the command line to run there
(`{w}` is the work directory, `{cache}` a token cache kept outside it). Every case must end with exit
code 2, one `error:` line on stderr, no traceback, and the work directory exactly as it was.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.helpers import tiny_run_config
from tests.sweep.sweep_helpers import TINY_SWEEP


@dataclass(frozen=True)
class BadInput:
    verb: str
    name: str
    argv: tuple[str, ...]
    files: dict[str, str | bytes] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None  # for inputs that are not plain files (a saved run)
    needle: str = ""  # a part of the message, where another error could come first

    @property
    def id(self) -> str:
        return f"{self.verb}: {self.name}"


def _yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False)


TRAIN_CFG = _yaml(tiny_run_config(Path("{cache}")))


def _train(name: str, *args: str, files: dict | None = None) -> BadInput:
    return BadInput(
        "train", name, ("train", "run.yaml", "--no-progress", *args), {"run.yaml": TRAIN_CFG, **(files or {})}
    )


_OTHER_RUN = {
    "run/config.yaml": _yaml({**tiny_run_config(Path("/elsewhere")), "name": "other"}),
    "run/metrics.jsonl": '{"step": 1, "train_loss": 5.0}\n',  # it trained: a rerun may not take it over
}

TRAIN = [
    BadInput("train", "config file missing", ("train", "missing.yaml")),
    BadInput("train", "config is not YAML", ("train", "bad.yaml"), {"bad.yaml": "model: [D: 32\n"}),
    BadInput("train", "config is a list", ("train", "list.yaml"), {"list.yaml": "- 1\n- 2\n"}),
    BadInput("train", "config is a directory", ("train", ".")),
    _train("unknown key", "model.Q=3"),
    _train("unknown section", "bogus.x=1"),
    _train("wrong type", "model.D=big"),
    _train("zero layers", "model.L=0"),
    _train("negative steps", "train.steps=-5"),
    _train("learning rate inf", "optim.lr=inf"),
    _train("learning rate nan", "optim.lr=nan"),
    _train("override without =", "model.D"),
    _train("unknown flag", "--bogus"),
    _train("batch not divisible by micro-batches", "train.micro_batches=3"),
    _train("vocabulary smaller than the encoding", "model.V=100"),
    _train("cudnn attention on CPU", "model.attention=cudnn"),
    _train("branch ending before the first step", "optim.schedule=wsd", "train.branches=[0.001]"),
    _train("branches of a cosine run", "train.branches=[0.5]"),
    _train("unknown remat policy", "model.remat=everything"),
    _train("scan_layers not a boolean", "model.scan_layers=sometimes"),
    _train("missing corpus file", "data.corpus=missing.txt"),
    _train("empty corpus file", "data.corpus=empty.txt", files={"empty.txt": ""}),
    _train("binary corpus file", "data.corpus=blob.txt", files={"blob.txt": bytes(range(256)) * 64}),
    _train("--out is a file", "--out", "taken", files={"taken": "not a run\n"}),
    _train("--out under a file", "--out", "taken/run", files={"taken": "not a run\n"}),
    _train("--out is another run's directory", "--out", "run", files=_OTHER_RUN),
    _train("--out holds files of something else", "--out", "run", files={"run/notes.txt": "mine\n"}),
    _train("--out has a corrupt config.yaml", "--out", "run", files={"run/config.yaml": "a: [\n"}),
    _train("multi-process without a coordinator", "--num-processes", "2", "--process-id", "0"),
    _train("tensorboard directory empty", "track.tensorboard=''"),
    _train("tensorboard a number", "track.tensorboard=3"),
    _train("unknown wandb mode", "track.wandb.mode=sometimes"),
    _train("wandb project with a slash", "track.wandb.project=me/runs"),
    _train("unknown track key", "track.wandb.entity=me"),
]

SWEEP_FILE = "sweep.yaml"


def _sweep(
    name: str, spec: dict, *args: str, verb: str = "plan", files: dict | None = None, needle: str = ""
) -> BadInput:
    return BadInput(
        f"sweep {verb}",
        name,
        ("sweep", verb, SWEEP_FILE, "--out", "out", *args),
        {SWEEP_FILE: _yaml(spec), **(files or {})},
        needle=needle,
    )


def _sweep_with(**changes) -> dict:
    spec = copy.deepcopy(TINY_SWEEP)
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        spec[section][key] = value
    return spec


_TARGETS = {**copy.deepcopy(TINY_SWEEP), "targets": {"law": "chinchilla", "runs": [{"flops": 1e12}]}}


def _damaged(verb: str, name: str, template: str, text: str) -> BadInput:
    """`scaling sweep VERB` on the tiny sweep with one file of its first run damaged (`_damage_first_run`)."""
    return BadInput(
        f"sweep {verb}",
        name,
        ("sweep", verb, SWEEP_FILE, "--out", "out"),
        {SWEEP_FILE: _yaml(TINY_SWEEP)},
        lambda work: _damage_first_run(work, template, text),
    )


def _damage_first_run(work: Path, template: str, text: str) -> None:
    """Write `text` at `template` under the sweep directory, `{run}` being the sweep's first planned run."""
    from scaling.sweep.plan import plan
    from scaling.sweep.spec import load_sweep

    path = work / "out" / template.format(run=plan(load_sweep(work / SWEEP_FILE))[0].name)
    path.parent.mkdir(parents=True)
    path.write_text(text)


_NARROW_CFG = _yaml(tiny_run_config(Path("{cache}"), name="narrow", model={"D": 16}))
_BRANCHED_CFG = _yaml(
    tiny_run_config(Path("{cache}"), name="b", optim={"schedule": "wsd"}, train={"branches": [0.5]})
)


def _population(name: str, *argv: str, files: dict, needle: str = "") -> BadInput:
    return BadInput(
        "train-population",
        name,
        ("train-population", *argv, "--no-progress"),
        {"run.yaml": TRAIN_CFG, **files},
        needle=needle,
    )


TRAIN_POPULATION = [
    _population(
        "members of different shapes",
        "run.yaml",
        "narrow.yaml",
        "--out",
        "a",
        "b",
        files={"narrow.yaml": _NARROW_CFG},
        needle="differ in model.D",
    ),
    _population(
        "fewer --out than configs",
        "run.yaml",
        "narrow.yaml",
        "--out",
        "a",
        files={"narrow.yaml": _NARROW_CFG},
    ),
    _population("one --out twice", "run.yaml", "run.yaml", "--out", "a", "./a", files={}),
    _population(
        "a member with branches", "run.yaml", "b.yaml", "--out", "a", "b", files={"b.yaml": _BRANCHED_CFG}
    ),
    _population(
        "a member with tracking",
        "run.yaml",
        "t.yaml",
        "--out",
        "a",
        "b",
        files={"t.yaml": _yaml(tiny_run_config(Path("{cache}"), name="t", track={"tensorboard": True}))},
        needle="asks for tracking",
    ),
]

SWEEP = [
    BadInput("sweep plan", "sweep file missing", ("sweep", "plan", "missing.yaml")),
    BadInput("sweep plan", "sweep file not YAML", ("sweep", "plan", "s.yaml"), {"s.yaml": "grid: {\n"}),
    _sweep("unknown top-level key", {**TINY_SWEEP, "extra": 1}),
    _sweep("unknown recipe key", _sweep_with(recipe__depth=3)),
    _sweep(
        "negative peak lr", _sweep_with(recipe__lr={"peak": -1.0, "reference_params": 1e4, "exponent": 0.3})
    ),
    _sweep("empty grid", {**TINY_SWEEP, "grid": {}}),
    _sweep("unknown base key", _sweep_with(base__bogus={"x": 1})),
    _sweep("zero workers", TINY_SWEEP, "--workers", "0"),
    _sweep("population of zero runs", _sweep_with(launch__population=0), needle="launch.population"),
    _sweep("population not a number", _sweep_with(launch__population="many"), verb="run"),
    _sweep("negative workers", TINY_SWEEP, "--workers", "-1", verb="run"),
    _sweep("unknown target law", {**_TARGETS, "targets": {"law": "magic", "runs": [{"flops": 1e12}]}}),
    _sweep("target budget zero", {**_TARGETS, "targets": {"law": "chinchilla", "runs": [{"flops": 0}]}}),
    _sweep(
        "corrupt targets.json",
        _TARGETS,
        verb="status",
        files={"out/targets.json": "{not json"},
    ),
    _damaged("status", "corrupt failure record", ".sweep/failures/{run}.json", "{"),
    _damaged("status", "corrupt run summary", "{run}/summary.json", "{"),
    _damaged("collect", "corrupt run metrics", "{run}/metrics.jsonl", '{"step": 1}\n{oops\n{"step": 3}\n'),
    _sweep("validate without targets", TINY_SWEEP, verb="validate"),
    _sweep(
        "validate with a negative bootstrap",
        _TARGETS,
        "--bootstrap",
        "-1",
        verb="validate",
        needle="--bootstrap",
    ),
    _sweep(
        "validate with confidence 2", _TARGETS, "--confidence", "2", verb="validate", needle="--confidence"
    ),
    BadInput("sweep run", "sweep file missing", ("sweep", "run", "missing.yaml")),
    BadInput(
        "sweep run",
        "unknown launcher",
        ("sweep", "run", SWEEP_FILE, "--launcher", "k8s"),
        {SWEEP_FILE: _yaml(TINY_SWEEP)},
    ),
    BadInput(
        "sweep status",
        "unknown key",
        ("sweep", "status", "s.yaml"),
        {"s.yaml": _yaml({**TINY_SWEEP, "extra": 1})},
    ),
    _sweep("branching without wsd", {**TINY_SWEEP, "recipe": {**TINY_SWEEP["recipe"], "branching": True}}),
    _sweep("validate before the ladder ran", _TARGETS, verb="validate"),
    _sweep("--out is a file", TINY_SWEEP, verb="collect", files={"out": "a file\n"}),
]


RESULTS = "results.csv"
_COLUMNS = "name,status,params,params_nonembedding,tokens,flops,loss\n"
_ROWS = "".join(
    f"r{i},completed,{n * 1.2:.0f},{n},{d:.0f},{6 * n * d:.4g},{2 + 400 / n**0.3 + 400 / d**0.3:.4f}\n"
    for i, (n, d) in enumerate((n, d) for n in (1e4, 3e4, 1e5) for d in (1e6, 3e6, 1e7))
)
_TABLE = {RESULTS: _COLUMNS + _ROWS}


def _with_loss(rows: str, loss) -> str:
    """`rows` with each loss (the last column) replaced by `loss(old text)`."""
    return "".join(f"{head},{loss(old)}\n" for head, old in (r.rsplit(",", 1) for r in rows.splitlines()))


def _fit(name: str, *args: str, files: dict | None = None, verb: str = "fit") -> BadInput:
    out = ("--out", "FIT.json") if verb == "fit" else ()
    return BadInput(
        verb, name, (verb, RESULTS, *out, "--no-progress", *args), files if files is not None else _TABLE
    )


def _fit_json(**change) -> str:
    fit = {
        "law": "compute",
        "params": {"E": 1.5, "A": 30.0, "alpha": 0.1},
        "identified": True,
    }
    fit["params"].update(change)
    return json.dumps(fit)


def _predict(name: str, fit_text: str | None, *args: str) -> BadInput:
    files = {} if fit_text is None else {"FIT.json": fit_text}
    return BadInput("predict", name, ("predict", "FIT.json", *args), files)


FIT = [
    _fit("table missing", files={}),
    _fit("empty table", files={RESULTS: ""}),
    _fit("header only", files={RESULTS: _COLUMNS}),
    _fit("loss column missing", files={RESULTS: _COLUMNS.replace(",loss", "") + _ROWS.replace(",", ";")}),
    _fit("binary table", files={RESULTS: bytes(range(256)) * 8}),
    _fit("losses are NaN", files={RESULTS: _COLUMNS + _with_loss(_ROWS, lambda _: "nan")}),
    _fit("negative bootstrap", "--bootstrap", "-5"),
    _fit("confidence above 1", "--confidence", "1.5"),
    _fit("unknown law", "--law", "magic"),
    _fit("unknown status filter", "--status", "finished"),
    BadInput(
        "fit", "table is an empty directory", ("fit", "empty", "--out", "FIT.json"), {"empty/.keep": ""}
    ),
    _fit("--fit-max below every run", "--fit-max", "1", verb="backtest"),
    _fit("--fit-max negative", "--fit-max", "-1e9", verb="backtest"),
    _fit("backtest table missing", "--fit-max", "1e12", files={}, verb="backtest"),
]

PREDICT = [
    _predict("FIT.json missing", None, "--compute", "1e15"),
    _predict("FIT.json not JSON", "{nope", "--compute", "1e15"),
    _predict("FIT.json is a list", "[1, 2]", "--compute", "1e15"),
    _predict(
        "parameter missing",
        json.dumps({"law": "compute", "params": {"A": 30.0, "alpha": 0.1}}),
        "--compute",
        "1e15",
    ),
    _predict("parameter is text", _fit_json(E="one"), "--compute", "1e15"),
    _predict("negative exponent", _fit_json(alpha=-0.1), "--compute", "1e15"),
    _predict("E is NaN", _fit_json(E=float("nan")), "--compute", "1e15"),
    _predict("law missing", json.dumps({"params": {"E": 1.0}}), "--compute", "1e15"),
    _predict("negative params", _fit_json(), "--params", "-1e9"),
    _predict("zero compute", _fit_json(), "--compute", "0"),
    _predict("nothing asked", _fit_json()),
    BadInput("plot", "FIT.json corrupt", ("plot", "FIT.json", "--out", "fig"), {"FIT.json": "{"}),
    BadInput(
        "plot",
        "--table missing",
        ("plot", "FIT.json", "--table", "missing.csv", "--out", "fig"),
        {"FIT.json": _fit_json()},
    ),
]


def _saved_run(work: Path) -> None:
    from tests.use.helpers import TINY, random_params, save_run

    save_run(work / "run", random_params(TINY, seed=1)[1])


def _generate(name: str, *args: str, saved: bool = True, files: dict | None = None) -> BadInput:
    prompt = ("--prompt", "hello")
    return BadInput(
        "generate", name, ("generate", "run", *prompt, *args), files or {}, _saved_run if saved else None
    )


TASK = {
    "task.yaml": _yaml({"name": "t", "jsonl": {"train": "train.jsonl", "test": "test.jsonl"}, "steps": 2})
}

USE = [
    _generate("run directory missing", saved=False),
    _generate("not a run directory", saved=False, files={"run/notes.txt": "x\n"}),
    _generate("run without a checkpoint", saved=False, files={"run/config.yaml": TRAIN_CFG}),
    _generate("negative temperature", "--temperature", "-1"),
    _generate("negative top-k", "--top-k", "-1"),
    _generate("top-p above 1", "--top-p", "1.5"),
    _generate("no new tokens", "--max-new-tokens", "0"),
    _generate("zero samples", "--num-samples", "0"),
    BadInput("finetune", "run directory missing", ("finetune", "run", "task.yaml", "--no-progress"), TASK),
    BadInput(
        "finetune", "task file missing", ("finetune", "run", "missing.yaml", "--no-progress"), {}, _saved_run
    ),
    BadInput(
        "finetune",
        "task with an unknown key",
        ("finetune", "run", "task.yaml", "--no-progress"),
        {"task.yaml": _yaml({"name": "t", "bogus": 1})},
        _saved_run,
    ),
    BadInput("finetune", "bad override", ("finetune", "run", "task.yaml", "steps=zero"), TASK, _saved_run),
    BadInput("demo", "sweep file missing", ("demo", "--sweep", "missing.yaml", "--out", "out")),
    BadInput("demo", "zero workers", ("demo", "--workers", "0", "--out", "out")),
]

CASES = TRAIN + TRAIN_POPULATION + SWEEP + FIT + PREDICT + USE
