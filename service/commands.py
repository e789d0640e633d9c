"""``ragtune serve | search | ask``: the serving pipeline over HTTP or straight from a terminal.

``search`` and ``ask`` use the serving configuration in force (``rag`` settings with the promoted
version applied), as the API does; their flags override it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from ingest.settings import RetrievalSettings
from service.answer import Citation
from service.settings import Settings

if TYPE_CHECKING:
    import uvicorn

    from ingest.index import Hit


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", parents=[common], help="run the OpenAI-compatible API")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument(
        "--allow-open",
        action="store_true",
        default=None,
        help="serve a non-loopback address with no API keys (service.allow_open): anyone who "
        "reaches it may do everything",
    )
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("search", parents=[common], help="top chunks for a query")
    p.add_argument("query")
    p.add_argument("-k", type=int, help="number of chunks (default: the serving configuration's)")
    p.add_argument("--mode", choices=("dense", "bm25", "hybrid"), help="default: serving")
    p.add_argument("--fusion", choices=("rrf", "blend"), help="hybrid fusion (default: serving)")
    p.add_argument("--dense-weight", type=float, help="hybrid: weight of the dense side, 0..1")
    p.add_argument("--mmr", type=float, metavar="LAMBDA", help="diversify (1: relevance only)")
    p.add_argument(
        "--group-by",
        choices=("chunk", "document"),
        help="document: the best chunk of each document, k distinct documents (default: serving)",
    )
    p.add_argument(
        "--min-score",
        type=float,
        help="drop chunks less similar (cosine) to the query (default: serving; -1: keep all)",
    )
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="source, doc_id or kind; repeat for more (same key: any of)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(handler=cmd_search)

    p = sub.add_parser("ask", parents=[common], help="answer a question from the index")
    p.add_argument("question")
    p.add_argument("-k", type=int, help="passages to retrieve")
    p.add_argument("--prompt", help="template 'id@version'")
    p.add_argument(
        "--json", action="store_true", help="print the answer, citations and info as JSON"
    )
    p.set_defaults(handler=cmd_ask)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from service.security import bind_refusal

    svc = settings.service
    if args.allow_open:
        svc = svc.model_copy(update={"allow_open": True})
    host, port = args.host or svc.host, args.port if args.port is not None else svc.port
    refusal = bind_refusal(host, svc.model_copy(update={"allow_open": False}))
    if refusal is not None and not svc.allow_open:
        print(f"ragtune serve: {refusal}", file=sys.stderr)
        return 2
    if refusal is not None:
        print(
            f"ragtune serve: WARNING: {host} is served with no API keys (allow_open)",
            file=sys.stderr,
        )
    uvicorn.Server(server_config(settings, host, port)).run()
    return 0


def server_config(
    settings: Settings, host: str, port: int, *, log_level: str = "info", **app_args: Any
) -> uvicorn.Config:
    """How `ragtune serve` runs the app under uvicorn (tests start theirs from this too)."""
    import uvicorn

    from service.app import create_app
    from service.security import proxy_options

    app = create_app(settings, **app_args)
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, **proxy_options(settings.service)
    )


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.embed import load_embedder
    from ingest.search import open_index
    from service import rag
    from service.serving import ServingStore

    if args.k is not None and args.k < 1:
        print("ragtune search: -k must be at least 1", file=sys.stderr)
        return 2
    serving, _ = ServingStore(settings.home).effective(settings.rag)
    try:
        options, filters = _search_options(args, serving.retrieval)
    except ValueError as e:
        print(f"ragtune search: {e}", file=sys.stderr)
        return 2
    embedder = load_embedder(settings.embed)
    index = open_index(settings, embedder)
    try:
        hits = rag.retrieve_serving(
            embedder,
            index,
            args.query,
            serving.model_copy(update={"retrieval": options}),
            filters=filters,
        )
    finally:
        index.close()
    if args.json:
        print(json.dumps([_hit_json(h) for h in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("no results (is anything ingested? see `ragtune docs`)")
    for rank, h in enumerate(hits, 1):
        where = h.source + (f", page {h.page}" if h.page is not None else "")
        heading = f"  [{' > '.join(h.heading)}]" if h.heading else ""
        print(f"{rank}. {h.score:.3f}  {where}{heading}")
        print("   " + " ".join(h.text.split())[:300])
    return 0


def _search_options(
    args: argparse.Namespace, base: RetrievalSettings
) -> tuple[RetrievalSettings, dict[str, list[str]]]:
    from pydantic import ValidationError

    from ingest.search import check_filters, with_overrides

    mmr = {"mmr": True, "mmr_lambda": args.mmr} if args.mmr is not None else {}
    try:
        options = with_overrides(
            base,
            k=args.k,
            min_score=args.min_score,
            mode=args.mode,
            fusion=args.fusion,
            dense_weight=args.dense_weight,
            group_by=args.group_by,
            **mmr,
        )
    except ValidationError as e:
        raise ValueError("; ".join(f"{err['loc'][0]}: {err['msg']}" for err in e.errors())) from e
    filters: dict[str, list[str]] = {}
    for item in args.filter:
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise ValueError(f"--filter wants KEY=VALUE, got {item!r}")
        filters.setdefault(key, []).append(value)
    check_filters(filters)
    return options, filters


def _hit_json(hit: Hit) -> dict[str, object]:
    return {
        "text": hit.text,
        "source": hit.source,
        "page": hit.page,
        "heading": " > ".join(hit.heading),
        "score": round(float(hit.score), 4),
        "chunk_id": hit.chunk_id,
        "doc_id": hit.doc_id,
    }


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from service import rag
    from service.state import build_state, close_state

    state = build_state(settings)
    serving, serving_version = state.serving_config()
    try:
        plan = state.plan(
            args.question,
            rag.with_retrieval(serving, k=args.k),
            template_ref=args.prompt,
            params=rag.sampling_params(serving),
            serving_version=serving_version,
        )
        answer = rag.record(plan, rag.generate(plan, state.llm), state.backend, state.embedder)
    finally:
        close_state(state)
    if args.json:
        body = {"answer": answer.text, "citations": answer.citations, "ragtune": answer.ragtune()}
        print(json.dumps(to_jsonable_python(body), indent=2))
        return 0
    print(answer.text)
    if answer.citations:
        print()
    for c in answer.citations:
        print(_source_line(c))
    prov = answer.provenance
    print(
        f"\n({prov.prompt}, k={prov.retrieval_k}, index v{prov.index_version})",
        file=sys.stderr,
    )
    return 0


def _source_line(c: Citation) -> str:
    where = c.source + (f", page {c.page}" if c.page is not None else "")
    heading = f" [{c.heading}]" if c.heading else ""
    return f"[{c.index}] {where}{heading}"
