"""`scaling` command line: one subcommand per job; each wing registers its own subcommands.

Subcommand modules are imported lazily so `scaling fit --help` does not pay for importing the trainer.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading

from scaling import stops
from scaling.errors import UserError
from scaling.train.host_memory import keep_freed_memory

# Modules exposing `register(subparsers)`; each adds its subcommands with `set_defaults(func=...)`.
_COMMAND_MODULES = (
    "scaling.train.cli",
    "scaling.fitting.cli",
    "scaling.sweep.cli",
    "scaling.use.cli",
)


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line, like every other error of ours (its default prints the whole
    usage first, which buries the message in a log); subcommand parsers inherit the class."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} -h`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="scaling",
        description="Train ladders of small GPTs, fit scaling laws to them, and predict much larger runs.",
        epilog="Start with `scaling demo`, or `scaling train experiments/tiny.yaml`; COMMAND -h for details.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # First thing: a Ctrl-C or SIGTERM while the command modules import is one line too.
    restore = stops.install() if threading.current_thread() is threading.main_thread() else None
    keep_freed_memory()  # before JAX starts its CPU client: see scaling.train.host_memory
    try:
        return _run(argv)
    except KeyboardInterrupt as err:
        signum = stops.signal_of(err)
        print(f"stopped by {stops.describe(signum)}: rerun the same command to resume", file=sys.stderr)
        return 128 + signum
    finally:
        if restore is not None:
            restore()


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # `dotted.key=value` overrides may follow options; argparse leaves them over after `--out X`.
        if not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


def entry() -> None:
    """The `scaling` command. After a stop it leaves without Python's teardown: JAX's threads may still
    be computing, and tearing them down under them has crashed the interpreter (SIGSEGV) after the line."""
    code = main()
    if code in {128 + s for s in stops.STOP_SIGNALS}:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
