"""``ragtune eval ACTION``: evaluate and tune the serving configuration.

``eval`` is one command with actions (``run`` here; from-feedback, promote, history, rollback,
models beside it), each handler ``handler(args, settings) -> int`` like every other command.
``service.cli`` must not import ``eval`` (layering), so the full command line is assembled here,
in the top layer: ``main`` is the ``ragtune`` console script and ``python -m eval.cli``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eval.cli_common import (
    EXIT_USAGE,
    ProgressBar,
    ProgressFile,
    UsageError,
    default_out,
    positive_int,
)
from eval.cli_models import add_models
from eval.cli_retrieval import add_retrieval
from eval.cli_serving import add_serving_actions
from eval.run import DEFAULT_PRIMARY
from service import cli as service_cli
from service.settings import Settings


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Register ``eval`` with its actions; ``common`` (--home, --config) goes on each action."""
    p = sub.add_parser("eval", help="evaluate answers and tune the serving configuration")
    actions = p.add_subparsers(dest="eval_command", required=True, metavar="ACTION")
    add_run(actions, common)
    add_models(actions, common)
    add_retrieval(actions, common)
    add_serving_actions(actions, common)


def add_run(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    a = actions.add_parser(
        "run",
        parents=[common],
        help="answer a dataset under each configuration of a sweep and compare with serving",
        description="Answer every question of DATASET under each configuration of the sweep "
        "(the serving configuration is always the baseline), score the answers and write "
        "results.json, results.csv and summary.md to the output folder. Rerunning the same "
        "command resumes an interrupted run; cached retrievals and answers are reused.",
    )
    a.add_argument("--dataset", type=Path, required=True, metavar="FILE", help="JSONL cases")
    a.add_argument("--sweep", type=Path, metavar="SWEEP.toml", help="axes to sweep (TOML)")
    a.add_argument(
        "--judge",
        metavar="BASE_URL/MODEL|local[:PRESET]",
        help="OpenAI-compatible judge for the LLM metrics, e.g. http://127.0.0.1:8001/v1/qwen, "
        "or local: an embedded instruct preset served for the run (eval.local_judge) "
        "(default: settings' eval.judge_base_url and eval.judge_model, if set)",
    )
    a.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder (default eval.runs_dir or HOME/eval/runs, then "
        "<dataset>-<hash of dataset and sweep>)",
    )
    a.add_argument(
        "--fail-under",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="exit 1 when the winner's (or else the baseline's) mean METRIC is below VALUE "
        "(repeatable; no gate by default; the README recommends key_facts=0.3 on dev)",
    )
    a.add_argument(
        "--primary",
        default=DEFAULT_PRIMARY,
        metavar="METRIC",
        help=f"metric that picks the winner (default {DEFAULT_PRIMARY}: the share of answers "
        "with the ground truth's key facts; semantic similarity is shown, never decides)",
    )
    a.add_argument(
        "--limit", type=positive_int, metavar="N", help="only the first N questions of DATASET"
    )
    a.add_argument(
        "--progress-file",
        type=Path,
        metavar="PATH",
        help='keep {"done", "total", "stage"} in PATH as answers finish (JSON, replaced '
        "atomically), for a program watching the run",
    )
    a.add_argument(
        "--check",
        action="store_true",
        help="check the dataset, sweep and options, print the plan and exit without answering",
    )
    a.set_defaults(handler=cmd_run)


def known_metric(name: str) -> str:
    from eval.metrics import METRICS

    if name not in METRICS:
        raise UsageError(f"unknown metric '{name}'; known metrics: {', '.join(METRICS)}")
    return name


def parse_fail_under(specs: Sequence[str]) -> dict[str, float]:
    """``METRIC=VALUE`` strings as thresholds; unknown metrics are a usage error."""
    out: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep:
            raise UsageError(f"--fail-under {spec!r}: expected METRIC=VALUE")
        try:
            out[known_metric(name.strip())] = float(value)
        except ValueError as e:
            if isinstance(e, UsageError):
                raise
            raise UsageError(f"--fail-under {spec!r}: {value!r} is not a number") from e
    return out


def check_fail_under(results: Mapping[str, Any], thresholds: Mapping[str, float]) -> list[str]:
    """One message per threshold the decisive configuration misses (the winner, else baseline).

    A metric with no value at all (a judge metric without ``--judge``) fails: a gate that
    cannot measure must not pass.
    """
    config = next(c for c in results["configs"] if c["id"] == results["winner"])
    failures = []
    for name, floor in thresholds.items():
        value = config["metrics"].get(name)
        if value is None:
            failures.append(f"{name}: no values in this run (threshold {floor:g})")
        elif value < floor:
            failures.append(f"{name} = {value:.4f} is below {floor:g} (config {config['id']})")
    return failures


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from eval.dataset import DatasetError, load_dataset
    from eval.judge import JudgeUnavailable, judge_config
    from eval.judge import serving as judge_serving
    from eval.run import run_sweep, serving_rag
    from eval.sweep import SweepError, load_sweep

    try:
        thresholds = parse_fail_under(args.fail_under)
        primary = known_metric(args.primary)
        cases = load_dataset(args.dataset)[: args.limit]
        sweep = load_sweep(args.sweep, serving_rag(settings), settings.chunk)
        if sweep.search.metric is not None:
            known_metric(sweep.search.metric)
        judge = judge_config(args.judge, settings.eval)
    except (UsageError, DatasetError, SweepError) as e:
        print(f"ragtune eval run: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:  # judge_config's complaint about the URL or the settings
        print(f"ragtune eval run: {e}", file=sys.stderr)
        return EXIT_USAGE
    ids = [c.id for c in sweep.configs]
    judged = judge.label if judge else None
    extra = [sweep.search, judged] + ([f"limit={args.limit}"] if args.limit else [])
    out = args.out or default_out(settings, args.dataset, ids, extra)
    print(f"{len(sweep.configs)} configurations × {len(cases)} questions -> {out}", file=sys.stderr)
    if args.check:
        return 0
    watcher = ProgressFile(args.progress_file) if args.progress_file else None
    try:
        with judge_serving(judge, settings) as judge, ProgressBar() as bar:

            def progress(done: int, total: int) -> None:
                bar.update(done, total)
                if watcher is not None:
                    watcher.update(done, total)

            result = run_sweep(
                settings,
                cases,
                sweep.configs,
                out,
                judge=judge,
                progress=progress,
                search=sweep.search,
                primary_metric=primary,
                dataset=str(args.dataset),
            )
    except JudgeUnavailable as e:
        print(f"ragtune eval run: judge: {e}", file=sys.stderr)
        return 1
    from eval.report import write_report

    if watcher is not None:
        watcher.set_stage("reporting")
    report = write_report(result.results, out)
    if watcher is not None:
        watcher.set_stage("done")
    print((out / "summary.md").read_text(encoding="utf-8"))
    print(f"report: {report}", file=sys.stderr)
    failures = check_fail_under(result.results, thresholds)
    for f in failures:
        print(f"ragtune eval run: fail-under: {f}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``ragtune``: the commands of ingest, prompts and service, and ``eval`` (one parser)."""
    return service_cli.main(argv, commands=(*service_cli.COMMANDS, add_commands))


if __name__ == "__main__":
    sys.exit(main())
