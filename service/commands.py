"""``ragtune serve`` and ``ragtune ask``: the chat pipeline over HTTP or straight from a terminal."""

from __future__ import annotations

import argparse
import json
import sys

from pydantic_core import to_jsonable_python

from service.answer import Citation
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
    from service.app import _build_state

    state = _build_state(settings, None, None)
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
        answer = rag.record(plan, rag.generate(plan, state.llm), state.backend)
    finally:
        state.index.close()
        state.llm.close()
    if args.json:
        body = {"answer": answer.text, "citations": answer.citations, "ragtune": answer.provenance}
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
