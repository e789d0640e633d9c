"""The ``ragtune`` command line: builds settings once and dispatches to each package's commands.

Each package registers its commands with ``add_commands(sub, common)``. This module knows the
packages at or below ``service``; a package above it (``eval``) passes its own registrar in, and
``eval.cli.main`` is the full ``ragtune`` console script. ``python -m service.cli`` is the same
command line without the ``eval`` actions.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from ingest import cli as ingest_cli
from prompts import cli as prompts_cli
from service import commands as service_commands
from service import model_commands
from service.settings import load_settings

Register = Callable[[argparse._SubParsersAction, argparse.ArgumentParser], None]  # type: ignore[type-arg]
COMMANDS: tuple[Register, ...] = (
    ingest_cli.add_commands,
    prompts_cli.add_commands,
    service_commands.add_commands,
    model_commands.add_commands,
)


def build_parser(commands: Sequence[Register] = COMMANDS) -> argparse.ArgumentParser:
    """The parser with ``commands``' subcommands; each gets ``--home`` and ``--config``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home", type=Path, help="data directory (default $RAGTUNE_HOME or ./.ragtune)"
    )
    common.add_argument("--config", type=Path, help="TOML settings file (default ./ragtune.toml)")
    parser = argparse.ArgumentParser(
        prog="ragtune", description="Self-hosted RAG: ingest documents, search them, answer."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in commands:
        add_commands(sub, common)
    return parser


def main(argv: Sequence[str] | None = None, *, commands: Sequence[Register] = COMMANDS) -> int:
    # Offline by construction: every model ships in a package; a hub look-up would only hang.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser(commands).parse_args(argv)
    try:
        settings = load_settings(getattr(args, "config", None), home=args.home)
    except (ValidationError, FileNotFoundError) as e:
        print(f"ragtune: invalid settings: {e}", file=sys.stderr)
        return 2
    try:
        code: int = args.handler(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a clear one-line error for expected failures; tracebacks for bugs
        from ingest.embed import EmbedderError
        from ingest.index import IndexStoreError

        if isinstance(e, IndexStoreError | EmbedderError):
            print(f"ragtune {args.command}: {e}", file=sys.stderr)
            return 1
        raise
    return code


if __name__ == "__main__":
    sys.exit(main())
