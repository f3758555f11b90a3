"""Model stubs and the clients that talk to them through the real SDKs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airlock.llm import ModelClient, PriceTable
from airlock.llm.cost import BudgetLimits
from airlock.llm.providers import AnthropicProvider, OpenAICompatibleProvider
from airlock.llm.types import ModelProvider
from tests.fakes.model_stub import ModelStub

WIRES = ["anthropic", "openai"]


@pytest.fixture
def stub() -> Iterator[ModelStub]:
    server = ModelStub()
    yield server
    server.close()


def provider_for(wire: str, stub: ModelStub, *, timeout: float = 5.0, model: str | None = None) -> ModelProvider:
    if wire == "anthropic":
        return AnthropicProvider(model=model, api_key="test-key", base_url=stub.url, timeout=timeout, max_retries=0)
    return OpenAICompatibleProvider(model=model, api_key="test-key", base_url=stub.openai_url, timeout=timeout,
                                    max_retries=0)


def client_for(wire: str, stub: ModelStub, *, budget: BudgetLimits | None = None, sink: object = None,
               timeout: float = 5.0, concurrency: int = 4) -> ModelClient:
    return ModelClient(provider_for(wire, stub, timeout=timeout), prices=PriceTable(), budget=budget,
                       sink=sink, concurrency=concurrency, sleep=lambda _s: None)  # type: ignore[arg-type]
