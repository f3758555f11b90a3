"""The review page: a small Starlette app over the store, served by ``airlock review serve``.

Every state change needs a logged-in user (session cookie plus the session's CSRF token in an
``X-CSRF-Token`` header, or a bearer token for scripts) with the right role, and is recorded with
that user's name. Decisions return as soon as they are in the store; the ``Effector`` makes them
take effect (resuming the paused run, or a follow-up commit) in the background.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from airlock import deadletter, review
from airlock.errors import (
    AirlockError,
    Forbidden,
    InfrastructureError,
    NotFound,
    StateConflict,
    Unauthenticated,
    UserError,
)
from airlock.review.auth import Identity, authenticate, require, token_hash
from airlock.review.effects import Effector, Hooks
from airlock.review.queue import QueueFilter, load_queue
from airlock.store import Store

log = logging.getLogger("airlock.review")
STATIC = Path(__file__).parent / "static"
COOKIE = "airlock_session"
SESSION_TTL = timedelta(hours=12)
SOURCE = "review-page"
M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Login(Body):
    token: str = Field(min_length=1, max_length=200)


class Shown(Body):
    id: int
    hash: str = Field(max_length=64)


class DecideBody(Body):
    items: list[Shown] = Field(min_length=1, max_length=10_000)
    decision: str
    note: str = Field(default="", max_length=2000)


class EditBody(Body):
    id: int
    hash: str = Field(max_length=64)
    edits: dict[str, Any] = Field(min_length=1)
    note: str = Field(default="", max_length=2000)


class UndoBody(Body):
    ids: list[int] = Field(min_length=1, max_length=10_000)


class LettersBody(Body):
    ids: list[int] = Field(min_length=1, max_length=1000)
    reason: str = Field(default="", max_length=2000)


STATUS = {Unauthenticated: 401, Forbidden: 403, NotFound: 404, StateConflict: 409}


def _error(error: Exception) -> JSONResponse:
    if isinstance(error, UserError):
        status = next((code for kind, code in STATUS.items() if isinstance(error, kind)), 400)
        return JSONResponse({"error": error.message}, status_code=status)
    if isinstance(error, InfrastructureError):
        return JSONResponse({"error": error.message}, status_code=503)
    if isinstance(error, AirlockError):
        return JSONResponse({"error": error.message}, status_code=500)
    log.exception("review page request failed", exc_info=error)
    return JSONResponse({"error": "internal error; see the server log"}, status_code=500)


class ReviewPage:
    def __init__(self, store: Store, hooks: Hooks, *, secure_cookies: bool = False) -> None:
        self.store = store
        self.hooks = hooks
        self.effector = Effector(store, hooks)
        self.secure_cookies = secure_cookies

    # -- identity ---------------------------------------------------------------------------
    def identity(self, request: Request, role: str = "reviewer") -> Identity:
        """The acting user. A state change through the cookie must also carry the CSRF token and
        come from this page's own origin; a bearer token is not sent by browsers on their own."""
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            return require(authenticate(self.store, bearer[7:]), role)
        cookie = request.cookies.get(COOKIE)
        session = self.store.session(token_hash(cookie)) if cookie else None
        if session is None:
            raise Unauthenticated("not logged in")
        if request.method not in ("GET", "HEAD"):
            sent = request.headers.get("x-csrf-token", "")
            if not hmac.compare_digest(sent.encode(), session["csrf"].encode()):
                raise Forbidden("missing or wrong CSRF token: reload the page")
            self._same_origin(request)
        return require(Identity(session["name"], session["role"]), role)

    @staticmethod
    def _same_origin(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            raise Forbidden("cross-origin request refused")

    async def _body(self, request: Request, model: type[M]) -> M:
        try:
            return model.model_validate_json(await request.body())
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise UserError(f"bad request: {where}: {first['msg']}") from error

    # -- routes -----------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})

    async def login(self, request: Request) -> Response:
        body = await self._body(request, Login)
        return await run_in_threadpool(self._login, request, body)

    def _login(self, request: Request, body: Login) -> Response:
        self._same_origin(request)
        who = authenticate(self.store, body.token)
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        self.store.create_session(token_hash(session_id), who.name, csrf, SESSION_TTL)
        self.store.audit("user.login", actor=who.name, data={"source": SOURCE})
        response = JSONResponse({"user": who.name, "role": who.role, "csrf": csrf})
        response.set_cookie(COOKIE, session_id, max_age=int(SESSION_TTL.total_seconds()), httponly=True,
                            samesite="strict", secure=self.secure_cookies, path="/")
        return response

    def logout(self, request: Request) -> Response:
        self.identity(request)
        cookie = request.cookies.get(COOKIE)
        if cookie:
            self.store.delete_session(token_hash(cookie))
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE, path="/")
        return response

    def me(self, request: Request) -> Response:
        who = self.identity(request)
        cookie = request.cookies.get(COOKIE)
        session = self.store.session(token_hash(cookie)) if cookie else None
        return JSONResponse({"user": who.name, "role": who.role, "csrf": session["csrf"] if session else None})

    def items(self, request: Request) -> Response:
        self.identity(request)
        params = request.query_params
        wanted = QueueFilter(run=params.get("run") or None, reason=params.get("reason") or None,
                             field=params.get("field") or None, status=params.get("status") or "pending")
        return JSONResponse(load_queue(self.store, wanted))

    async def decide(self, request: Request) -> Response:
        body = await self._body(request, DecideBody)
        return await run_in_threadpool(self._decide, request, body)

    def _decide(self, request: Request, body: DecideBody) -> Response:
        who = self.identity(request)
        shown = {item.id: item.hash for item in body.items}
        result = review.decide(self.store, list(shown), body.decision, actor=who.name, source=SOURCE,
                               note=body.note, shown=shown)
        self.effector.submit(result.runs, who.name)
        return JSONResponse({"decided": [i["id"] for i in result.decided], "skipped": result.skipped,
                             "runs": result.runs, "actor": who.name})

    async def edit(self, request: Request) -> Response:
        body = await self._body(request, EditBody)
        return await run_in_threadpool(self._edit, request, body)

    def _edit(self, request: Request, body: EditBody) -> Response:
        who = self.identity(request)
        found = self.store.review_items_for(status=None, item_ids=[body.id])
        if not found:
            raise NotFound(f"no review item {body.id}")
        run = self.store.get_run(found[0]["run_id"])
        # Checked before the edit: someone who may not approve must not change the proposal either.
        if review.four_eyes(self.store, run) and run["started_by"] == who.name:
            raise StateConflict(f"item {body.id} belongs to run {run['id'][:8]} that you started; its playbook "
                                "requires four eyes: someone else must edit and approve it")
        new_hash = self.store.edit_proposal(body.id, body.hash, body.edits, actor=who.name)
        result = review.decide(self.store, [body.id], "approved", actor=who.name, source=SOURCE, note=body.note,
                               shown={body.id: new_hash}, edits={body.id: body.edits})
        self.effector.submit(result.runs, who.name)
        return JSONResponse({"decided": [i["id"] for i in result.decided], "hash": new_hash, "actor": who.name})

    async def undo(self, request: Request) -> Response:
        body = await self._body(request, UndoBody)
        return await run_in_threadpool(self._undo, request, body)

    def _undo(self, request: Request, body: UndoBody) -> Response:
        who = self.identity(request)
        undone = [self.store.undo_decision(item_id, actor=who.name, source=SOURCE) for item_id in body.ids]
        self.store.audit_many([{"kind": "review.undone", "actor": who.name, "run_id": i["run_id"],
                                "subject": str(i["id"]), "data": {"was": i["was"], "record_id": i["record_id"]}}
                               for i in undone])
        return JSONResponse({"undone": [i["id"] for i in undone]})

    def letters(self, request: Request) -> Response:
        self.identity(request, "operator")
        status = request.query_params.get("status", "open")
        letters = deadletter.list_letters(self.store, status=None if status == "all" else status,
                                          run_id=request.query_params.get("run") or None)
        shown = [{k: letter[k] for k in ("id", "run_id", "kind", "stage", "step_id", "record_ids", "tool",
                                         "error_type", "error", "status", "created_at")}
                 | {"attempts": len(letter["attempts"])} for letter in letters]
        return JSONResponse({"letters": [{**s, "created_at": str(s["created_at"])} for s in shown]})

    async def replay(self, request: Request) -> Response:
        body = await self._body(request, LettersBody)
        return await run_in_threadpool(self._replay, request, body)

    def _replay(self, request: Request, body: LettersBody) -> Response:
        who = self.identity(request, "operator")
        if self.hooks.replayer is None:
            raise StateConflict("replay is not available: this page was started without the project's flows")
        result = deadletter.replay(self.store, body.ids, actor=who.name, reason=body.reason,
                                   replayer=self.hooks.replayer)
        return JSONResponse({"replayed": {str(k): v for k, v in result.items()}})

    async def discard(self, request: Request) -> Response:
        body = await self._body(request, LettersBody)
        return await run_in_threadpool(self._discard, request, body)

    def _discard(self, request: Request, body: LettersBody) -> Response:
        who = self.identity(request, "operator")
        return JSONResponse({"discarded": deadletter.discard(self.store, body.ids, actor=who.name,
                                                             reason=body.reason)})


async def _handler(_request: Request, error: Exception) -> Response:
    return _error(error)


def create_app(store: Store, hooks: Hooks, *, secure_cookies: bool = False) -> Starlette:
    page = ReviewPage(store, hooks, secure_cookies=secure_cookies)
    routes = [
        Route("/", page.index),
        Route("/api/login", page.login, methods=["POST"]),
        Route("/api/logout", page.logout, methods=["POST"]),
        Route("/api/me", page.me),
        Route("/api/items", page.items),
        Route("/api/decide", page.decide, methods=["POST"]),
        Route("/api/edit", page.edit, methods=["POST"]),
        Route("/api/undo", page.undo, methods=["POST"]),
        Route("/api/deadletters", page.letters),
        Route("/api/deadletters/replay", page.replay, methods=["POST"]),
        Route("/api/deadletters/discard", page.discard, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    # AirlockError is answered by Starlette's exception middleware (no traceback in the log); the
    # catch-all answers 500 with one line and logs the traceback.
    app = Starlette(routes=routes, exception_handlers={AirlockError: _handler, Exception: _handler})
    app.state.page = page
    return app
