"""Faults inside the pipeline: the same submission twice at once (6), a dead letter replayed twice at
once (7), validation raising mid-batch (8), a review nobody answers (9), a poison record (11), and a
tool changed between the failure and the replay (12)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from airlock import deadletter
from airlock.cli import main
from airlock.errors import StateConflict
from systems.tickets import TicketService
from tests.conftest import PROJECT, sample_accounts, write_accounts
from tests.faults.conftest import check_run, only_run, project_copy, run_worker, start_worker, wait_for
from tests.integration.flow_helpers import crm, run_flow, store

pytestmark = pytest.mark.slow
PLAYBOOK = "playbooks/enrich_accounts.yaml"


def _replayer(letters: list[dict[str, Any]], actor: str, reason: str, allow: bool) -> dict[str, Any]:
    from flows.replay import replay_dead_letters

    result: dict[str, Any] = asyncio.run(replay_dead_letters(letters=letters, actor=actor, reason=reason,
                                                             allow_changed_tools=allow))
    return result


def _poisoned(tmp_path: Path, count: int, start: int) -> tuple[Path, str]:
    rows = sample_accounts(count, start=start)
    rows[7]["phone"] = "5" * 5000  # no phone number is 5,000 digits long: the tool refuses it every time
    return write_accounts(tmp_path / "in.csv", rows), rows[7]["id"]


def test_6_the_same_plan_and_records_submitted_twice_at_once(
    prefect_backend: None, backend: str, tickets_service: TicketService, tmp_path: Path,
) -> None:
    source = write_accounts(tmp_path / "in.csv", sample_accounts(30, start=520))
    store()  # the store exists before both arrive (creating an empty store is not what this case races)
    args = ["run", PLAYBOOK, "--input", str(source), "--review-timeout", "0"]
    # Whichever pins the run first is held at its first ticket write (alive, holding its lease) until
    # the other submission has ended, so the two overlap however the machine schedules them.
    release, reached = threading.Event(), threading.Event()

    def hold(_request: str, _body: dict[str, Any]) -> None:
        reached.set()
        release.wait(300)

    tickets_service.faults.on_request = hold
    workers = [start_worker(args), start_worker(args)]
    wait_for(lambda: any(w.poll() is not None for w in workers), "one of the submissions to end", 300)
    release.set()
    results = [(w.wait(300), w.communicate()) for w in workers]
    assert reached.is_set()  # the run that went ahead did reach its ticket writes
    codes = sorted(code for code, _ in results)
    if codes != [0, 2]:  # all of both outputs (an assertion's would be cut short), to say what happened
        pytest.fail("expected one run and one refusal, got:\n" + "\n".join(
            f"exit {code}\n--- stdout\n{out}\n--- stderr\n{err}" for code, (out, err) in results), pytrace=False)
    run = only_run()  # the refused submission created nothing
    refused_err = next(err for code, (_, err) in results if code == 2)
    # Both passed the pre-flight check at once; the store's unique index let one pin the run. The
    # other ends in one line naming it (Prefect logs the failed pin task above that line).
    # (Prefect's event worker may still log a shutdown warning after it, so look for the line.)
    errors = [" ".join(line.split()) for line in refused_err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: run "), refused_err
    assert run["id"][:8] in " ".join(refused_err.split())
    assert "already processing this plan and input" in " ".join(refused_err.split())
    check_run(run["id"], 30, tickets_service)


def test_7_a_dead_letter_replayed_twice_at_once_writes_once(
    prefect_backend: None, backend: str, tickets_service: TicketService, tmp_path: Path,
) -> None:
    rows = sample_accounts(30, start=560)
    run_flow(write_accounts(tmp_path / "in.csv", rows), review_timeout=0)
    ticketed = [t["account_id"] for t in tickets_service.store.tickets()]
    assert ticketed, "the sample must need tickets for this case to mean anything"
    # A second run over other records: the ticketing service refuses one account; its CRM update is
    # compensated and it becomes a dead letter.
    more = sample_accounts(60, start=590)
    tickets_service.faults.refuse_accounts = {r["id"] for r in more}
    _, report = run_flow(write_accounts(tmp_path / "more.csv", more), review_timeout=0)
    letters = [d for d in deadletter.list_letters(store(), run_id=report["run_id"]) if d["stage"] == "commit"]
    assert letters, "some record of the second input must need a ticket"
    check_run(report["run_id"], 60, tickets_service)
    letter = letters[0]
    [record_id] = letter["record_ids"]
    compensated = [e for e in store().effects_for(report["run_id"]) if e["record_id"] == record_id]
    assert {e["status"] for e in compensated if e["write_id"] == "crm"} == {"compensated"}

    tickets_service.faults.refuse_accounts = set()
    outcomes: list[Any] = []
    barrier = threading.Barrier(2)

    def replay() -> None:
        barrier.wait()
        try:
            outcomes.append(deadletter.replay(store(), [letter["id"]], actor="ops", reason="service fixed",
                                              replayer=_replayer))
        except StateConflict as error:
            outcomes.append(error)

    threads = [threading.Thread(target=replay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(type(o).__name__ for o in outcomes) == ["StateConflict", "dict"], outcomes
    after = check_run(report["run_id"], 60, tickets_service)
    assert {r["id"]: r["outcome"] for r in after["records"]}[record_id] == "written"
    assert len(tickets_service.store.tickets(record_id)) == 1
    # A third replay of the same letter changes nothing.
    with pytest.raises(StateConflict):
        deadletter.replay(store(), [letter["id"]], actor="ops", reason="again", replayer=_replayer)
    check_run(report["run_id"], 60, tickets_service)


def test_8_validation_raising_mid_batch_fails_closed(
    prefect_backend: None, backend: str, tickets_service: TicketService, tmp_path: Path,
) -> None:
    rows = sample_accounts(40, start=640)
    crash_on = rows[25]["id"]  # in the second chunk of 20
    copy = project_copy(tmp_path)
    rules = copy / "expectations" / "accounts.py"
    rules.write_text(rules.read_text() + f'''

def _crash(after, record):
    if record.get("id") == {crash_on!r}:
        raise RuntimeError("the rule engine crashed")
    return False


RULES.append(Rule("crash", "review", "crashes on one record", _crash))
''')
    source = write_accounts(tmp_path / "in.csv", rows)
    done = run_worker(["run", PLAYBOOK, "--input", str(source), "--review-timeout", "0"], cwd=copy,
                      AIRLOCK_PROJECT_DIR=str(copy))
    assert done.returncode == 0, done.stderr
    run = only_run()
    report = check_run(run["id"], 40, tickets_service)
    outcomes = {r["id"]: r["outcome"] for r in report["records"]}
    second = [r["id"] for r in rows[20:]]
    assert {outcomes[rid] for rid in second} == {"dead_lettered"}  # nothing of that batch was written
    assert crm().get(second) == {}
    assert any(outcomes[r["id"]] == "written" for r in rows[:20])
    [letter] = deadletter.list_letters(store(), run_id=run["id"])
    assert letter["kind"] == "chunk" and letter["stage"] == "validate"
    assert "crashed" in letter["error"]
    assert not [e for e in store().effects_for(run["id"]) if e["record_id"] in second]


def test_9_a_review_nobody_answers_times_out_and_writes_nothing_flagged(
    prefect_backend: None, backend: str, tickets_service: TicketService, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRLOCK_REVIEW_POLL_INTERVAL", "1")
    state, report = run_flow(write_accounts(tmp_path / "in.csv", sample_accounts(40, start=700)), review_timeout=2)
    assert state.is_completed(), state
    report = check_run(report["run_id"], 40, tickets_service)
    pending = [r["id"] for r in report["records"] if r["outcome"] == "pending_review"]
    assert pending
    assert not [e for e in store().effects_for(report["run_id"]) if e["record_id"] in pending]
    assert not {t["account_id"] for t in tickets_service.store.tickets()} & set(pending)
    resumed = [e for e in store().audit_trail(report["run_id"]) if e["kind"] == "review.resumed"]
    assert resumed and resumed[-1]["data"]["timed_out"] is True


def test_11_a_poison_record_dead_letters_alone(
    prefect_backend: None, backend: str, tickets_service: TicketService, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], webhook: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRLOCK_DLQ_ALERT_THRESHOLD", "1")
    source, poison = _poisoned(tmp_path, 30, 740)
    state, report = run_flow(source, review_timeout=0)
    # Operators are told: the queue reached its threshold with this run's letter.
    wait_for(lambda: bool(webhook), "the dead-letter notice")
    assert [n["airlock"]["event"] for n in webhook] == ["deadletters.growing"]
    assert state.is_completed(), state
    report = check_run(report["run_id"], 30, tickets_service)
    outcomes = {r["id"]: r["outcome"] for r in report["records"]}
    assert outcomes[poison] == "dead_lettered" and report["counts"]["dead_lettered"] == 1
    assert report["counts"]["written"] > 10  # the rest of its chunk went on
    [letter] = deadletter.list_letters(store(), run_id=report["run_id"])
    assert letter["record_ids"] == [poison] and letter["step_id"] == "normalize_phone" and letter["attempts"]
    # The operator's view: filter, show everything, and give up on it with a reason.
    capsys.readouterr()
    run = report["run_id"][:8]
    assert main(["dlq", "list", "--run", run, "--step", "normalize_phone", "--error-type", "ToolInputError",
                 "--json"]) == 0
    assert [d["id"] for d in json.loads(capsys.readouterr().out)] == [letter["id"]]
    assert main(["dlq", "list", "--run", run, "--error-type", "TimeoutError", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["dlq", "show", str(letter["id"])]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["payload"]["input"]["phone"] == "5" * 5000 and shown["error"] and shown["attempts"]
    assert main(["dlq", "discard", str(letter["id"])]) == 2  # a reason is required
    assert main(["dlq", "discard", str(letter["id"]), "--reason", "bad source data, fixed upstream"]) == 0
    shown = deadletter.show(store(), letter["id"])
    assert shown["status"] == "discarded" and [h["kind"] for h in shown["history"]] == ["deadletter.discarded"]
    after = check_run(report["run_id"], 30, tickets_service)
    assert {r["id"]: r["outcome"] for r in after["records"]}[poison] == "dead_lettered"


def test_12_a_tool_changed_between_the_failure_and_the_replay(
    prefect_backend: None, backend: str, tickets_service: TicketService, tmp_path: Path,
) -> None:
    source, _ = _poisoned(tmp_path, 30, 780)
    _, report = run_flow(source, review_timeout=0)
    [letter] = deadletter.list_letters(store(), run_id=report["run_id"])
    copy = project_copy(tmp_path)
    phone = copy / "tools" / "phone.py"
    phone.write_text(phone.read_text() + "\n# changed after the run: another implementation\n")
    refused = run_worker(["dlq", "replay", str(letter["id"]), "--reason", "retry"], cwd=copy,
                         AIRLOCK_PROJECT_DIR=str(copy))
    assert refused.returncode == 2, refused.stderr
    assert "normalize_phone changed since run" in " ".join(refused.stderr.split())
    assert deadletter.show(store(), letter["id"])["status"] == "open"  # released, untouched
    check_run(report["run_id"], 30, tickets_service)
    # On the original code the replay runs (and the poison fails again, as a new letter).
    same = run_worker(["dlq", "replay", str(letter["id"]), "--reason", "retry"], cwd=PROJECT)
    assert same.returncode == 0, same.stderr
    assert deadletter.show(store(), letter["id"])["status"] == "replayed"
    check_run(report["run_id"], 30, tickets_service)
