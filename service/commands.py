"""``ragtune serve`` and ``ragtune ask``: the chat pipeline over HTTP or straight from a terminal."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from service.settings import Settings


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", parents=[common], help="run the OpenAI-compatible API")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.set_defaults(handler=cmd_serve)

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

    from service.app import create_app

    svc = settings.service
    host, port = args.host or svc.host, args.port if args.port is not None else svc.port
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from service import rag
    from service.state import build_state, close_state

    state = build_state(settings)
    serving, serving_version = state.serving.effective(settings.rag)
    try:
        plan = rag.plan_answer(
            question=args.question,
            embedder=state.embedder,
            index=state.index,
            llm=state.llm,
            registry=state.registry,
            rag=serving,
            template_ref=args.prompt,
            k=args.k,
            params=rag.sampling_params(serving),
            serving_version=serving_version,
        )
        out = rag.generate(plan, state.llm)
        cited = rag.citations(plan, out.text)
        info = rag.rag_info(plan, state.backend)
    finally:
        close_state(state)
    if args.json:
        print(json.dumps({"answer": out.text, "citations": cited, "ragtune": info}, indent=2))
        return 0
    print(out.text)
    if cited:
        print()
    for c in cited:
        print(_source_line(c))
    print(
        f"\n({info['prompt']}, k={info['retrieval_k']}, index v{info['index_version']})",
        file=sys.stderr,
    )
    return 0


def _source_line(c: dict[str, Any]) -> str:
    where = c["source"] + (f", page {c['page']}" if c["page"] is not None else "")
    heading = f" [{c['heading']}]" if c["heading"] else ""
    return f"[{c['index']}] {where}{heading}"
