"""`scaling` command line: one subcommand per job; each wing registers its own subcommands.

Subcommand modules are imported lazily so `scaling fit --help` does not pay for importing the trainer.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from scaling.errors import UserError

_SIGTERM_NOTE = "SIGTERM"

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
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if on_main_thread else None
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt as err:
        by_sigterm = err.args == (_SIGTERM_NOTE,)
        print(
            f"stopped by {'SIGTERM' if by_sigterm else 'Ctrl-C'}: rerun the same command to resume",
            file=sys.stderr,
        )
        return 128 + (signal.SIGTERM if by_sigterm else signal.SIGINT)
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _terminated(signum, frame) -> None:
    """SIGTERM as Ctrl-C: every command stops the same way (the trainer's loop replaces this with a flag,
    so it checkpoints first), with one line instead of Python's silent death or a traceback."""
    raise KeyboardInterrupt(_SIGTERM_NOTE)


if __name__ == "__main__":
    sys.exit(main())
