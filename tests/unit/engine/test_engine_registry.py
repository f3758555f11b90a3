"""The tool registry: what @tool infers and refuses, spec hashes, the effect policy, contract checks."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from airlock.errors import ToolInputError, ToolOutputError
from airlock.registry import Phase, SideEffect, ToolRegistry, ToolSpec, policy_for, tool
from airlock.retry import NO_RETRY


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NameIn(Strict):
    name: str
    country: str | None = None


class GreetingOut(Strict):
    greeting: str
    length: int = 0
    confidence: float = 1.0
    flags: list[str] = []


class Loose(BaseModel):
    name: str


class WriteIn(Strict):
    idempotency_key: str
    account_id: str


class WriteOut(Strict):
    status: str


class NoKeyIn(Strict):
    account_id: str


class Number(Strict):
    value: int = Field(ge=0)


def greet_impl(data: NameIn) -> GreetingOut:
    """Greets an account by name."""
    return GreetingOut(greeting=f"hello {data.name}", length=len(data.name))


def test_tool_infers_requires_and_produces_without_engine_fields() -> None:
    spec = tool(effect=SideEffect.NONE)(greet_impl)
    assert spec.name == "greet_impl"
    assert spec.requires == ("name", "country")
    assert spec.produces == ("greeting", "length")  # confidence and flags speak about values
    assert spec.description == "Greets an account by name."
    assert spec.input_model is NameIn and spec.output_model is GreetingOut


def test_tool_leaves_idempotency_key_out_of_requires() -> None:
    @tool(effect=SideEffect.WRITE)
    def save(data: WriteIn) -> WriteOut:
        """Saves an account."""
        return WriteOut(status="applied")

    assert save.requires == ("account_id",)


def test_explicit_requires_produces_and_name_win() -> None:
    spec = tool(effect=SideEffect.READ, name="hello", requires=["name"], produces=["greeting"], version="7")(greet_impl)
    assert (spec.name, spec.version, spec.requires, spec.produces) == ("hello", "7", ("name",), ("greeting",))


def test_input_model_without_extra_forbid_is_refused() -> None:
    def loose(data: Loose) -> GreetingOut:
        """Loose input."""
        return GreetingOut(greeting=data.name)

    with pytest.raises(TypeError, match="its input model Loose must set extra='forbid'"):
        tool(effect=SideEffect.NONE)(loose)


def test_output_model_without_extra_forbid_is_refused() -> None:
    def loose_out(data: NameIn) -> Loose:
        """Loose output."""
        return Loose(name=data.name)

    with pytest.raises(TypeError, match="its output model Loose must set extra='forbid'"):
        tool(effect=SideEffect.NONE)(loose_out)


@pytest.mark.parametrize("effect", [SideEffect.WRITE, SideEffect.EXTERNAL])
def test_write_and_external_tools_need_an_idempotency_key(effect: SideEffect) -> None:
    def save(data: NoKeyIn) -> WriteOut:
        """Saves without a key."""
        return WriteOut(status="applied")

    with pytest.raises(TypeError, match=f"a {effect.value} tool's input needs an 'idempotency_key' field"):
        tool(effect=effect)(save)


@pytest.mark.parametrize("effect", [SideEffect.NONE, SideEffect.READ])
def test_only_a_write_can_say_which_records_it_acts_on(effect: SideEffect) -> None:
    def greet(data: NameIn) -> GreetingOut:
        """Greets."""
        return GreetingOut(greeting=f"hello {data.name}")

    with pytest.raises(TypeError, match="only a write or external tool can say which records it acts on"):
        tool(effect=effect, acts_on=lambda values: True)(greet)


def test_a_description_is_required() -> None:
    def mute(data: NameIn) -> GreetingOut:
        return GreetingOut(greeting="")

    with pytest.raises(TypeError, match="tool mute needs a description"):
        tool(effect=SideEffect.NONE)(mute)
    assert tool(effect=SideEffect.NONE, description="Says nothing.")(mute).description == "Says nothing."


def test_untyped_or_non_model_tools_are_refused() -> None:
    def two_args(a: NameIn, b: NameIn) -> GreetingOut:
        """Two."""
        return GreetingOut(greeting="")

    def plain(data: str) -> str:
        """Plain."""
        return data

    with pytest.raises(TypeError, match="must take one annotated argument"):
        tool(effect=SideEffect.NONE)(two_args)
    with pytest.raises(TypeError, match="input and output must be pydantic models"):
        tool(effect=SideEffect.NONE)(plain)


def test_spec_hash_is_stable_and_follows_description_and_version() -> None:
    first = tool(effect=SideEffect.NONE)(greet_impl)
    again = tool(effect=SideEffect.NONE)(greet_impl)
    assert first.spec_hash == again.spec_hash
    assert len(first.spec_hash) == 16
    assert tool(effect=SideEffect.NONE, description="Other words.")(greet_impl).spec_hash != first.spec_hash
    assert tool(effect=SideEffect.NONE, version="2")(greet_impl).spec_hash != first.spec_hash
    assert tool(effect=SideEffect.READ)(greet_impl).spec_hash != first.spec_hash
    assert tool(effect=SideEffect.NONE, produces=["greeting"])(greet_impl).spec_hash != first.spec_hash


def test_policy_for_each_effect() -> None:
    none, read, write, external = (policy_for(e) for e in SideEffect)
    assert none.cacheable and none.phase is Phase.PROPOSE and none.retry.attempts > 1
    assert not none.needs_identified_approval

    assert not read.cacheable and read.phase is Phase.PROPOSE
    assert read.retry.attempts > 1 and read.retry.jitter and read.retry.honour_retry_after

    assert not write.cacheable and write.phase is Phase.COMMIT
    assert write.retry.attempts > 1 and write.task_retries > 0
    assert not write.needs_identified_approval

    assert external.phase is Phase.COMMIT and not external.cacheable
    assert external.retry == NO_RETRY and external.retry.attempts == 1 and external.task_retries == 0
    assert external.needs_identified_approval


def test_spec_policy_is_policy_for_its_effect() -> None:
    spec = tool(effect=SideEffect.READ)(greet_impl)
    assert spec.policy == policy_for(SideEffect.READ)


def test_call_validates_input_and_output() -> None:
    spec = tool(effect=SideEffect.NONE)(greet_impl)
    assert spec.call({"name": "Acme"}) == GreetingOut(greeting="hello Acme", length=4)
    with pytest.raises(ToolInputError, match="greet_impl: input does not match its schema: name: Field required"):
        spec.call({})
    with pytest.raises(ToolInputError, match="surname: Extra inputs are not permitted"):
        spec.call({"name": "Acme", "surname": "x"})


def test_call_holds_the_output_to_its_contract() -> None:
    def wrong_type(data: NameIn) -> GreetingOut:
        """Returns a dict breaking the output contract."""
        return {"greeting": "hi", "length": "many"}  # type: ignore[return-value]

    def extra_field(data: NameIn) -> GreetingOut:
        """Returns an unknown field."""
        return {"greeting": "hi", "score": 3}  # type: ignore[return-value]

    def as_dict(data: NameIn) -> GreetingOut:
        """Returns a valid dict."""
        return {"greeting": "hi"}  # type: ignore[return-value]

    with pytest.raises(ToolOutputError, match="wrong_type: output breaks its contract: length"):
        tool(effect=SideEffect.NONE)(wrong_type).call({"name": "a"})
    with pytest.raises(ToolOutputError, match="score: Extra inputs are not permitted"):
        tool(effect=SideEffect.NONE)(extra_field).call({"name": "a"})
    assert tool(effect=SideEffect.NONE)(as_dict).call({"name": "a"}) == GreetingOut(greeting="hi")


class Kind(StrEnum):
    A = "a"


class Dated(Strict):
    when: date
    amount: Decimal
    kind: Kind
    tags: tuple[str, ...] = ()
    nested: GreetingOut | None = None


def test_an_output_is_dumped_as_model_dump_json_would() -> None:
    """``dump_output`` (the model's serializer without pydantic's wrapper) gives what
    ``model_dump(mode="json")`` gives: dates, decimals and enums as JSON values, nested models as dicts."""
    output = Dated(when=date(2026, 12, 7), amount=Decimal("1.50"), kind=Kind.A, tags=("x",),
                   nested=GreetingOut(greeting="hi", flags=["f"]))
    assert ToolSpec.dump_output(output) == output.model_dump(mode="json")
    assert ToolSpec.dump_output(output)["when"] == "2026-12-07"
    assert ToolSpec.dump_output(GreetingOut(greeting="hi")) == GreetingOut(greeting="hi").model_dump(mode="json")


def test_tool_errors_are_not_retryable() -> None:
    spec = tool(effect=SideEffect.NONE)(greet_impl)
    with pytest.raises(ToolInputError) as raised:
        spec.call({"name": 5})
    assert raised.value.retryable is False


def test_batched_tool_calls_once_for_the_whole_batch() -> None:
    batches: list[int] = []

    @tool(effect=SideEffect.NONE, batched=True)
    def square(items: list[Number]) -> list[Number]:
        """Squares a batch of numbers."""
        batches.append(len(items))
        return [Number(value=i.value * i.value) for i in items]

    assert square.batched and square.requires == ("value",) and square.produces == ("value",)
    assert square.call_batch([{"value": 2}, {"value": 3}]) == [Number(value=4), Number(value=9)]
    assert square.call({"value": 5}) == Number(value=25)
    assert batches == [2, 1]
    with pytest.raises(ToolInputError):
        square.call_batch([{"value": 1}, {"value": -1}])
    assert batches == [2, 1]  # a bad input refuses the batch before the tool runs


def test_batched_tool_returning_the_wrong_count_breaks_its_contract() -> None:
    @tool(effect=SideEffect.NONE, batched=True)
    def lossy(items: list[Number]) -> list[Number]:
        """Loses an item."""
        return list(items[1:])

    with pytest.raises(ToolOutputError, match="lossy: returned 1 results for 2 inputs"):
        lossy.call_batch([{"value": 1}, {"value": 2}])


def test_unbatched_call_batch_calls_per_item() -> None:
    spec = tool(effect=SideEffect.NONE)(greet_impl)
    assert [o.greeting for o in spec.call_batch([{"name": "a"}, {"name": "b"}])] == ["hello a", "hello b"]


def test_registry_lookup_producers_and_catalog() -> None:
    greet = tool(effect=SideEffect.NONE)(greet_impl)
    other = tool(effect=SideEffect.READ, name="greet_remote")(greet_impl)
    registry = ToolRegistry([greet, other])
    assert len(registry) == 2 and "greet_impl" in registry and "nope" not in registry
    assert registry.get("nope") is None and registry["greet_remote"] is other
    assert [t.name for t in registry.producers_of("greeting")] == ["greet_impl", "greet_remote"]
    assert registry.producers_of("confidence") == []
    assert registry.spec_hashes() == {"greet_impl": greet.spec_hash, "greet_remote": other.spec_hash}
    entry: dict[str, Any] = registry.catalog()[1]
    assert entry["name"] == "greet_remote" and entry["effect"] == "read"
    assert entry["input_schema"]["additionalProperties"] is False
    with pytest.raises(ValueError, match="tool 'greet_impl' is registered twice"):
        registry.register(greet)


def test_toolspec_is_generic_over_its_models() -> None:
    spec: ToolSpec[NameIn, GreetingOut] = tool(effect=SideEffect.NONE)(greet_impl)
    assert isinstance(spec.validate_input({"name": "x"}), NameIn)


class HashedWriteIn(Strict):
    idempotency_key: str
    values_hash: str
    account_id: str


def test_requires_leaves_out_every_engine_supplied_field() -> None:
    @tool(effect=SideEffect.WRITE)
    def save_hashed(data: HashedWriteIn) -> WriteOut:
        """Saves an account with the hash of its values."""
        return WriteOut(status="applied")

    assert save_hashed.requires == ("account_id",)


def test_batched_tool_without_list_annotations_is_refused_clearly() -> None:
    def not_a_list(item: Number) -> Number:
        """Claims to be batched."""
        return item

    with pytest.raises(TypeError, match="not_a_list"):
        tool(effect=SideEffect.NONE, batched=True)(not_a_list)
