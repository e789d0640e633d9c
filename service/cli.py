"""The ``ragtune`` command: builds settings once and dispatches to each package's commands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from ingest import cli as ingest_cli
from prompts import cli as prompts_cli
from service import commands as service_commands
from service.settings import load_settings

PLUGINS = ("eval.cli",)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home", type=Path, help="data directory (default $RAGTUNE_HOME or ./.ragtune)"
    )
    common.add_argument("--config", type=Path, help="TOML settings file (default ./ragtune.toml)")
    parser = argparse.ArgumentParser(
        prog="ragtune", description="Self-hosted RAG: ingest documents, search them, answer."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ingest_cli.add_commands(sub, common)
    prompts_cli.add_commands(sub, common)
    service_commands.add_commands(sub, common)
    # Packages above this one in the layering (eval imports service) plug in by name, so the
    # command line has one entry point without service importing eval.
    for name in PLUGINS:
        importlib.import_module(name).add_commands(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Offline by construction: every model ships in a package; a hub look-up would only hang.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
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
