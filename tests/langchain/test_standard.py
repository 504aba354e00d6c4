"""LangChain's standard chat-model test suites: unit (no network) and integration (the local server)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from bandit_router import Router
from bandit_router.testing import FakeLLMServer
from langchain_bandit_router import ChatBanditRouter

from .conftest import LARGE, cards, hashed_bow


class _Suite:
    """Capabilities both suites check: tool calling, tool_choice, structured output, usage metadata."""

    base_url = "http://127.0.0.1:9/v1"  # unit tests never call it

    @property
    def chat_model_class(self) -> type[ChatBanditRouter]:
        return ChatBanditRouter

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"router": Router(cards(self.base_url), encoder=hashed_bow, seed=0)}

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return LARGE


class TestChatBanditRouterUnit(_Suite, ChatModelUnitTests):
    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        params = super().standard_chat_model_params
        del params["api_key"]  # keys belong to the router's model cards, one per provider
        return params


class TestChatBanditRouterIntegration(_Suite, ChatModelIntegrationTests):
    @pytest.fixture(autouse=True)
    def _local_server(self, server: FakeLLMServer) -> None:
        self.base_url = server.base_url
