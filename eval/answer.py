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
from ingest.windows import Window
from service import conversation, rag
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
    rag_settings = config.rag(serving)
    # A follow-up is searched for condensed with its history: the cache keys what was searched.
    history = conversation.turns_of({"role": r, "content": c} for r, c in case.history)
    condensed = conversation.condense(case.question, history, llm, rag_settings.conversation)
    index = CachedIndex(
        state.index, cache, condensed.query, rag_settings.retrieval.min_score, index_tag
    )
    params = rag.sampling_params(rag_settings, seed=config.seed)
    plan = rag.plan_answer(
        question=case.question,
        embedder=embedder,
        index=index,
        llm=llm,
        registry=state.registry,
        rag=rag_settings,
        params=params,
        banks=state.example_banks,
        history=history,
        condensed=condensed,
        fence_key=state.fence_key,
    )
    out = rag.generate(plan, llm)
    answer = rag.record(plan, out, state.backend, embedder)
    # Only explicit [n] markers count as citations (see Answer.explicit_citations).
    cited = answer.explicit_citations()
    passages = plan.rendered.passages
    check = answer.verification
    obs = Observation(
        case=case,
        answer=answer.text,
        contexts=tuple(p.text for p in passages),
        cited=tuple(cited),
        # Declined and ungrounded answers make no claims to support: left out, not scored 0.
        supported=check.verdict == "supported"
        if check is not None and check.verdict in ("supported", "partial", "unsupported")
        else None,
        # What the service's verification found lent by the examples; None: no examples shown.
        borrowed=frozenset(w for s in check.sentences for w in s.borrowed)
        if plan.rendered.examples and check is not None
        else None,
    )
    prov = answer.provenance
    row = {
        "config": config.id,
        "baseline": config.baseline,
        "case": case.id,
        "question": case.question,
        **({"query": condensed.query} if case.history else {}),
        "ground_truth": case.ground_truth,
        "template": prov.prompt,
        "params": config.params,
        "sampling": prov.params.model_dump(),
        "model": llm.name,
        "backend": prov.backend,
        "index_version": prov.index_version,
        "passages": [
            {
                "n": n,
                "source": p.ref.hit.source if isinstance(p.ref, Window) else p.source,
                "page": p.page,
                "heading": p.heading,
                "score": round(float(p.score), 4),
                "text": p.text,
            }
            for n, p in enumerate(passages, 1)
        ],
        "dropped": len(plan.rendered.dropped),
        "answer": answer.text,
        "finish_reason": answer.finish_reason,
        "cited": cited,
        **({"borrowed": sorted(obs.borrowed)} if obs.borrowed else {}),
        "called": plan.grounded,
        "cached": answer.cached,
        "latency_s": round(float(out.timings.get("latency", 0.0)), 6),
        "prompt_tokens": answer.usage.prompt_tokens,
        "completion_tokens": answer.usage.completion_tokens,
        "metrics": {},
    }
    return obs, row
