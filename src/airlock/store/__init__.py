"""Airlock's store: runs, plans, snapshots, proposals, verdicts, review, ledger, dead letters, audit.

SQLite by default (a file in the state folder), PostgreSQL in production; the same code for both.
"""

from __future__ import annotations

from airlock.store.db import ensure_schema, make_engine, upgrade
from airlock.store.effects import EffectsRepo
from airlock.store.llm import LlmRepo
from airlock.store.proposals import ChunkVerdictWriter
from airlock.store.review import ReviewRepo
from airlock.store.runs import RunsRepo
from airlock.store.users import UsersRepo


class Store(RunsRepo, ChunkVerdictWriter, EffectsRepo, LlmRepo, ReviewRepo, UsersRepo):
    """One object for every repository, sharing one engine."""

    @classmethod
    def open(cls, url: str, *, create_if_empty: bool = True) -> Store:
        engine = make_engine(url)
        ensure_schema(engine, create_if_empty=create_if_empty)
        return cls(engine)


__all__ = ["Store", "ensure_schema", "make_engine", "upgrade"]
