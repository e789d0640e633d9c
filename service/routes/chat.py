"""POST /v1/chat/completions: OpenAI-compatible, grounded in retrieved passages, with citations."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from prompts.render import PromptBudgetError
from service import conversation, rag
from service.answer import Answer
from service.deps import AppState, State
from service.errors import ApiError, error_body, error_responses
from service.llm.base import Completion, Delta, LLMError
from service.paths import redact
from service.schemas import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChunkChoice,
    DeltaMessage,
)
from service.streaming import Mailbox

log = logging.getLogger("ragtune.service")
router = APIRouter()


def _check_limits(req: ChatCompletionRequest, state: AppState) -> str:
    """The question, once the request is within the service's caps.

    Runs in a worker thread (from ``_plan``): counting the question's tokens may be a request to
    the model server, which must not hold up the event loop.
    """
    caps = state.settings.service
    if len(req.messages) > caps.max_messages:
        raise ApiError(
            413, f"too many messages ({len(req.messages)} > {caps.max_messages})", param="messages"
        )
    max_tokens = req.max_completion_tokens or req.max_tokens
    if max_tokens is not None and max_tokens > caps.max_tokens:
        raise ApiError(400, f"max_tokens is at most {caps.max_tokens}", param="max_tokens")
    k = req.retrieval.overrides().get("k", 0) if req.retrieval else 0
    if k > caps.max_k:
        raise ApiError(400, f"retrieval.k is at most {caps.max_k}", param="retrieval.k")
    question = rag.question_of(req.messages)
    if not question:
        raise ApiError(400, "the last user message has no text to answer", param="messages")
    if state.llm.count_tokens(question) > caps.max_question_tokens:
        raise ApiError(
            413, f"question longer than {caps.max_question_tokens} tokens", param="messages"
        )
    return question


def _plan(req: ChatCompletionRequest, state: AppState) -> rag.Plan:
    question = _check_limits(req, state)
    r = req.retrieval
    serving, serving_version = state.serving_config()
    params = rag.sampling_params(
        serving,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        max_tokens=req.max_completion_tokens or req.max_tokens,
        stop=req.stop,
        seed=req.seed,
    )
    if r is not None:
        serving = rag.with_retrieval(serving, **r.overrides())
    if req.verify is not None:
        checks = serving.verify.model_copy(update=req.verify.overrides())
        serving = serving.model_copy(update={"verify": checks})
    if req.conversation is not None:
        serving = conversation.with_overrides(serving, **req.conversation.overrides())
    try:
        return state.plan(
            question,
            serving,
            template_ref=req.prompt,
            filters=r.filters if r else None,
            params=params,
            serving_version=serving_version,
            history=conversation.history_of(req.messages),
        )
    except PromptBudgetError as e:
        raise ApiError(413, str(e), param="messages") from e
    except ValueError as e:  # a bad filter key
        raise ApiError(400, str(e), param="retrieval.filters") from e


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletionResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "The answer; with `stream`, "
            "server-sent chunks ending in `data: [DONE]`.",
        },
        **error_responses(400),
    },
)
async def chat_completions(req: ChatCompletionRequest, state: State) -> Any:
    plan = await run_in_threadpool(_plan, req, state)
    rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if req.stream:
        return StreamingResponse(
            _sse(plan, state, rid, created),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    out = await run_in_threadpool(rag.generate, plan, state.llm)
    answer = await run_in_threadpool(rag.record, plan, out, state.backend, state.embedder)
    await run_in_threadpool(_record, state, rid, plan, answer)
    return ChatCompletionResponse.of(rid, created, state.llm.name, answer)


def _record(state: AppState, rid: str, plan: rag.Plan, answer: Answer) -> None:
    """Keep the answer for feedback and count it in the metrics."""
    state.feedback.record_response(rid, answer)
    usage = answer.usage
    details = usage.prompt_tokens_details
    state.metrics.observe_answer(
        plan.timings,
        usage.prompt_tokens,
        usage.completion_tokens,
        cached_tokens=details.cached_tokens if details is not None else 0,
    )


async def _sse(plan: rag.Plan, state: AppState, rid: str, created: int) -> AsyncIterator[str]:
    """Deltas from a generation thread; citations and ragtune info ride on the last chunk.

    The answer is verified once it is complete, after its text went out: an unsupported one is
    flagged in ``ragtune.verification``, never refused.

    The generator is closed when the client disconnects; ``finally`` then sets ``cancel`` and the
    backend stops generating between two tokens.
    """
    cancel = threading.Event()
    box = Mailbox(asyncio.get_running_loop())

    def produce() -> None:
        try:
            for delta in rag.stream(plan, state.llm, cancel):
                box.put(delta)
                if cancel.is_set():
                    break
        except BaseException as e:  # handed to the event loop, reported as an SSE error
            box.put(e, urgent=True)
        finally:
            box.put(None, urgent=True)

    def chunk(delta: DeltaMessage, answer: Answer | None = None) -> str:
        """An SSE event; the last one (``answer`` given) ends with what a plain response has."""
        body = ChatCompletionChunk(
            id=rid,
            created=created,
            model=state.llm.name,
            choices=[ChunkChoice(delta=delta, finish_reason=answer and answer.finish_reason)],
            usage=answer and answer.usage,
            citations=answer and answer.citations,
            ragtune=answer and answer.ragtune(),
        )
        # json.dumps, not model_dump_json: the events stay byte for byte what they were.
        return f"data: {json.dumps(body.model_dump(mode='json'), ensure_ascii=False)}\n\n"

    asyncio.get_running_loop().run_in_executor(None, produce)  # ends once cancel is set
    try:
        yield chunk(DeltaMessage(role="assistant", content=""))
        parts: list[str] = []
        last: Delta | None = None
        done = False
        while not done:
            text = ""
            for item in await box.take():
                if item is None:
                    done = True
                    break
                if isinstance(item, BaseException):
                    if text:  # what the model said before it failed goes out first
                        yield chunk(DeltaMessage(content=text))
                    if isinstance(item, LLMError):
                        status, message = 503, redact(str(item), state.settings.home)
                    else:  # a bug: its text may hold anything; the log has it
                        log.error("stream failed", exc_info=item)
                        status, message = 500, f"internal error: {type(item).__name__}"
                    yield f"data: {json.dumps(error_body(status, message))}\n\n"
                    return
                text += item.text.lstrip() if not parts and not text else item.text
                last = item
            if text:
                parts.append(text)
                yield chunk(DeltaMessage(content=text))
            if not done:
                await box.linger()
        finish = (last.finish_reason if last else None) or "stop"
        p_tok, c_tok = (last.prompt_tokens, last.completion_tokens) if last else (0, 0)
        cached = last.cached_tokens if last else None
        out = Completion("".join(parts).strip(), finish, p_tok, c_tok, cached_tokens=cached)
        answer = await run_in_threadpool(
            partial(rag.record, streamed=True), plan, out, state.backend, state.embedder
        )
        await run_in_threadpool(_record, state, rid, plan, answer)
        yield chunk(DeltaMessage(), answer)
        yield "data: [DONE]\n\n"
    finally:
        cancel.set()
