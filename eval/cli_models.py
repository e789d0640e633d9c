"""``ragtune eval models``: score candidate backends on a weighted-factors matrix."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from eval.cli_common import EXIT_USAGE, ProgressBar, UsageError, default_out, positive_int
from service.settings import Settings


def add_models(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    a = actions.add_parser(
        "models",
        parents=[common],
        help="score candidate model backends on weighted factors (quality, speed, cost)",
        description="Answer DATASET with each candidate backend of MODELS.toml under the serving "
        "configuration, measure quality metrics, p50 latency and tokens/s, add each candidate's "
        "configured cost and context window, and rank the candidates by the weighted mean of "
        "the factors normalized across candidates. Writes models.json, models.csv, models.md "
        "and models.html; rerunning resumes and reuses cached answers.",
    )
    a.add_argument(
        "--models", type=Path, required=True, metavar="MODELS.toml", help="candidates and weights"
    )
    a.add_argument("--dataset", type=Path, required=True, metavar="FILE", help="JSONL cases")
    a.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder (default eval.runs_dir or HOME/eval/runs, then models-<dataset>-<hash>)",
    )
    a.add_argument(
        "--judge",
        metavar="BASE_URL/MODEL|local[:PRESET]",
        help="OpenAI-compatible judge for the LLM metrics, or local: an embedded instruct "
        "preset served for the run (default: settings' eval.judge_*)",
    )
    a.add_argument(
        "--limit", type=positive_int, metavar="N", help="only the first N questions of the dataset"
    )
    a.set_defaults(handler=cmd_models)


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from eval.candidates import Candidate, ModelsFileError, load_models
    from eval.dataset import DatasetError, load_dataset
    from eval.judge import JudgeUnavailable, judge_config
    from eval.judge import serving as judge_serving
    from eval.metrics import METRICS
    from eval.report_models import summary_markdown, write_html
    from eval.selection import build_selection, run_candidates, run_info, write_selection
    from service.llm.base import LLMError

    try:
        spec = load_models(args.models)
        cases = load_dataset(args.dataset)[: args.limit]
        judge = judge_config(args.judge, settings.eval)
        judged = [
            f for f, w in spec.weights.items() if w and f in METRICS and METRICS[f].needs_judge
        ]
        if judged and judge is None:
            raise UsageError(
                f"{args.models}: weights.{judged[0]} needs a judge: pass --judge BASE_URL/MODEL "
                "or set eval.judge_base_url and eval.judge_model"
            )
    except (UsageError, DatasetError, ModelsFileError, ValueError) as e:
        print(f"ragtune eval models: {e}", file=sys.stderr)
        return EXIT_USAGE
    names = [c.name for c in spec.candidates]
    where = judge.label if judge else None
    extra = ["models", [c.profile() for c in spec.candidates], args.limit, where]
    out = args.out or default_out(settings, args.dataset, names, extra)
    if args.out is None:
        out = out.with_name(f"models-{out.name}")
    print(f"{len(names)} candidates × {len(cases)} questions -> {out}", file=sys.stderr)
    current = [""]
    t0 = time.perf_counter()
    try:
        with judge_serving(judge, settings) as judge, ProgressBar() as bar:

            def start(candidate: Candidate) -> None:
                current[0] = candidate.name
                bar.describe(candidate.name)

            runs = run_candidates(
                settings,
                spec,
                cases,
                out,
                judge=judge,
                progress=bar.update,
                on_start=start,
                dataset=str(args.dataset),
            )
    except LLMError as e:  # a backend down or refusing: the finished candidates stay cached
        print(f"ragtune eval models: candidate {current[0]}: {e}", file=sys.stderr)
        return 1
    except JudgeUnavailable as e:
        print(f"ragtune eval models: judge: {e}", file=sys.stderr)
        return 1
    selection = build_selection(spec, runs, run_info(runs, str(args.dataset), judge, t0))
    summary = summary_markdown(selection)
    write_selection(out, selection, summary)
    page = write_html(selection, out)
    print(summary)
    for w in selection["warnings"]:
        print(f"ragtune eval models: warning: {w}", file=sys.stderr)
    print(f"report: {page}", file=sys.stderr)
    return 0
