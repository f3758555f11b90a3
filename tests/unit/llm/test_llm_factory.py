"""Choosing the provider by settings, and where its key comes from (never a flow parameter)."""

from __future__ import annotations

import pytest

from airlock.errors import ConfigError
from airlock.llm.factory import LOCAL_SERVER_KEY, api_key_for, build_client
from airlock.llm.providers import AnthropicProvider, OpenAICompatibleProvider
from airlock.settings import Settings


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "AIRLOCK_LLM_API_KEY", "AIRLOCK_PLANNER",
                 "AIRLOCK_LLM_BASE_URL", "AIRLOCK_LLM_SECRET_BLOCK"):
        monkeypatch.delenv(name, raising=False)


def test_the_rules_planner_builds_no_client() -> None:
    assert build_client(Settings()) is None


@pytest.mark.parametrize(("planner", "variable", "kind"), [
    ("anthropic", "ANTHROPIC_API_KEY", AnthropicProvider), ("openai", "OPENAI_API_KEY", OpenAICompatibleProvider)])
def test_the_provider_and_its_key_come_from_the_environment(planner: str, variable: str, kind: type,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_PLANNER", planner)
    monkeypatch.setenv(variable, "sk-from-env")
    settings = Settings()
    assert api_key_for(settings) == "sk-from-env"
    client = build_client(settings)
    assert client is not None and isinstance(client.provider, kind)
    assert "sk-from-env" not in repr(settings)  # a SecretStr or the environment: never printed


def test_a_prefect_secret_block_is_read_through_the_given_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_PLANNER", "anthropic")
    monkeypatch.setenv("AIRLOCK_LLM_SECRET_BLOCK", "anthropic-key")
    asked: list[str] = []
    assert api_key_for(Settings(), lambda name: asked.append(name) or "sk-block") == "sk-block"
    assert asked == ["anthropic-key"]


def test_a_missing_key_is_a_config_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_PLANNER", "anthropic")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        build_client(Settings())


def test_a_local_openai_compatible_server_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_PLANNER", "openai")
    monkeypatch.setenv("AIRLOCK_LLM_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("AIRLOCK_LLM_MODEL", "llama3.1")
    settings = Settings()
    assert api_key_for(settings) == LOCAL_SERVER_KEY
    client = build_client(settings)
    assert client is not None and client.name == "openai:llama3.1"


def test_sdk_retries_are_off_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_PLANNER", "anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    client = build_client(Settings())
    assert client is not None
    assert client.provider._client.max_retries == 0  # type: ignore[attr-defined]
