"""Build the configured backend: the one place that maps settings to an ``LLM``.

Backends import lazily, so a service that talks to vLLM never loads llama.cpp and vice versa.
"""

from __future__ import annotations

from service.llm.base import LLM
from service.llm.settings import LLMSettings


def load_llm(settings: LLMSettings) -> LLM:
    """The backend ``settings`` describe, ready to serve (the local model is loaded here)."""
    if settings.backend == "llamacpp" and settings.engine == "server":
        from service.llm.server_engine import LlamaServerLLM

        return LlamaServerLLM.start(settings)
    if settings.backend == "llamacpp":
        from service.llm.llamacpp import LlamaCppLLM

        return LlamaCppLLM.load(settings)
    from service.llm.openai_compat import OpenAICompatLLM

    return OpenAICompatLLM(settings)
