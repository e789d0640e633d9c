"""One question under one configuration, through the serving code path: what to score and record.

A sweep must measure what the API would serve, so the answer goes through ``service.rag``
(``plan_answer`` then ``generate``) exactly as the API produces it, with the eval cache slotted in
under the index and the model. The row built here is what everything downstream reads: rows.jsonl,
results.csv's columns and the report's per-question table.
"""

from __future__ import annotations

from typing import Any

from eval.cache import CachedIndex, CachingLLM, EvalCache, MemoEmbedder
from eval.dataset import Case
from eval.metrics import Observation
from eval.sweep import Config
from ingest import search
from service import rag
from service.deps import AppState
from service.settings import RagSettings


def answer_case(
    config: Config,
    case: Case,
    *,
    state: AppState,
    serving: RagSettings,
    cache: EvalCache,
    embedder: MemoEmbedder,
    llm: CachingLLM,
    index_tag: str = "",
) -> tuple[Observation, dict[str, Any]]:
    """The observation to score and the row to record; ``serving`` is the configuration in force.

    ``embedder`` and ``llm`` are the run's cached wrappers and the index is wrapped here, per
    question, so a rerun or an overlapping configuration reuses retrievals and generations.
    """
    index = CachedIndex(state.index, cache, case.question, serving.min_score, index_tag)
    params = rag.sampling_params(
        serving,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        max_tokens=config.max_tokens,
        seed=config.seed,
    )
    plan = rag.plan_answer(
        question=case.question,
        embedder=embedder,
        index=index,
        llm=llm,
        registry=state.registry,
        rag=serving,
        template_ref=config.template,
        k=config.retrieval_k,
        min_score=serving.min_score,
        retrieval=search.with_overrides(serving.retrieval, **config.retrieval_overrides()),
        params=params,
        banks=state.example_banks,
    )
    out = rag.generate(plan, llm)
    # Only explicit [n] markers count as citations (rag.citations falls back to every passage
    # for display, which would make an uncited answer look fully supported).
    cited = tuple(
        c["index"] for c in rag.citations(plan, out.text) if f"[{c['index']}]" in out.text
    )
    passages = plan.rendered.passages
    obs = Observation(
        case=case, answer=out.text, contexts=tuple(p.text for p in passages), cited=cited
    )
    info = rag.rag_info(plan, state.backend)
    row = {
        "config": config.id,
        "baseline": config.baseline,
        "case": case.id,
        "question": case.question,
        "ground_truth": case.ground_truth,
        "template": plan.template.ref,
        "params": info["params"],
        "retrieval_k": plan.retrieval_k,
        "retrieval_mode": config.retrieval_mode,
        "fusion": config.fusion,
        "dense_weight": config.dense_weight,
        "chunk_size": config.chunk_size,
        "chunk_overlap": config.chunk_overlap,
        "min_score": serving.min_score,
        "model": llm.name,
        "backend": state.backend,
        "index_version": plan.index_version,
        "passages": [
            {
                "n": n,
                "source": getattr(p.ref, "source", p.source),  # the full path, not the name
                "page": p.page,
                "heading": p.heading,
                "score": round(float(p.score), 4),
                "text": p.text,
            }
            for n, p in enumerate(passages, 1)
        ],
        "dropped": len(plan.rendered.dropped),
        "answer": out.text,
        "finish_reason": out.finish_reason,
        "cited": list(cited),
        "called": plan.grounded,
        "cached": bool(out.timings.get("cached", 0.0)),
        "latency_s": round(float(out.timings.get("latency", 0.0)), 6),
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "metrics": {},
    }
    return obs, row
