"""What Prefect keeps of the records a task returns: a chunk's records are linked to their task once,
not record by record (``airlock.dataset.ChunkRecords``)."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.context import FlowRunContext

from airlock.dataset import ChunkRecords

ROWS = 1000


@task
def rows_as_list() -> list[dict[str, Any]]:
    return [{"id": str(i)} for i in range(ROWS)]


@task
def rows_as_chunk() -> ChunkRecords:
    return ChunkRecords([{"id": str(i)} for i in range(ROWS)])


@flow
def linked_after(returning: str) -> int:
    """How many results the flow run links to task states after the task ran."""
    context = FlowRunContext.get()
    assert context is not None
    before = len(context.run_results)
    (rows_as_list if returning == "list" else rows_as_chunk).submit().result()
    return len(context.run_results) - before


def test_a_chunk_s_records_are_linked_to_their_task_once(prefect_backend: None) -> None:
    assert linked_after("list") > ROWS  # the list and each of its records: what a bare list would cost
    assert linked_after("chunk") <= 1
