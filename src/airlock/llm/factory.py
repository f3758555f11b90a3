"""Building the configured provider and client from ``Settings``: the one place that knows which
provider ``AIRLOCK_PLANNER`` names and where its key comes from. Swapping providers touches nothing
else."""

from __future__ import annotations

import os
from collections.abc import Callable

from airlock.errors import ConfigError
from airlock.llm.client import ModelClient, UsageSink
from airlock.llm.cost import BudgetLimits, PriceTable
from airlock.llm.types import ModelProvider
from airlock.settings import Settings

KEY_VARIABLES = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
# Local OpenAI-compatible servers (vLLM, Ollama) take any key; the SDK insists on one.
LOCAL_SERVER_KEY = "unused"


def api_key_for(settings: Settings, read_secret_block: Callable[[str], str] | None = None) -> str:
    """The key from AIRLOCK_LLM_API_KEY, else the provider's variable, else a Prefect Secret block.
    Never from flow parameters; never logged."""
    if settings.llm_api_key is not None:
        return settings.llm_api_key.get_secret_value()
    from_env = os.environ.get(KEY_VARIABLES.get(settings.planner, ""), "")
    if from_env:
        return from_env
    if settings.llm_secret_block:
        if read_secret_block is None:  # Prefect is read only through airlock.orchestration, by the caller
            raise ConfigError("AIRLOCK_LLM_SECRET_BLOCK is set but this command cannot read Prefect blocks")
        return read_secret_block(settings.llm_secret_block)
    if settings.llm_base_url and settings.planner == "openai":
        return LOCAL_SERVER_KEY
    raise ConfigError(
        f"AIRLOCK_PLANNER={settings.planner} needs an API key: set {KEY_VARIABLES[settings.planner]} "
        "(or AIRLOCK_LLM_API_KEY, or AIRLOCK_LLM_SECRET_BLOCK naming a Prefect Secret block)"
    )


def build_provider(settings: Settings, api_key: str) -> ModelProvider:
    # The SDKs are imported only when a provider is configured: the rules planner never pays for them.
    from airlock.llm.providers import AnthropicProvider, OpenAICompatibleProvider

    options = {"model": settings.llm_model, "api_key": api_key, "base_url": settings.llm_base_url,
               "timeout": settings.llm_timeout, "max_retries": settings.llm_max_retries}
    if settings.planner == "anthropic":
        return AnthropicProvider(**options)  # type: ignore[arg-type]
    if settings.planner == "openai":
        return OpenAICompatibleProvider(**options)  # type: ignore[arg-type]
    raise ConfigError(f"AIRLOCK_PLANNER={settings.planner} names no model provider")


def build_client(settings: Settings, sink: UsageSink | None = None,
                 read_secret_block: Callable[[str], str] | None = None) -> ModelClient | None:
    """The configured model client, or None with the rules planner (no model at all)."""
    if settings.planner == "rules":
        return None
    provider = build_provider(settings, api_key_for(settings, read_secret_block))
    return ModelClient(
        provider,
        prices=PriceTable(settings.llm_prices),
        budget=BudgetLimits(tokens=settings.llm_budget_tokens, usd=settings.llm_budget_usd),
        concurrency=settings.llm_concurrency,
        sink=sink,
        max_tokens=settings.llm_max_tokens,
        tokens_per_minute=settings.llm_tokens_per_minute,
    )
