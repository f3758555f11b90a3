"""Playbooks: what load_playbook refuses (one line each) and how a pinned plan round-trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from airlock.errors import PlaybookError
from airlock.plan import Plan
from airlock.playbook import Playbook, StructuredRequest, dump_playbook, load_playbook


def write(tmp_path: Path, text: str, name: str = "pb.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> str:
    with pytest.raises(PlaybookError) as raised:
        load_playbook(path)
    message = raised.value.message
    assert "\n" not in message, message
    return message


def test_a_request_playbook_loads_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "request:\n  fill: [domain, country_code]\n  write: {tool: crm_update, target: crm}\n",
                 name="enrich.yaml")
    playbook = load_playbook(path)
    assert playbook.name == "enrich"  # the file name when the playbook has none
    assert isinstance(playbook.request, StructuredRequest)
    assert playbook.request.fill == ["domain", "country_code"]
    assert playbook.request.write is not None and playbook.request.write.key == "account_id"
    assert playbook.request.describe() == "fill domain, country_code for accounts and write them to crm"
    assert playbook.effective_policy.thresholds == {}


def test_a_free_text_request_is_kept_as_text(tmp_path: Path) -> None:
    playbook = load_playbook(write(tmp_path, "name: x\nrequest: find the country of every account\n"))
    assert playbook.request == "find the country of every account"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("name: x\nrequest: {fill: [domain]}\npolcy: {}\n", "polcy: unknown field"),
        ("name: x\nrequest: {fill: [domain]}\npolicy: {treshold: {industry: 0.8}}\n", "policy.treshold: unknown field"),
        ("name: x\nrequest: {fill: [domain], wrte: {tool: t, target: crm}}\n", "wrte: unknown field"),
    ],
    ids=["top-level", "policy", "request"],
)
def test_unknown_fields_are_refused_by_name(tmp_path: Path, text: str, field: str) -> None:
    message = refused(write(tmp_path, text))
    assert str(tmp_path / "pb.yaml") in message
    assert field in message


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    message = refused(write(tmp_path, "name: x\nrequest:\n  fill: [domain\n  other: 1\n"))
    assert "not valid YAML at line 4" in message


def test_a_yaml_list_is_not_a_playbook(tmp_path: Path) -> None:
    assert "a playbook is a YAML mapping" in refused(write(tmp_path, "- a\n- b\n"))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    assert "playbook not found" in refused(tmp_path / "nope.yaml")


def _plan_body() -> dict[str, Any]:
    return {
        "request": "fill country_code",
        "dataset": {"name": "accounts", "columns": ["id", "country"]},
        "steps": [{"id": "country", "tool": "clean_country", "inputs": {"country": "record.country",
                                                                       "hint": {"literal": None}}}],
        "proposes": {"country_code": "steps.country.country_code"},
        "policy": {"thresholds": {"country_code": 0.8}, "review_on": ["country_unknown"]},
    }


def test_both_request_and_plan_are_refused(tmp_path: Path) -> None:
    plan = Plan.model_validate(_plan_body())
    body = {"name": "x", "request": {"fill": ["country_code"]}, "plan": _plan_body(), "plan_hash": plan.hash}
    assert "exactly one of 'request:' or 'plan:'" in refused(write(tmp_path, yaml.safe_dump(body)))


def test_neither_request_nor_plan_is_refused(tmp_path: Path) -> None:
    assert "exactly one of 'request:' or 'plan:'" in refused(write(tmp_path, "name: x\ndescription: empty\n"))


def test_a_pinned_plan_needs_its_hash(tmp_path: Path) -> None:
    body = {"name": "x", "plan": _plan_body()}
    assert "a pinned 'plan:' needs its 'plan_hash:'" in refused(write(tmp_path, yaml.safe_dump(body)))


def test_a_pinned_plan_with_a_wrong_hash_is_refused(tmp_path: Path) -> None:
    real = Plan.model_validate(_plan_body()).hash
    body = {"name": "x", "plan": _plan_body(), "plan_hash": "0" * 20}
    message = refused(write(tmp_path, yaml.safe_dump(body)))
    assert f"plan_hash {'0' * 20} does not match the plan (its hash is {real})" in message


def test_an_edited_pinned_plan_no_longer_matches(tmp_path: Path) -> None:
    body = {"name": "x", "plan": _plan_body(), "plan_hash": Plan.model_validate(_plan_body()).hash}
    body["plan"]["policy"]["thresholds"]["country_code"] = 0.1  # someone lowers the bar by hand
    assert "does not match the plan" in refused(write(tmp_path, yaml.safe_dump(body)))


def test_a_policy_beside_a_pinned_plan_must_equal_it(tmp_path: Path) -> None:
    body = {"name": "x", "plan": _plan_body(), "plan_hash": Plan.model_validate(_plan_body()).hash,
            "policy": {"thresholds": {"country_code": 0.1}}}
    assert "'policy:' differs from the pinned plan's policy" in refused(write(tmp_path, yaml.safe_dump(body)))


def test_a_pinned_plan_round_trips_with_the_same_hash(tmp_path: Path) -> None:
    plan = Plan.model_validate(_plan_body())
    playbook = Playbook(name="pinned", description="reviewed", plan=plan, plan_hash=plan.hash)
    path = write(tmp_path, dump_playbook(playbook))
    loaded = load_playbook(path)
    assert loaded.plan is not None
    assert loaded.plan.hash == plan.hash == loaded.plan_hash
    assert loaded.plan == plan
    assert loaded.effective_policy.review_on == ["country_unknown"]
    # And a second round trip changes nothing in the text.
    assert dump_playbook(loaded) == dump_playbook(playbook)
