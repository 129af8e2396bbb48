"""HTTP routes for messages, reactions and read markers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from parley.server.accounts.routes import UPLOAD_BODY
from parley.server.accounts.schemas import MAX_ID
from parley.server.deps import (
    CallerDep,
    CurrentUser,
    IdPath,
    Limit,
    Offset,
    OptionalId,
    SeqQuery,
    SessionDep,
    StateDep,
    authenticate_caller,
    get_state,
)
from parley.server.messages import attachments, history, search, service
from parley.server.messages.public import attachment_public
from parley.server.messages.schemas import (
    AttachmentPublic,
    MessageCreate,
    MessagePublic,
    MessageUpdate,
    ReactionCreate,
    ReadMark,
)
from parley.server.text import Plain
from parley.server.uploads import read_file_part

router = APIRouter(prefix="/service/api", tags=["messages"])
MAX_PAGE = 200


@router.get("/chats/{chat_id}/messages", response_model=list[MessagePublic])
async def list_messages(
    chat_id: IdPath,
    me: CallerDep,
    state: StateDep,
    limit: Limit = 50,
    before: SeqQuery = None,
    after: SeqQuery = None,
    offset: Offset = 0,
    around: SeqQuery = None,
) -> Response:
    """Ascending seq. `around=SEQ`: up to `limit` messages centred on SEQ (not with
    before/after/offset: 422)."""
    body = await history.history_page(
        state.pages,
        state.checks,
        state.reads,
        user_id=me.id,
        chat_id=chat_id,
        limit=min(limit, MAX_PAGE),
        before=before,
        after=after,
        offset=offset,
        around=around,
    )
    return Response(body, media_type="application/json")


@router.get("/mentions")
async def list_mentions(
    me: CurrentUser,
    session: SessionDep,
    state: StateDep,
    limit: Limit = 50,
    before: OptionalId = None,
) -> list[MessagePublic]:
    """Messages that mention me, newest first, from chats I am a member of. Paging: pass the
    smallest message `id` of a page as `before` to get the next (older) page."""
    return await service.list_mentions(
        session, user_id=me.id, limit=min(limit, MAX_PAGE), before=before, now=state.clock()
    )


@router.post("/chats/{chat_id}/messages", status_code=201, response_model=MessagePublic)
async def send_message(
    chat_id: IdPath, body: MessageCreate, me: CurrentUser, session: SessionDep, state: StateDep
) -> MessagePublic | JSONResponse:
    await session.close()  # hold no transaction (on SQLite: the write lock) while it is stored
    message, created = await service.do_send(
        state.writer,
        state.checks,
        state.throttle,
        metrics=state.metrics,
        user_id=me.id,
        chat_id=chat_id,
        content=body.content,
        client_id=body.client_id,
        reply_to=body.reply_to,
        attachment_ids=body.attachment_ids,
    )
    if created:
        return message
    return JSONResponse(message.model_dump(mode="json"), status_code=200)


@router.get("/messages/{message_id}")
async def get_message(
    message_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> MessagePublic:
    message = await service.access_message(
        session, user_id=me.id, message_id=message_id, now=state.clock()
    )
    return await service.message_public(session, message)


@router.patch("/messages/{message_id}")
async def edit_message(
    message_id: IdPath, body: MessageUpdate, me: CurrentUser, session: SessionDep, state: StateDep
) -> MessagePublic:
    return await service.edit_message(
        session,
        state.broker,
        user_id=me.id,
        message_id=message_id,
        content=body.content,
        now=state.clock(),
    )


@router.delete("/messages/{message_id}", status_code=204)
async def delete_message(
    message_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await service.delete_message(
        session, state.broker, user_id=me.id, message_id=message_id, now=state.clock()
    )
    return Response(status_code=204)


@router.post("/messages/{message_id}/reactions")
async def add_reaction(
    message_id: IdPath, body: ReactionCreate, me: CurrentUser, session: SessionDep, state: StateDep
) -> MessagePublic:
    return await service.react(
        session,
        state.broker,
        user_id=me.id,
        message_id=message_id,
        emoji=body.emoji,
        add=True,
        now=state.clock(),
    )


@router.delete("/messages/{message_id}/reactions/{emoji}", status_code=204)
async def remove_reaction(
    message_id: IdPath, emoji: str, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await service.react(
        session,
        state.broker,
        user_id=me.id,
        message_id=message_id,
        emoji=emoji,
        add=False,
        now=state.clock(),
    )
    return Response(status_code=204)


@router.post("/chats/{chat_id}/read", status_code=204)
async def mark_read(
    chat_id: IdPath, body: ReadMark, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await service.mark_read(session, state.broker, user_id=me.id, chat_id=chat_id, seq=body.seq)
    return Response(status_code=204)


@router.post("/chats/{chat_id}/attachments", status_code=201, openapi_extra=UPLOAD_BODY)
async def upload_attachment(
    chat_id: IdPath, request: Request, me: CurrentUser, session: SessionDep, state: StateDep
) -> AttachmentPublic:
    room = await attachments.check_can_upload(
        session, user_id=me.id, chat_id=chat_id, quota=state.settings.upload_quota_bytes
    )
    limit = state.settings.max_attachment_bytes
    part = await read_file_part(request, max_bytes=limit)
    attachment = await attachments.upload_attachment(
        session,
        state.storage,
        user_id=me.id,
        chat_id=chat_id,
        part=part,
        room=room,
        max_bytes=limit,
        now=state.clock(),
    )
    return attachment_public(attachment)


@router.get("/attachments/{attachment_id}", response_class=StreamingResponse)
async def download_attachment(
    attachment_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> StreamingResponse:
    attachment, chunks = await attachments.open_attachment(
        session, state.storage, user_id=me.id, attachment_id=attachment_id, now=state.clock()
    )
    await session.commit()  # end the transaction before streaming (SQLite: the write lock)
    return StreamingResponse(
        chunks,
        media_type=attachment.content_type,
        headers=attachments.download_headers(attachment),
    )


@router.get("/search")
async def search_messages(
    me: CurrentUser,
    session: SessionDep,
    state: StateDep,
    q: Annotated[Plain, Query(min_length=1, max_length=200)],
    chat_id: OptionalId = None,
    limit: Limit = 20,
) -> list[MessagePublic]:
    """Messages of the caller's chats only, best match first, then newest."""
    return await search.search_messages(
        session,
        user_id=me.id,
        q=q,
        chat_id=chat_id,
        limit=min(limit, search.MAX_RESULTS),
        now=state.clock(),
    )


# --- the history page's fast path -----------------------------------------------------------

_HISTORY_PREFIX = "/service/api/chats/"
_HISTORY_SUFFIX = "/messages"
_PAGING = frozenset({"limit", "before", "after", "offset", "around"})
_JSON = (b"content-type", b"application/json")


class HistoryFastPath:
    """`GET /service/api/chats/{id}/messages` served without FastAPI's routing and
    dependency solving (about half of a cached page's CPU in the profile).

    Only a plain request takes it: a GET without a body whose id and paging arguments are
    decimal numbers in range, each given once. It answers only a page; anything else
    (another route, odd input, any error: unauthorized, not found, 422...) goes to the
    app, which then answers it as it always does, so every response other than the page
    itself comes from the one route above. Sits inside the metrics middleware; the
    request is counted under the route's template.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route: object | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            args = _plain_history_request(scope)
            if args is not None:
                try:
                    body = await self._page(scope, *args)
                except Exception:  # the app answers it (an error, in its usual shape)
                    body = None
                if body is not None:
                    scope["route"] = self._history_route(scope)
                    length = str(len(body)).encode()
                    headers = [(b"content-length", length), _JSON]
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    async def _page(self, scope: Scope, chat_id: int, paging: dict[str, int]) -> bytes:
        conn = HTTPConnection(scope)
        state = get_state(conn)
        me = await authenticate_caller(conn, state)
        return await history.history_page(
            state.pages,
            state.checks,
            state.reads,
            user_id=me.id,
            chat_id=chat_id,
            limit=min(paging.get("limit", 50), MAX_PAGE),
            before=paging.get("before"),
            after=paging.get("after"),
            offset=paging.get("offset", 0),
            around=paging.get("around"),
        )

    def _history_route(self, scope: Scope) -> object | None:
        if self._route is None:
            self._route = next(
                r for r in router.routes if getattr(r, "endpoint", None) is list_messages
            )
        return self._route


def _plain_history_request(scope: Scope) -> tuple[int, dict[str, int]] | None:
    path: str = scope["path"]
    if not (path.startswith(_HISTORY_PREFIX) and path.endswith(_HISTORY_SUFFIX)):
        return None
    chat_id = _number(path[len(_HISTORY_PREFIX) : -len(_HISTORY_SUFFIX)], low=1)
    if chat_id is None:
        return None
    for name, _value in scope["headers"]:
        if name in (b"content-length", b"transfer-encoding"):
            return None  # a body: the app's body guard sees it
    paging: dict[str, int] = {}
    query: bytes = scope["query_string"]
    for pair in query.split(b"&") if query else ():
        raw_name, sep, raw_value = pair.partition(b"=")
        name = raw_name.decode("latin-1")
        number = _number(raw_value.decode("latin-1"), low=1 if name == "limit" else 0)
        if not sep or name not in _PAGING or name in paging or number is None:
            return None
        paging[name] = number
    return chat_id, paging


def _number(text: str, *, low: int) -> int | None:
    if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if low <= value <= MAX_ID else None
