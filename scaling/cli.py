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
    "scaling.train_cli",
    "scaling.fitting.cli",
    "scaling.sweep.cli",
    "scaling.use_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scaling", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
