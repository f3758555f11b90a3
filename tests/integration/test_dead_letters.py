"""What still fails after retries and fallbacks lands in the dead-letter queue, alone, and an
operator can replay it without an engineer and without anything being written twice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from airlock import deadletter
from airlock.errors import StateConflict
from airlock.report import build_report
from tests.conftest import sample_accounts, write_accounts
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.flow_helpers import assert_conserved, crm, run_flow, store

pytestmark = pytest.mark.slow


def _replayer(letters: list[dict[str, Any]], actor: str, reason: str, allow: bool) -> dict[str, Any]:
    from flows.replay import replay_dead_letters

    result: dict[str, Any] = asyncio.run(replay_dead_letters(letters=letters, actor=actor, reason=reason,
                                                             allow_changed_tools=allow))
    return result


def test_a_poison_record_dead_letters_alone(prefect_backend: None, airlock_env: Path, tmp_path: Path) -> None:
    rows = sample_accounts(60, start=100)
    poison = rows[17]
    poison["phone"] = "5" * 5000  # no phone number is 5,000 digits long: the tool refuses it every time
    _, report = run_flow(write_accounts(tmp_path / "in.csv", rows), review_timeout=0)
    assert_conserved(report, 60)
    outcomes = {r["id"]: r["outcome"] for r in report["records"]}
    assert outcomes[poison["id"]] == "dead_lettered"
    assert report["counts"]["dead_lettered"] == 1  # the rest of its chunk went on
    assert report["counts"]["written"] > 20
    letters = deadletter.list_letters(store(), run_id=report["run_id"])
    assert len(letters) == 1
    letter = letters[0]
    assert letter["kind"] == "record" and letter["record_ids"] == [poison["id"]]
    assert letter["step_id"] == "normalize_phone" and letter["error_type"] == "ToolInputError"
    assert letter["attempts"] and letter["payload"]["input"]["phone"] == poison["phone"]
    # Replaying it runs only that record again; it fails again and stays accounted for.
    applied = crm().count_applied()
    result = deadletter.replay(store(), [letter["id"]], actor="ops", reason="try again", replayer=_replayer)
    assert result[str(letter["id"])]["failed_again"] == 1
    assert crm().count_applied() == applied
    assert_conserved(build_report(store(), report["run_id"], with_records=True), 60)
    assert deadletter.show(store(), letter["id"])["status"] == "replayed"
    with pytest.raises(StateConflict):
        deadletter.replay(store(), [letter["id"]], actor="ops", reason="again", replayer=_replayer)


@pytest.mark.pg
def test_crm_outage_dead_letters_chunks_and_replay_writes_them_once(
    prefect_backend: None, airlock_env: Path, pg_databases: tuple[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, crm_url = pg_databases
    proxy = TcpProxy("127.0.0.1", 5432)
    try:
        monkeypatch.setenv("AIRLOCK_CRM_URL", crm_url.replace(":5432/", f":{proxy.port}/"))
        proxy.down()  # the CRM is unreachable for the whole run
        _, report = run_flow(write_accounts(tmp_path / "in.csv", sample_accounts(90, start=1500)),
                             review_timeout=0)
        assert_conserved(report, 90)
        assert report["counts"]["written"] == 0
        letters = deadletter.list_letters(store(), run_id=report["run_id"])
        assert letters and all(letter["kind"] == "chunk" and letter["stage"] == "commit" for letter in letters)
        stuck = sum(len(letter["record_ids"]) for letter in letters)
        assert stuck == report["counts"]["dead_lettered"] > 0
        proxy.up()  # the CRM is back: an operator replays everything that is open
        deadletter.replay(store(), [letter["id"] for letter in letters], actor="ops", reason="CRM is back",
                          replayer=_replayer)
        after = build_report(store(), report["run_id"], with_records=True)
        assert_conserved(after, 90)
        assert after["counts"]["dead_lettered"] == 0
        assert after["counts"]["written"] == stuck
        assert crm().count_applied() == stuck
        # Replaying again is refused and changes nothing.
        with pytest.raises(StateConflict):
            deadletter.replay(store(), [letters[0]["id"]], actor="ops", reason="again", replayer=_replayer)
        assert crm().count_applied() == stuck
    finally:
        proxy.close()
