"""Reviewers, operators and admins, and the review page's sessions.

Only hashes are stored: the token a person logs in with and the session cookie never reach the
database, so reading the store gives nobody a way in.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from airlock.errors import NotFound, StateConflict
from airlock.store.base import StoreBase, as_utc
from airlock.store.schema import sessions, users


class UsersRepo(StoreBase):
    def add_user(self, name: str, role: str, token_hash: str) -> None:
        with self.tx() as connection:
            if connection.execute(sa.select(users.c.name).where(users.c.name == name)).first() is not None:
                raise StateConflict(f"user {name!r} exists; 'airlock users token {name}' issues a new token")
            connection.execute(users.insert().values(name=name, role=role, token_hash=token_hash,
                                                     created_at=self.now(), disabled=False))

    def set_token_hash(self, name: str, token_hash: str) -> None:
        with self.tx() as connection:
            if not connection.execute(users.update().where(users.c.name == name)
                                      .values(token_hash=token_hash)).rowcount:
                raise NotFound(f"no user {name!r}")
            # A new token ends the sessions opened with the old one.
            connection.execute(sessions.delete().where(sessions.c.user_name == name))

    def set_disabled(self, name: str, disabled: bool) -> None:
        with self.tx() as connection:
            if not connection.execute(users.update().where(users.c.name == name)
                                      .values(disabled=disabled)).rowcount:
                raise NotFound(f"no user {name!r}")
            if disabled:
                connection.execute(sessions.delete().where(sessions.c.user_name == name))

    def list_users(self) -> list[dict[str, Any]]:
        return self._rows(sa.select(users.c.name, users.c.role, users.c.created_at, users.c.disabled)
                          .order_by(users.c.name))

    def has_users(self) -> bool:
        with self.tx() as connection:
            return connection.execute(sa.select(users.c.name).limit(1)).first() is not None

    def user_by_token_hash(self, token_hash: str) -> dict[str, Any] | None:
        rows = self._rows(sa.select(users.c.name, users.c.role, users.c.disabled)
                          .where(users.c.token_hash == token_hash))
        return rows[0] if rows and not rows[0]["disabled"] else None

    # -- sessions -------------------------------------------------------------------------
    def create_session(self, id_hash: str, user_name: str, csrf: str, ttl: timedelta) -> None:
        now = self.now()
        with self.tx() as connection:
            connection.execute(sessions.delete().where(sessions.c.expires_at < now))
            connection.execute(sessions.insert().values(id_hash=id_hash, user_name=user_name, csrf=csrf,
                                                        created_at=now, expires_at=now + ttl))

    def session(self, id_hash: str) -> dict[str, Any] | None:
        rows = self._rows(
            sa.select(sessions.c.csrf, sessions.c.expires_at, users.c.name, users.c.role, users.c.disabled)
            .join(users, users.c.name == sessions.c.user_name).where(sessions.c.id_hash == id_hash)
        )
        if not rows or rows[0]["disabled"]:
            return None
        expires = as_utc(rows[0]["expires_at"])
        return rows[0] if expires is not None and expires > self.now() else None

    def delete_session(self, id_hash: str) -> None:
        with self.tx() as connection:
            connection.execute(sessions.delete().where(sessions.c.id_hash == id_hash))
