"""``ragtune eval from-feedback | accept-examples | promote | history | rollback``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from service import tunables
from service.settings import Settings, nest_legacy


def add_serving_actions(
    actions: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> None:  # type: ignore[type-arg]
    a = actions.add_parser(
        "from-feedback",
        parents=[common],
        help="turn user feedback into cases and example candidates",
    )
    a.add_argument("--since", type=datetime.fromisoformat, metavar="DATE", help="ISO date or time")
    a.add_argument("--out", type=Path, required=True, metavar="FILE", help="cases (JSONL)")
    a.add_argument(
        "--examples-out", type=Path, metavar="FILE", help="thumbs-up example candidates (JSONL)"
    )
    a.set_defaults(handler=cmd_from_feedback)

    a = actions.add_parser(
        "accept-examples", parents=[common], help="add example candidates to a new template version"
    )
    a.add_argument("template", metavar="ID@VERSION")
    a.add_argument("candidates", type=Path, metavar="FILE")
    a.set_defaults(handler=cmd_accept_examples)

    # Here --config names a configuration of the run (the settings file comes from
    # $RAGTUNE_CONFIG or ./ragtune.toml), so only --home is shared.
    home_only = argparse.ArgumentParser(add_help=False)
    home_only.add_argument("--home", type=Path, help="data directory (default ./.ragtune)")
    a = actions.add_parser("promote", parents=[home_only], help="serve a run's configuration")
    a.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    a.add_argument(
        "--config", dest="config_id", metavar="ID", help="configuration id (default: the winner)"
    )
    a.set_defaults(handler=cmd_promote)

    a = actions.add_parser("history", parents=[common], help="promoted configurations")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_history)

    a = actions.add_parser("rollback", parents=[common], help="serve the previous configuration")
    a.set_defaults(handler=cmd_rollback)


def cmd_from_feedback(args: argparse.Namespace, settings: Settings) -> int:
    from eval.dataset import write_dataset
    from eval.feedback import cases_from_feedback, example_candidates, feedback_rows

    rows = feedback_rows(settings.home, args.since)
    cases = cases_from_feedback(rows)
    write_dataset(args.out, cases)
    print(f"{len(cases)} cases from {len(rows)} feedback entries -> {args.out}")
    if args.examples_out:
        candidates = example_candidates(rows)
        args.examples_out.parent.mkdir(parents=True, exist_ok=True)
        args.examples_out.write_text("".join(json.dumps(c) + "\n" for c in candidates))
        print(f"{len(candidates)} example candidates -> {args.examples_out}")
    return 0


def cmd_accept_examples(args: argparse.Namespace, settings: Settings) -> int:
    from eval.feedback import accept_examples
    from prompts.registry import TemplateError, TemplateNotFound, TemplateRegistry, builtin_dir

    user = settings.home / "prompts"
    try:
        path = accept_examples(
            TemplateRegistry([builtin_dir(), user]), args.template, args.candidates, user
        )
    except (TemplateError, TemplateNotFound, ValueError, OSError) as e:
        print(f"ragtune eval accept-examples: {e}", file=sys.stderr)
        return 2
    print(f"new template version: {path}")
    return 0


def cmd_promote(args: argparse.Namespace, settings: Settings) -> int:
    from eval.promote import promote
    from service.serving import ServingError

    try:
        version, params = promote(settings.home, args.run_dir, args.config_id)
    except (ValueError, ServingError) as e:
        print(f"ragtune eval promote: {e}", file=sys.stderr)
        return 2
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    print(f"serving configuration v{version}: {shown}")
    return 0


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    from eval.promote import history

    entries = history(settings.home)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print("no promoted configurations: the settings' rag section serves")
    for e in entries:
        when = datetime.fromtimestamp(e["created"]).isoformat(timespec="seconds")
        mark = "*" if e["current"] else " "
        flat = tunables.flatten(nest_legacy(e["params"]), "rag.")
        params = ", ".join(f"{k}={v}" for k, v in flat.items())
        print(
            f"{mark} v{e['version']}  {when}  {params}  (config {e.get('config')}, {e.get('run')})"
        )
    return 0


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from eval.promote import rollback
    from service.serving import ServingError

    try:
        version = rollback(settings.home)
    except ServingError as e:
        print(f"ragtune eval rollback: {e}", file=sys.stderr)
        return 2
    print(f"serving configuration v{version}" if version else "serving the settings' rag section")
    return 0
