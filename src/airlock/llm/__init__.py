"""Language models behind one narrow interface: providers (Anthropic, OpenAI-compatible), the
client that meters, budgets and retries every paid call, and the prompt-injection screen.

The model plans and fills values; it never executes. Nothing here runs a tool a model names.
"""

from __future__ import annotations

from airlock.llm.client import CallScope, ModelClient, UsageEvent, UsageSink, metered
from airlock.llm.cost import BudgetLimits, PriceTable
from airlock.llm.injection import INJECTION_FLAG, looks_like_instructions, screen
from airlock.llm.types import AnswerTool, Message, ModelProvider, ModelRequest, ModelResponse, ToolCall, Usage

# Tool flags that always send a record to a person, whatever the playbook's review_on says.
BUDGET_FLAG = "budget_exhausted"
REFUSED_FLAG = "llm_value_refused"
MODEL_REVIEW_FLAGS = frozenset({INJECTION_FLAG, BUDGET_FLAG, REFUSED_FLAG})

__all__ = [
    "BUDGET_FLAG", "INJECTION_FLAG", "MODEL_REVIEW_FLAGS", "REFUSED_FLAG", "AnswerTool", "BudgetLimits",
    "CallScope", "Message", "ModelClient", "ModelProvider", "ModelRequest", "ModelResponse", "PriceTable",
    "ToolCall", "Usage", "UsageEvent", "UsageSink", "looks_like_instructions", "metered", "screen",
]
