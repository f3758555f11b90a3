"""Who is acting: users with roles, their one-time tokens (only a hash is stored), and the
identity the CLI and the review page act under.

Roles are ordered: an operator may do what a reviewer does, an admin what an operator does.
Until the first user exists, the CLI acts as AIRLOCK_USER or the OS user (a single-person set-up);
from then on it acts as the user of AIRLOCK_TOKEN.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from airlock.errors import Forbidden, Unauthenticated, UserError
from airlock.settings import Settings
from airlock.store import Store

ROLES = {"reviewer": 1, "operator": 2, "admin": 3}
TOKEN_PREFIX = "alk_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


@dataclass(frozen=True)
class Identity:
    name: str
    role: str

    def may(self, role: str) -> bool:
        return ROLES.get(self.role, 0) >= ROLES[role]


def token_hash(token: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"a role is one of {', '.join(ROLES)}, not {role!r}")


def add_user(store: Store, name: str, role: str, *, actor: str) -> str:
    """Create a user; returns the token, which is shown once and never stored."""
    _check_role(role)
    if not NAME.match(name):
        raise UserError(f"{name!r} is not a user name: letters, digits and . _ @ - only")
    token = new_token()
    store.add_user(name, role, token_hash(token))
    store.audit("user.added", actor=actor, subject=name, data={"role": role})
    return token


def rotate_token(store: Store, name: str, *, actor: str) -> str:
    token = new_token()
    store.set_token_hash(name, token_hash(token))
    store.audit("user.token_rotated", actor=actor, subject=name)
    return token


def set_disabled(store: Store, name: str, disabled: bool, *, actor: str) -> None:
    store.set_disabled(name, disabled)
    store.audit("user.disabled" if disabled else "user.enabled", actor=actor, subject=name)


def authenticate(store: Store, token: str | None) -> Identity:
    if not token:
        raise Unauthenticated("no token: log in with the token 'airlock users add' printed")
    user = store.user_by_token_hash(token_hash(token.strip()))
    if user is None:
        raise Unauthenticated("unknown or disabled token")
    return Identity(user["name"], user["role"])


def require(identity: Identity, role: str) -> Identity:
    if not identity.may(role):
        raise Forbidden(f"{identity.name} is a {identity.role}; this needs the {role} role")
    return identity


def cli_identity(store: Store, settings: Settings, role: str) -> Identity:
    """The CLI's actor for an action that needs ``role``."""
    if not store.has_users():
        return Identity(settings.actor, "admin")
    if settings.token is None:
        raise Unauthenticated("users exist: set AIRLOCK_TOKEN to your token to act as yourself")
    return require(authenticate(store, settings.token.get_secret_value()), role)
