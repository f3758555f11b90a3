"""Playbooks: a reviewed ``request:`` planned at run time, or a pinned ``plan:`` with its hash.

Fields added later are optional with defaults, so older playbooks keep working; unknown fields are
refused, so a typo does not silently change what a run does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from airlock.errors import PlaybookError
from airlock.plan import Plan, Policy


class WriteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str
    target: str
    id: str = "commit"
    key: str = Field(default="account_id", description="the write tool input that receives the record key")
    fields: list[str] | None = Field(
        default=None, description="the filled fields this write takes; default: all of them (a second system "
        "written in the same run, such as a ticket, usually takes a few)")


class StructuredRequest(BaseModel):
    """'Fill these fields for this dataset, and write them there.'"""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "accounts"
    columns: list[str] | None = Field(default=None, description="columns the input must have; default: its header")
    fill: list[str] = Field(min_length=1)
    write: WriteRequest | list[WriteRequest] | None = None

    @property
    def writes(self) -> list[WriteRequest]:
        """The writes, in order: one mapping or a list of them (a multi-system update)."""
        if self.write is None:
            return []
        return self.write if isinstance(self.write, list) else [self.write]

    def describe(self) -> str:
        targets = " and ".join(w.target for w in self.writes)
        target = f" and write them to {targets}" if targets else ""
        return f"fill {', '.join(self.fill)} for {self.dataset}{target}"


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    input: str | None = Field(default=None, description="default input file, relative to the project folder")
    request: StructuredRequest | str | None = None
    plan: Plan | None = None
    plan_hash: str | None = None
    policy: Policy | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Playbook:
        if (self.request is None) == (self.plan is None):
            raise ValueError("a playbook needs exactly one of 'request:' or 'plan:'")
        if self.plan is not None:
            if not self.plan_hash:
                raise ValueError("a pinned 'plan:' needs its 'plan_hash:'")
            if self.plan_hash != self.plan.hash:
                raise ValueError(
                    f"plan_hash {self.plan_hash} does not match the plan (its hash is {self.plan.hash}); "
                    "a changed plan must be reviewed and pinned again"
                )
            if self.policy is not None and self.policy != self.plan.policy:
                raise ValueError("'policy:' differs from the pinned plan's policy; pin the plan again to change it")
        return self

    @property
    def effective_policy(self) -> Policy:
        if self.plan is not None:
            return self.plan.policy
        return self.policy or Policy()


def load_playbook(path: Path) -> Playbook:
    if not path.is_file():
        raise PlaybookError(f"playbook not found: {path}")
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PlaybookError(f"{path}: not valid YAML{where}") from error
    if not isinstance(data, dict):
        raise PlaybookError(f"{path}: a playbook is a YAML mapping with name:, request: or plan:, and policy:")
    data.setdefault("name", path.stem)
    try:
        return Playbook.model_validate(data)
    except ValidationError as error:
        raise PlaybookError(f"{path}: {describe_validation_error(error)}") from error


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    errors = error.errors()
    # `request:` is a structured request or free text: for a mapping, the text branch's complaint is noise.
    errors = [e for e in errors if not (e["loc"][:2] == ("request", "str") and e["type"] == "string_type")] or errors
    for item in errors[:4]:
        where = ".".join(str(p) for p in item["loc"]
                         if not str(p).startswith("function-after") and p != "StructuredRequest")
        message = "unknown field" if item["type"] == "extra_forbidden" else item["msg"]
        parts.append(f"{where}: {message}" if where else message)
    more = f" (+{error.error_count() - 4} more)" if error.error_count() > 4 else ""
    return "; ".join(parts) + more


def dump_playbook(playbook: Playbook) -> str:
    body = playbook.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
