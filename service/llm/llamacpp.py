"""The embedded backend: a GGUF model run in this process by llama-cpp-python.

One model, one KV cache, all cores: generation is serialized through a bounded ``Gate`` and every
request streams internally, so a cancel (client gone) stops the next token instead of the answer.
Chat prompts are rendered by the GGUF's own chat template into token ids and then decoded exactly
like completion prompts: one path for the block cache, stops and the end of generation.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

from service.llm.base import (
    Completion,
    Delta,
    LLMBusy,
    LLMError,
    LLMUnavailable,
    Prompt,
    SamplingParams,
    Style,
    complete_from,
)
from service.llm.chat_template import ChatTemplate, ChatTemplateError
from service.llm.gate import Gate
from service.llm.presets import DEFAULT_PRESET, ModelFileError, model_file, preset
from service.llm.settings import LLMSettings
from service.llm.stops import AnswerText

# Prompts are evaluated in blocks of this many tokens, and the KV cache keeps only whole blocks
# (_keep_cache). Small blocks keep most of a shared prefix (template, examples) for the next
# request; on 2 CPU cores a 1000-token prompt took the same ~1.85 s at 64 as at 512.
PROMPT_BLOCK = 64
# llama.cpp's own default when a request does not name top_k (vLLM's is "off", i.e. -1).
DEFAULT_TOP_K = 40


def default_model_path() -> Path:
    """The default preset's GGUF (joined and verified into the cache when it was installed)."""
    return model_file(preset(DEFAULT_PRESET))


def usable_cpus() -> int:
    """CPUs this process may run on; the affinity mask beats ``os.cpu_count()`` in containers."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def sampling_kwargs(params: SamplingParams) -> dict[str, Any]:
    """``create_completion`` arguments for ``params`` (the seed is the caller's decision)."""
    return {
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": DEFAULT_TOP_K if params.top_k is None else params.top_k,
        "repeat_penalty": params.repetition_penalty or 1.0,
        "stop": list(params.stop),
    }


class LlamaCppLLM:
    """An in-process llama.cpp model behind the ``LLM`` protocol.

    ``style="chat"`` takes chat messages and renders them with the GGUF's chat template.
    """

    def __init__(
        self,
        llama: Any,
        *,
        name: str,
        style: Style = "completion",
        queue_size: int = 8,
        queue_timeout_s: float = 60.0,
    ) -> None:
        self._llama = llama
        self.name = name
        self.style = style
        self._chat = ChatTemplate.of(llama) if style == "chat" else None
        if style == "chat" and self._chat is None:
            raise LLMUnavailable(f"{name} has no chat template in its GGUF; use style 'completion'")
        self.context_window: int = llama.n_ctx()
        self._gate = Gate(queue_size, queue_timeout_s)
        self.parallel = self._gate.slots  # one KV cache: generation is serialized
        self._bos: list[int] = [llama.token_bos()] if llama._model.add_bos_token() else []
        self._closed = False
        # Cached positions a fresh evaluation would reproduce exactly (see _reusable_prefix).
        self._aligned = 0

    @classmethod
    def load(cls, settings: LLMSettings, *, seed: int | None = None) -> LlamaCppLLM:
        """Load the configured GGUF with explicit thread counts (OpenMP oversubscription is ~50x)."""
        from llama_cpp import LLAMA_DEFAULT_SEED, Llama

        try:
            chosen = preset(settings.model)
            path = settings.model_path or model_file(chosen)
        except ModelFileError as e:
            raise LLMUnavailable(str(e)) from e
        threads = settings.threads or usable_cpus()
        try:
            llama = Llama(
                model_path=str(path),
                n_ctx=settings.n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=PROMPT_BLOCK,
                n_ubatch=PROMPT_BLOCK,
                seed=LLAMA_DEFAULT_SEED if seed is None else seed,
                verbose=False,
            )
        except (ValueError, OSError) as e:
            raise LLMUnavailable(f"cannot load GGUF model {path}: {e}") from e
        return cls(
            llama,
            name=settings.name or path.stem,
            style=settings.prompt_style,
            queue_size=settings.queue_size,
            queue_timeout_s=settings.queue_timeout_s,
        )

    @property
    def waiting(self) -> int:
        """Requests queued for the model now."""
        return self._gate.waiting

    def _tokens(self, text: str) -> list[int]:
        # special=False: retrieved text that happens to contain "<start_of_turn>" or "<eos>" stays
        # text instead of becoming a control token. No lock: llama_tokenize only reads the vocab,
        # and llama.cpp's own server tokenizes in its HTTP threads while the main loop decodes.
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _prompt_tokens(self, prompt: Prompt) -> list[int]:
        if self._chat is None:
            if prompt.text is None:
                raise LLMError("this model takes completion prompts (style='completion')")
            return self._tokens(prompt.text)
        if prompt.messages is None:
            raise LLMError("this model takes chat messages (style='chat')")
        try:
            pieces = self._chat.segments(prompt.messages)
        except ChatTemplateError as e:
            raise LLMError(str(e)) from e
        tokens: list[int] = []
        for text, markup in pieces:  # the template's markup may hold control tokens, text never
            tokens += self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=markup)
        return tokens

    @property
    def model_path(self) -> str:
        """The GGUF file this model was loaded from."""
        return str(self._llama.model_path)

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        """The token ids the model is fed for ``prompt``, BOS included."""
        return self._bos + self._prompt_tokens(prompt)

    def count_tokens(self, text: str) -> int:
        """Exact count in the model's tokenizer, without BOS (the prompt gets one BOS in all)."""
        return len(self._tokens(text))

    def ready(self) -> bool:
        return not self._closed

    def close(self) -> None:
        """Free the model once the running generation is done; queued ones are refused."""
        if self._closed:
            return
        self._closed = True
        while True:  # freeing the model under a running generation would crash the process
            try:
                self._gate.acquire()
                break
            except LLMBusy:  # queue full or a long generation: the queued ones bail out fast
                time.sleep(0.05)
        try:
            self._llama.close()
        finally:
            self._gate.release()

    def complete(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Completion:
        failure = LLMError("llama.cpp stream ended without a finish reason")
        return complete_from(self.stream(prompt, params, cancel), failure)

    def stream(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Generator[Delta, None, None]:
        """Yield text pieces as they are sampled; the gate is held until the iterator finishes.

        The turn is taken at the first ``next()``, so LLMBusy surfaces there. Close the iterator
        (or set ``cancel``) when the client leaves: either frees the model at the next token.
        Prompt processing itself cannot be interrupted; a cancel lands after the first token.
        """
        if self._closed:
            raise LLMUnavailable("the llama.cpp model is closed")
        tokens = self.prompt_tokens(prompt)
        if len(tokens) >= self.context_window:
            raise LLMError(
                f"prompt is {len(tokens)} tokens; the context window is {self.context_window}"
            )
        return self._generate(tokens, params, cancel)

    def _keep_cache(self, tokens: list[int]) -> int:
        """Keep only the cached prefix that evaluating ``tokens`` afresh would reproduce exactly.

        llama-cpp-python reuses every cached token the prompt starts with and evaluates the rest,
        so the same prompt was evaluated in different batches depending on what came before it:
        all but its last token reused after an identical request, a template's prefix after
        another question. Batched and single-token evaluation round differently, and at
        temperature 0 that flipped answers (an identical request gave another answer, or an
        empty one). A prompt is always evaluated in ``n_batch`` blocks from position 0, so the
        cache keeps whole blocks that were evaluated full: those are exactly what a fresh
        evaluation computes, and the rest is evaluated from the same block boundary as fresh.

        Returns the prompt tokens reused from the cache (what ``usage`` reports as cached).
        """
        llama = self._llama
        block = llama.n_batch
        keep = min(self._aligned, len(tokens) - 1, llama.n_tokens)
        cached = llama.input_ids
        common = 0
        while common < keep and cached[common] == tokens[common]:
            common += 1
        keep = common // block * block
        if keep < llama.n_tokens:
            llama.n_tokens = keep  # generate() then reuses at most these and evaluates the rest
            llama._requires_eval = True
        self._aligned = len(tokens) // block * block
        return keep

    def _generate(
        self, tokens: list[int], params: SamplingParams, cancel: threading.Event | None
    ) -> Generator[Delta, None, None]:
        start = time.monotonic()
        timings: dict[str, float] = {}
        if not self._gate.acquire(cancel):
            timings["queue"] = timings["total"] = time.monotonic() - start
            yield Delta("", "cancelled", prompt_tokens=len(tokens), timings=timings)
            return
        parts: list[str] = []
        finish = "length"
        try:
            if self._closed:  # closed while this request waited for its turn
                raise LLMUnavailable("the llama.cpp model is closed")
            timings["queue"] = time.monotonic() - start
            reused = self._keep_cache(tokens)
            chunks = self._llama.create_completion(
                tokens,
                # Stops are ours (AnswerText): llama.cpp's would end an answer that begins with one.
                **{**sampling_kwargs(params), "stop": []},
                # No seed asked for: draw one, so unseeded requests differ (llama-cpp-python would
                # otherwise derive each seed from the previous one, repeating across restarts).
                seed=secrets.randbits(31) if params.seed is None else params.seed,
                stream=True,
            )
            scan = AnswerText(params.stop)
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    text = scan.feed(choice["text"])
                    if text:
                        if not parts:
                            timings["first_token"] = time.monotonic() - start
                        parts.append(text)
                        yield Delta(text)
                    if scan.ended:
                        finish = "stop"
                        break
                    if choice["finish_reason"] is not None:
                        finish = choice["finish_reason"]
                    if cancel is not None and cancel.is_set():
                        finish = "cancelled"
                        break
            finally:
                chunks.close()  # stops llama-cpp-python's generator: no token after this one
            if (rest := scan.flush()) and finish != "cancelled":
                parts.append(rest)
                yield Delta(rest)
        except ValueError as e:  # llama-cpp-python reports bad requests as ValueError
            raise LLMError(f"llama.cpp rejected the request: {e}") from e
        finally:
            self._gate.release()
        timings["total"] = time.monotonic() - start
        yield Delta(
            "",
            finish,
            prompt_tokens=len(tokens),
            # Re-tokenizing the answer: exact except where a word could split two ways.
            completion_tokens=len(self._tokens("".join(parts))),
            timings=timings,
            cached_tokens=reused,
        )
