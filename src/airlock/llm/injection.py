"""Does a record's text read like instructions to a model? A heuristic screen, not a guarantee: the
guarantee is structural (the plan is fixed before record text reaches a model, and a per-record
answer can only fill values of its output schema). The screen gives reviewers a reason code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

INJECTION_FLAG = "possible_prompt_injection"

_PATTERNS = [re.compile(p, re.IGNORECASE) for p in (
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|your|the)\b.{0,30}"
    r"\b(instructions?|prompts?|rules?|directions?|guidelines?|context)",
    r"\b(system|developer)\s*(prompt|message|instructions?)\b",
    r"\byou are (now|no longer)\b",
    r"\b(act|behave|respond) as\b",
    r"\bnew (instructions?|task|rules?)\s*:",
    r"\b(call|invoke|run|use|execute) (the )?(tool|function)\b",
    r"\b(tool_use|tool_calls?|function_call)\b",
    r"\b(send|e-?mail|forward|post|upload)\b.{0,40}\b(to|at)\b.{0,40}(@|https?://)",
    r"\b(set|change|mark|label|classify)\b.{0,40}\b(as|to)\b.{0,30}\b(all|every|each)\b.{0,20}\b(records?|accounts?)",
    r"\b(set|change|write|update)\b.{0,30}\b(industry|field|value|record|crm)\b.{0,30}\bto\b\s*['\"]",
    r"\b(delete|drop|truncate|wipe)\b.{0,30}\b(records?|accounts?|tables?|database|crm)\b",
    r"</?\s*(system|assistant|user|instructions?)\s*>",
    r"\b(assistant|ai|model|llm|claude|gpt)\s*[:,]",
    r"\bjailbreak|\bprompt injection|\bdo anything now\b",
    r"\bprint (your|the) (prompt|instructions|system)",
    r"\bapprove (this|all|every)\b",
)]


def looks_like_instructions(*texts: str | None) -> bool:
    return any(p.search(t) for t in texts if t for p in _PATTERNS)


def screen(texts: Iterable[str | None]) -> list[str]:
    """The reason codes for a record's text fields (empty when nothing looks like instructions)."""
    return [INJECTION_FLAG] if looks_like_instructions(*texts) else []
