"""``ragtune ingest | docs``: the operator's side of the index (``search`` is the service's).

Each command receives ready-made settings (built by the top-level ``main``) and returns an exit
status; heavy imports (encoder, FAISS) happen inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ingest.settings import ChunkSettings, EmbedSettings, IndexSettings, IngestSettings

if TYPE_CHECKING:
    from ingest.pipeline import Ingestor, Summary


class IngestConfig(Protocol):
    """The settings sections these commands read (``service.settings.Settings`` has them all)."""

    @property
    def index_dir(self) -> Path: ...

    embed: EmbedSettings
    chunk: ChunkSettings
    index: IndexSettings
    ingest: IngestSettings


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ingest", parents=[common], help="convert, chunk, embed and index documents")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    p.add_argument("--sync", action="store_true", help="remove indexed documents gone from PATHs")
    p.add_argument("--watch", action="store_true", help="keep ingesting changes until interrupted")
    p.add_argument("--workers", type=int, help="conversion processes")
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        help="local (default: ingest.engine): this machine; ray: a Ray cluster (the ray extra)",
    )
    p.add_argument(
        "--address",
        metavar="ADDR",
        help="--engine ray: the cluster to join (auto, ray://head:10001); default: a local Ray",
    )
    p.add_argument("--retry-quarantined", action="store_true", help="retry unchanged broken files")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("docs", parents=[common], help="list indexed and quarantined documents")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--check",
        action="store_true",
        help="also check that FAISS, BM25 and SQLite hold the same chunks (exit 1 if not)",
    )
    p.set_defaults(handler=cmd_docs)


def cmd_ingest(args: argparse.Namespace, cfg: IngestConfig) -> int:
    from ingest.embed import load_embedder
    from ingest.pipeline import Ingestor
    from ingest.search import open_index
    from ingest.watch import watch

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"ragtune ingest: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    settings = cfg.ingest
    if args.workers:
        settings = settings.model_copy(update={"workers": args.workers})
    if args.engine or args.address:
        update = {"engine": args.engine or settings.engine, "ray_address": args.address}
        settings = settings.model_copy(update={k: v for k, v in update.items() if v})
    if settings.engine == "ray":
        why = _ray_refusal(args, settings)
        if why:
            print(f"ragtune ingest: {why}", file=sys.stderr)
            return 2
    elif args.address:
        print("ragtune ingest: --address needs --engine ray", file=sys.stderr)
        return 2
    embedder = load_embedder(cfg.embed)
    index = open_index(cfg, embedder)
    refused: tuple[type[Exception], ...] = ()  # one-line errors of the engine, not bugs
    if settings.engine == "ray":
        from ingest.ray_engine import RayIngestor, RayUnavailable

        ingestor: Ingestor = RayIngestor(index, embedder, cfg.chunk, settings, cfg.embed)
        refused = (RayUnavailable,)
    else:
        ingestor = Ingestor(index, embedder, cfg.chunk, settings)
    try:
        if args.watch:
            stop = threading.Event()
            try:
                watch(
                    ingestor,
                    args.paths,
                    interval_s=settings.watch_interval_s,
                    on_summary=lambda s: _print_summary(s, args.json),
                    on_error=lambda e: print(
                        f"ragtune ingest: {e}; retrying at a later poll",
                        file=sys.stderr,
                        flush=True,
                    ),
                    stop=stop,
                )
            except KeyboardInterrupt:
                stop.set()
            return 0
        try:
            summary = _run_with_progress(ingestor, args, show=sys.stderr.isatty() and not args.json)
        except refused as e:
            print(f"ragtune ingest: {e}", file=sys.stderr)
            return 2
        _print_summary(summary, args.json)
        return 0
    finally:
        index.close()


def _ray_refusal(args: argparse.Namespace, settings: IngestSettings) -> str | None:
    """Why ``--engine ray`` cannot run as asked, or None."""
    from ingest.ray_engine import RayUnavailable, import_ray

    if args.watch:
        return "--watch runs on the local engine only (drop --engine ray / ingest.engine)"
    try:
        import_ray()
    except RayUnavailable as e:
        return str(e)
    return None


def _run_with_progress(ingestor: Ingestor, args: argparse.Namespace, *, show: bool) -> Summary:
    if not show:
        return ingestor.run(args.paths, sync=args.sync, retry_quarantined=args.retry_quarantined)
    from tqdm import tqdm

    bar = tqdm(total=0, unit="doc", desc="ingest", dynamic_ncols=True)

    def on_plan(total: int, done: int) -> None:
        bar.total = total
        bar.update(done)

    try:
        return ingestor.run(
            args.paths,
            sync=args.sync,
            retry_quarantined=args.retry_quarantined,
            progress=bar.update,
            on_plan=on_plan,
        )
    finally:
        bar.close()


def _print_summary(summary: Summary, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.as_dict(), indent=2), flush=True)
        return
    for p in summary.problems:
        print(f"{p['status']}: {p['source']}: {p['reason']}", file=sys.stderr)
    print(
        f"added {summary.added}, updated {summary.updated}, unchanged {summary.unchanged}, "
        f"removed {summary.removed}, quarantined {summary.quarantined}, skipped {summary.skipped}; "
        f"{summary.chunks} chunks, {summary.bytes / 1e6:.2f} MB in {summary.seconds:.1f} s "
        f"(index version {summary.version})",
        flush=True,
    )


def cmd_docs(args: argparse.Namespace, cfg: IngestConfig) -> int:
    from ingest.index import VectorIndex
    from ingest.search import open_index

    identity = VectorIndex.recorded_identity(cfg.index_dir)
    if identity is None:  # nothing ingested yet: nothing to list, and nothing is created
        docs, held, problems = [], [], []
    else:
        # The encoder is not needed to list documents: open with the identity on record.
        index = open_index(cfg, None, identity)
        try:
            docs, held = index.documents(), index.quarantined()
            problems = index.verify() if args.check else []
        finally:
            index.close()
    status = 1 if problems else 0
    if args.json:
        out: dict[str, Any] = {
            "documents": [
                {
                    k: getattr(d, k)
                    for k in (
                        "doc_id",
                        "source",
                        "kind",
                        "title",
                        "n_chunks",
                        "content_hash",
                        "version",
                        "ingested_at",
                    )
                }
                for d in docs
            ],
            "quarantined": [{"source": q.source, "reason": q.reason, "at": q.at} for q in held],
        }
        if args.check:
            out["problems"] = problems
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return status
    for d in docs:
        print(f"{d.doc_id}  {d.n_chunks:5d} chunks  {d.kind:8s}  {d.source}")
    print(f"{len(docs)} documents")
    for q in held:
        print(f"quarantined: {q.source}: {q.reason}")
    for p in problems:
        print(f"inconsistent: {p}")
    if args.check and not problems:
        print("check: FAISS, BM25 and SQLite agree")
    return status
