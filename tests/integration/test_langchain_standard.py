"""LangChain's standard chat-model integration tests: `ChatOpenAI` against a real `ragtune serve`.

These are the tests LangChain holds its own integrations to (package `langchain-tests`). What
ragtune does not offer is switched off through the suite's own properties: tool calling,
structured output, JSON mode, multimodal inputs, and choosing a model per request (one model
serves; the request's `model` is accepted and ignored). Everything else runs as LangChain wrote it.
Its async tests run on pytest-asyncio's session loop (pyproject.toml).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class TestChatOpenAIOnRagtune(ChatModelIntegrationTests):
    @pytest.fixture(autouse=True)
    def _server(self, client_server: tuple[str, str]) -> None:
        self.base_url, self.api_key = client_server

    @property
    def chat_model_class(self) -> type[ChatOpenAI]:
        return ChatOpenAI

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "base_url": f"{self.base_url}/v1",
            "api_key": self.api_key,
            "model": "ragtune",
            "temperature": 0,
            "max_tokens": 16,  # enough for every check; each answer costs a real generation
            "max_retries": 0,
            "timeout": 300,
        }

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_tool_choice(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_image_urls(self) -> bool:
        return False

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False
