"""Planners turn a request into a checked ``Plan``. The model plans; it never executes."""

from __future__ import annotations

from typing import Protocol

from airlock.plan import Plan, Policy
from airlock.playbook import StructuredRequest
from airlock.registry import ToolRegistry


class Planner(Protocol):
    def plan(
        self, request: StructuredRequest | str, columns: list[str], policy: Policy, registry: ToolRegistry
    ) -> Plan: ...
