"""CLI subcommands: each module defines ``add_parser(subparsers)`` setting ``run``."""
