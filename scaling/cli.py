"""`scaling` command line: one subcommand per job; each wing registers its own subcommands.

Subcommand modules are imported lazily so `scaling fit --help` does not pay for importing the trainer.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from scaling.errors import UserError

# Modules exposing `register(subparsers)`; each adds its subcommands with `set_defaults(func=...)`.
_COMMAND_MODULES = (
    "scaling.train.cli",
    "scaling.fitting.cli",
    "scaling.sweep.cli",
    "scaling.use.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
