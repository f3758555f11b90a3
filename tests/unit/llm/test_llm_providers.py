"""The real anthropic and openai SDKs against the local stub: tool use, usage, errors, retries."""

from __future__ import annotations

import pytest

from airlock.errors import BudgetExhausted, ModelOutputError, ModelProviderError
from airlock.llm import AnswerTool, Message, ModelRequest
from airlock.llm.cost import BudgetLimits
from airlock.retry import RetryPolicy
from tests.fakes.model_stub import ModelStub, Reply, error_reply, tool_answer
from tests.unit.llm.conftest import WIRES, client_for, provider_for

REQUEST = ModelRequest(
    system="You plan.", cached_context="CATALOG " * 50, messages=[Message("user", "fill industries")],
    answer_tool=AnswerTool("submit_plan", "the plan", {"type": "object", "properties": {"x": {"type": "integer"}}}),
    max_tokens=256,
)
RETRY = RetryPolicy(attempts=3, base_delay=0.0, max_delay=30.0, jitter=False, honour_retry_after=True)


@pytest.mark.parametrize("wire", WIRES)
def test_tool_use_and_usage_come_back_normalised(wire: str, stub: ModelStub) -> None:
    stub.add(tool_answer("submit_plan", {"x": 1}, input_tokens=120, output_tokens=30, cache_read=900,
                         cache_write=40 if wire == "anthropic" else 0))
    response = provider_for(wire, stub, model="claude-sonnet-4-5").complete(REQUEST)
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("submit_plan", {"x": 1})]
    assert response.usage.input_tokens == 120
    assert response.usage.output_tokens == 30
    assert response.usage.cache_read_tokens == 900
    assert response.usage.cache_write_tokens == (40 if wire == "anthropic" else 0)
    seen = stub.seen[0]
    assert seen.headers["authorization"] == "Bearer test-key" or seen.headers.get("x-api-key") == "test-key"


def test_anthropic_marks_the_catalog_for_prompt_caching_and_forces_the_answer_tool(stub: ModelStub) -> None:
    stub.add(tool_answer("submit_plan", {"x": 1}))
    provider_for("anthropic", stub).complete(REQUEST)
    body = stub.seen[0].body
    cached = [b for b in body["system"] if b.get("cache_control")]
    assert cached and cached[0]["text"].startswith("CATALOG")
    assert body["tool_choice"] == {"type": "tool", "name": "submit_plan"}


def test_openai_puts_the_catalog_first_and_forces_the_function(stub: ModelStub) -> None:
    stub.add(tool_answer("submit_plan", {"x": 1}))
    provider_for("openai", stub).complete(REQUEST)
    body = stub.seen[0].body
    assert body["messages"][0]["content"].startswith("CATALOG")
    assert body["tool_choice"] == {"type": "function", "function": {"name": "submit_plan"}}


@pytest.mark.parametrize("wire", WIRES)
def test_429_with_retry_after_is_retried_once_by_airlock_not_by_the_sdk(wire: str, stub: ModelStub) -> None:
    stub.add(error_reply(429, retry_after=7), tool_answer("submit_plan", {"x": 2}))
    waits: list[float] = []
    client = client_for(wire, stub)
    client._sleep = waits.append
    response = client.complete(REQUEST, purpose="plan", retry=RETRY)
    assert response.tool_calls[0].arguments == {"x": 2}
    assert len(stub.seen) == 2  # max_retries=0: the SDK did not retry on its own
    assert waits == [7.0]


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(("reply", "retryable"), [
    (error_reply(429, retry_after=2), True), (error_reply(500), True), (error_reply(503), True),
    (error_reply(400), False), (error_reply(401), False),
])
def test_http_errors_say_whether_retrying_helps(wire: str, reply: Reply, retryable: bool, stub: ModelStub) -> None:
    stub.add(reply)
    with pytest.raises(ModelProviderError) as caught:
        provider_for(wire, stub).complete(REQUEST)
    assert caught.value.retryable is retryable
    assert caught.value.status == reply.status
    if reply.headers:
        assert caught.value.retry_after == 2.0


@pytest.mark.parametrize("wire", WIRES)
def test_a_timeout_is_a_retryable_provider_error(wire: str, stub: ModelStub) -> None:
    stub.add(Reply(delay=1.5), Reply(delay=1.5))
    with pytest.raises(ModelProviderError) as caught:
        provider_for(wire, stub, timeout=0.3).complete(REQUEST)
    assert caught.value.retryable
    assert "timed out" in caught.value.message


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("body", ["{not json", "[1, 2", ""])
def test_a_body_that_is_not_json_is_an_output_error(wire: str, body: str, stub: ModelStub) -> None:
    stub.add(Reply(body=body))
    with pytest.raises(ModelOutputError) as caught:
        provider_for(wire, stub).complete(REQUEST)
    assert not caught.value.retryable


@pytest.mark.parametrize("wire", WIRES)
def test_a_json_body_of_the_wrong_shape_gives_no_answer(wire: str, stub: ModelStub) -> None:
    stub.add(Reply(body='{"unexpected": true}'))
    try:
        response = provider_for(wire, stub).complete(REQUEST)
    except ModelOutputError:
        return  # the OpenAI shape has no choices: refused outright
    assert response.tool_calls == [] and response.text == ""  # the planner sends this back as "no plan"


@pytest.mark.parametrize("wire", WIRES)
def test_truncated_tool_arguments_arrive_as_unparsed_text(wire: str, stub: ModelStub) -> None:
    stub.add(tool_answer("submit_plan", '{"x": 1, "steps": [{"id": "a"'))
    response = provider_for(wire, stub).complete(REQUEST)
    call = response.tool_calls[0]
    assert call.arguments is None
    assert call.raw.startswith('{"x": 1')


@pytest.mark.parametrize("wire", WIRES)
def test_the_budget_stops_paid_calls(wire: str, stub: ModelStub) -> None:
    from airlock.llm import metered

    stub.add(tool_answer("submit_plan", {"x": 1}, input_tokens=400, output_tokens=200),
             tool_answer("submit_plan", {"x": 1}))
    client = client_for(wire, stub, budget=BudgetLimits(tokens=500))
    with metered("run-1"):
        client.complete(REQUEST, purpose="plan")
        with pytest.raises(BudgetExhausted):
            client.complete(REQUEST, purpose="plan")
    assert len(stub.seen) == 1
    with metered("run-2"):  # budgets are per run
        client.complete(REQUEST, purpose="plan")


def test_calls_in_flight_are_bounded_by_the_client(stub: ModelStub) -> None:
    from concurrent.futures import ThreadPoolExecutor

    stub.responder = lambda _seen: Reply(tool_calls=[("submit_plan", {"x": 1})], delay=0.2)
    client = client_for("openai", stub, concurrency=2)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _n: client.complete(REQUEST, purpose="plan"), range(6)))
    assert len(stub.seen) == 6
    assert stub.max_in_flight <= 2
