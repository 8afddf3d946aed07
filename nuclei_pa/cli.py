"""The ``nuclei-pa`` command line: one subcommand per module in ``nuclei_pa.commands``.

Every subcommand turns an :class:`~nuclei_pa.errors.InputError` into one line on stderr and
exit status 2, so scripts and Snakemake see a clean failure rather than a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nuclei_pa import __version__
from nuclei_pa.errors import InputError

# Order is the order shown in --help.
COMMANDS = ("synth", "import", "derive", "classical", "evaluate", "train", "predict", "annotate")
MODULES = {"import": "importer"}  # a command whose module cannot carry its name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nuclei-pa",
        description="Nucleus segmentation from partially annotated images (Mask R-CNN + pa).",
    )
    parser.add_argument("--version", action="version", version=f"nuclei-pa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module_name = f"nuclei_pa.commands.{MODULES.get(name, name)}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # command not built yet in this checkout
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except InputError as exc:
        print(f"nuclei-pa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nuclei-pa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
