"""The history page's fast path: a plain `GET /service/api/chats/{id}/messages` answered
without FastAPI's routing (the route itself is in routes.py; this reads its declaration)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import annotated_types
from fastapi.routing import APIRoute
from pydantic.fields import FieldInfo
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from parley.server.deps import MAX_PAGE, authenticate_caller, get_state
from parley.server.messages import history
from parley.server.messages.routes import list_messages, router

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
        self._route = next(
            r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is list_messages
        )
        self._declared = Declared.of(self._route, app_only=("thread",))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            args = self._declared.parse(scope)
            if args is not None:
                try:
                    body = await self._page(scope, args)
                except Exception:  # the app answers it (an error, in its usual shape)
                    body = None
                if body is not None:
                    scope["route"] = self._route
                    length = str(len(body)).encode()
                    headers = [(b"content-length", length), _JSON]
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    async def _page(self, scope: Scope, args: dict[str, Any]) -> bytes:
        conn = HTTPConnection(scope)
        state = get_state(conn)
        me = await authenticate_caller(conn, state)
        return await history.history_page(
            state.pages,
            state.checks,
            state.reads,
            user_id=me.id,
            chat_id=args["chat_id"],
            paging=history.Paging(
                min(args["limit"], MAX_PAGE),
                before=args["before"],
                after=args["after"],
                offset=args["offset"],
                around=args["around"],
            ),
        )


@dataclass(frozen=True, slots=True)
class Declared:
    """A route's integer parameters as its own declaration states them (the path pattern,
    each parameter's bounds and default), for a fast path to accept exactly the plain
    requests the route would accept, and nothing else: no second parser to keep in step."""

    path: re.Pattern[str]
    bounds: dict[str, tuple[int, int]]  # path and query parameters: (lowest, highest)
    defaults: dict[str, int | None]  # the query parameters'

    @classmethod
    def of(cls, route: APIRoute, app_only: tuple[str, ...] = ()) -> Declared:
        """Raises TypeError for a parameter that is not a bounded integer (the route
        changed: the fast path no longer knows how to read it), except those named in
        `app_only`: a request that gives one of those is left to the app."""
        query_params = [f for f in route.dependant.query_params if f.alias not in app_only]
        fields = [*route.dependant.path_params, *query_params]
        bounds = {f.alias: _int_bounds(f.alias, f.field_info) for f in fields}
        defaults = {f.alias: f.field_info.default for f in query_params}
        return cls(route.path_regex, bounds, defaults)

    def parse(self, scope: Scope) -> dict[str, Any] | None:
        """The arguments of a plain request (no body; each query parameter declared, given
        once, in decimal, in range), or None: the app answers it as usual."""
        match = self.path.match(scope["path"])
        if match is None:
            return None
        for name, _value in scope["headers"]:
            if name in (b"content-length", b"transfer-encoding"):
                return None  # a body: the app's body guard sees it
        args: dict[str, Any] = {}
        for name, text in match.groupdict().items():
            number = self._number(name, text)
            if number is None:
                return None
            args[name] = number
        query: bytes = scope["query_string"]
        for pair in query.split(b"&") if query else ():
            raw_name, sep, raw_value = pair.partition(b"=")
            name = raw_name.decode("latin-1")
            if not sep or name not in self.defaults or name in args:
                return None
            number = self._number(name, raw_value.decode("latin-1"))
            if number is None:
                return None
            args[name] = number
        return {**self.defaults, **args}

    def _number(self, name: str, text: str) -> int | None:
        if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
            return None
        value = int(text)
        low, high = self.bounds[name]
        return value if low <= value <= high else None


def _int_bounds(name: str, info: FieldInfo) -> tuple[int, int]:
    low: int | None = None
    high: int | None = None
    for rule in info.metadata:
        if isinstance(rule, annotated_types.Gt):
            low = int(rule.gt) + 1  # type: ignore[call-overload]
        elif isinstance(rule, annotated_types.Ge):
            low = int(rule.ge)  # type: ignore[call-overload]
        elif isinstance(rule, annotated_types.Le):
            high = int(rule.le)  # type: ignore[call-overload]
        elif isinstance(rule, annotated_types.Lt):
            high = int(rule.lt) - 1  # type: ignore[call-overload]
    if low is None or high is None or low < 0 or info.annotation not in (int, int | None):
        raise TypeError(f"{name}: the fast path reads only bounded, non-negative integers")
    return low, high
