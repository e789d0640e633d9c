"""``ragtune eval retrieval``: hit rate@k and MRR of the serving retrieval, and why each miss missed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eval.cli_common import EXIT_USAGE, positive_int
from service.settings import Settings

RESULTS = "retrieval.json"


def add_retrieval(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    a = actions.add_parser(
        "retrieval",
        parents=[common],
        help="hit rate@k and MRR of the serving retrieval, with the rank and rivals of each miss",
        description="Retrieve for every answerable question of each DATASET under the serving "
        "configuration (the promoted one, if any), as chat does, and report hit rate@k and "
        "MRR@k. For every miss, search DEPTH deep to find the rank of the first chunk holding "
        "the evidence, or why none does, and list the chunks that outranked it. Cases of kind "
        "'unanswerable' or without evidence are counted, not scored. No model is called.",
    )
    a.add_argument(
        "--dataset",
        type=Path,
        action="append",
        required=True,
        metavar="FILE",
        help="JSONL cases (repeatable; each is reported on its own)",
    )
    a.add_argument(
        "-k", type=positive_int, help="passages that count as retrieved (default: the serving k)"
    )
    a.add_argument(
        "--depth",
        type=positive_int,
        default=100,
        help="how deep a miss is searched for its evidence (default 100)",
    )
    a.add_argument("--json", action="store_true", help="print the report as JSON")
    a.add_argument("--out", type=Path, metavar="DIR", help=f"also write DIR/{RESULTS}")
    a.set_defaults(handler=cmd_retrieval)


def cmd_retrieval(args: argparse.Namespace, settings: Settings) -> int:
    from eval.dataset import DatasetError, load_dataset
    from eval.retrieval import dataset_label, diagnose, misses_text, summary_table
    from eval.run import serving_rag
    from ingest.embed import load_embedder
    from ingest.index import VectorIndex
    from ingest.search import open_index
    from service import rag

    try:
        datasets = [(path, load_dataset(path)) for path in args.dataset]
    except DatasetError as e:
        print(f"ragtune eval retrieval: {e}", file=sys.stderr)
        return EXIT_USAGE
    if VectorIndex.recorded_identity(settings.index_dir) is None:
        print(
            f"ragtune eval retrieval: nothing ingested under {settings.home} "
            "(run `ragtune ingest` first)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    serving = rag.with_retrieval(serving_rag(settings), k=args.k)
    embedder = load_embedder(settings.embed)
    index = open_index(settings, embedder)
    try:
        reports = [
            diagnose(embedder, index, cases, serving, dataset=dataset_label(path), depth=args.depth)
            for path, cases in datasets
        ]
        version = index.version
    finally:
        index.close()
    body = {
        "index_version": version,
        "retrieval": serving.retrieval.model_dump(mode="json"),
        "datasets": [r.as_dict() for r in reports],
    }
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / RESULTS).write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return 0
    print(summary_table(reports))
    for r in reports:
        if r.misses:
            print()
            print(misses_text(r))
    if args.out:
        print(f"wrote {args.out / RESULTS}", file=sys.stderr)
    return 0
