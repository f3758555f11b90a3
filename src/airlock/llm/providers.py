"""The two provider families behind ``ModelProvider``: Anthropic's Messages API (tool use, with the
catalog block marked for prompt caching) and any OpenAI-compatible Chat Completions endpoint (hosted
models, vLLM, Ollama, through ``base_url``).

Both SDKs are created with ``max_retries`` set explicitly (default 0): retries happen once, in
``airlock.retry``, so SDK retries and Airlock retries never multiply. SDK errors become
``ModelProviderError`` (429/5xx/timeouts retryable, with retry-after) or ``ModelOutputError``.
"""

from __future__ import annotations

from typing import Any, cast

import anthropic
import openai

from airlock.errors import ModelOutputError, ModelProviderError
from airlock.llm.types import ModelRequest, ModelResponse, ToolCall, Usage, parse_arguments

DEFAULT_MODELS = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4o-mini"}


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _provider_error(provider: str, error: Exception) -> Exception:
    """One mapping for both SDKs (they share the same error shapes)."""
    if isinstance(error, (anthropic.APITimeoutError, openai.APITimeoutError)):
        return ModelProviderError(f"{provider}: timed out", retryable=True)
    if isinstance(error, (anthropic.APIConnectionError, openai.APIConnectionError)):
        return ModelProviderError(f"{provider}: cannot connect: {error}", retryable=True)
    if isinstance(error, (anthropic.APIStatusError, openai.APIStatusError)):
        status = error.status_code
        retryable = status in (408, 409, 429) or status >= 500
        return ModelProviderError(f"{provider}: HTTP {status}: {str(error)[:300]}", retryable=retryable,
                                  retry_after=_retry_after(error.response.headers), status=status)
    if isinstance(error, (anthropic.APIResponseValidationError, openai.APIResponseValidationError, ValueError)):
        return ModelOutputError(f"{provider}: malformed response body: {str(error)[:300]}")
    return error


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, *, model: str | None, api_key: str, base_url: str | None, timeout: float,
                 max_retries: int) -> None:
        self.model = model or DEFAULT_MODELS["anthropic"]
        self._client = anthropic.Anthropic(api_key=api_key, base_url=base_url, timeout=timeout,
                                           max_retries=max_retries)

    def complete(self, request: ModelRequest) -> ModelResponse:
        tool = request.answer_tool
        try:
            reply = self._client.messages.create(
                model=self.model,
                max_tokens=request.max_tokens,
                system=cast(Any, [
                    {"type": "text", "text": request.system},
                    # Tools, then system blocks up to here form the cached prefix.
                    {"type": "text", "text": request.cached_context, "cache_control": {"type": "ephemeral"}},
                ]),
                messages=cast(Any, [{"role": m.role, "content": m.content} for m in request.messages]),
                tools=cast(Any, [{"name": tool.name, "description": tool.description,
                                  "input_schema": tool.input_schema}]),
                tool_choice={"type": "tool", "name": tool.name},
            )
        except (anthropic.APIError, ValueError) as error:
            raise _provider_error(self.name, error) from error
        calls: list[ToolCall] = []
        texts: list[str] = []
        for block in reply.content or []:
            kind = getattr(block, "type", None)
            if kind == "tool_use":
                arguments, raw = parse_arguments(getattr(block, "input", None))
                calls.append(ToolCall(str(getattr(block, "name", "")), arguments, raw))
            elif kind == "text":
                texts.append(str(getattr(block, "text", "")))
        usage = reply.usage
        return ModelResponse(
            model=str(reply.model or self.model), tool_calls=calls, text="\n".join(texts),
            stop_reason=reply.stop_reason,
            usage=Usage(
                input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
                output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
                cache_read_tokens=int(getattr(usage, "cache_read_input_tokens", 0) or 0),
                cache_write_tokens=int(getattr(usage, "cache_creation_input_tokens", 0) or 0),
            ),
        )


class OpenAICompatibleProvider:
    name = "openai"

    def __init__(self, *, model: str | None, api_key: str, base_url: str | None, timeout: float,
                 max_retries: int) -> None:
        self.model = model or DEFAULT_MODELS["openai"]
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)

    def complete(self, request: ModelRequest) -> ModelResponse:
        tool = request.answer_tool
        # OpenAI-compatible servers cache a stable prefix on their own: the catalog goes first.
        messages: list[Any] = [
            {"role": "system", "content": request.cached_context},
            {"role": "system", "content": request.system},
            *({"role": m.role, "content": m.content} for m in request.messages),
        ]
        try:
            reply = self._client.chat.completions.create(
                model=self.model,
                max_tokens=request.max_tokens,
                messages=messages,
                tools=[{"type": "function", "function": {
                    "name": tool.name, "description": tool.description, "parameters": tool.input_schema}}],
                tool_choice={"type": "function", "function": {"name": tool.name}},
            )
        except (openai.APIError, ValueError) as error:
            raise _provider_error(self.name, error) from error
        if not reply.choices:
            raise ModelOutputError(f"{self.name}: the answer has no choices")
        choice = reply.choices[0]
        calls: list[ToolCall] = []
        for call in choice.message.tool_calls or []:
            function = getattr(call, "function", None)
            if function is None:
                continue
            arguments, raw = parse_arguments(function.arguments)
            calls.append(ToolCall(function.name, arguments, raw))
        usage = reply.usage
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        details = getattr(usage, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0)
        return ModelResponse(
            model=str(reply.model or self.model), tool_calls=calls, text=choice.message.content or "",
            stop_reason=choice.finish_reason,
            usage=Usage(input_tokens=max(prompt - cached, 0),
                        output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                        cache_read_tokens=cached),
        )
