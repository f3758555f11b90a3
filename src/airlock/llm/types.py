"""The narrow seam between Airlock and a language model provider: one request shape, one answer
shape, token usage. Providers translate these to their wire format; nothing else knows the SDKs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class AnswerTool:
    """The one tool the model must answer through: its arguments are the structured answer.
    It is a schema, never something Airlock runs."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ModelRequest:
    system: str
    # Long, stable context (the tool catalog): sent as its own block so prompt caching applies.
    cached_context: str
    messages: list[Message]
    answer_tool: AnswerTool
    max_tokens: int = 4096


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] | None  # None: the arguments were not a JSON object (truncated, prose)
    raw: str


@dataclass
class Usage:
    """Tokens of one or more calls. ``input_tokens`` excludes cache reads and writes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_write_tokens += other.cache_write_tokens


@dataclass
class ModelResponse:
    model: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    text: str = ""
    usage: Usage = field(default_factory=Usage)
    stop_reason: str | None = None

    def describe(self) -> str:
        """The answer as the conversation shows it (for repairs and dead letters)."""
        parts = [self.text] if self.text else []
        parts += [f"[{c.name}] {c.raw}" for c in self.tool_calls]
        return "\n".join(parts) or "(empty answer)"


class ModelProvider(Protocol):
    """One call to a model. Raises ``ModelProviderError`` (retryable or not) or ``ModelOutputError``;
    never retries on its own (the SDK's ``max_retries`` is set explicitly by the caller)."""

    name: str
    model: str

    def complete(self, request: ModelRequest) -> ModelResponse: ...


def parse_arguments(value: Any) -> tuple[dict[str, Any] | None, str]:
    """A tool call's arguments as a dict (or None when they are not a JSON object), and as text."""
    if isinstance(value, dict):
        return value, json.dumps(value, ensure_ascii=False)
    raw = value if isinstance(value, str) else json.dumps(value, default=str)
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        return None, raw
    return (parsed if isinstance(parsed, dict) else None), raw
