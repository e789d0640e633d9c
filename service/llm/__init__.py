"""Model backends behind one protocol; only this package talks to a model or model server."""

from service.llm.base import (
    LLM,
    Completion,
    Delta,
    LLMBusy,
    LLMError,
    LLMUnavailable,
    Prompt,
    SamplingParams,
)
from service.llm.factory import load_llm
from service.llm.settings import LLMSettings

__all__ = [
    "LLM",
    "Completion",
    "Delta",
    "LLMBusy",
    "LLMError",
    "LLMSettings",
    "LLMUnavailable",
    "Prompt",
    "SamplingParams",
    "load_llm",
]
