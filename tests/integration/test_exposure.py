"""What the service shows and to whom: emails, metrics, /stats; constraint violations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from parley.server.app import create_app
from parley.server.db.models import User
from tests.conftest import Running, start_server, stop_server, test_settings
from tests.factories import Account, make_user, seed_users


async def _make_admin(live: Running, who: Account) -> None:
    async with live.state.sessions() as session:
        await session.execute(update(User).where(User.id == who.id).values(is_admin=True))
        await session.commit()


async def test_user_listings_show_an_email_only_to_its_owner_and_admins(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, other, admin = await make_user(client), await make_user(client), await make_user(client)
    await _make_admin(live, admin)

    async def listed(path: str, who: Any) -> dict[int, Any]:
        if path.startswith("/api"):  # every page: the shared database holds many users
            return {u["id"]: u for u in await seed_users(client, who.headers)}
        answer = await client.get(path, params={"q": other.username}, headers=who.headers)
        return {u["id"]: u for u in answer.json()}

    for path in ("/api/v1/users", "/service/api/users"):
        seen = await listed(path, me)
        assert seen[other.id].get("email") is None, (path, seen[other.id])
        by_admin = await listed(path, admin)
        assert by_admin[other.id]["email"] == f"{other.username}@example.com", path
    own = await listed("/api/v1/users", me)
    assert own[me.id]["email"] == f"{me.username}@example.com"
    single = await client.get(f"/service/api/users/{other.id}", headers=me.headers)
    assert "email" not in single.json()
    single = await client.get(f"/service/api/users/{other.id}", headers=admin.headers)
    assert single.json()["email"] == f"{other.username}@example.com"


async def test_metrics_answer_only_to_allowed_addresses(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # Loopback is allowed by default, but not a public client forwarded by the gateway.
    assert (await client.get("/service/metrics")).status_code == 200
    forwarded = await client.get(
        "/service/metrics", headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.1"}
    )
    assert forwarded.status_code == 403 and forwarded.json()["code"] == "forbidden"
    running, server, task = await start_server(
        test_settings(tmp_path, PARLEY_METRICS_ALLOW="10.0.0.0/8")
    )
    try:
        async with httpx.AsyncClient(base_url=running.base) as http:
            refused = await http.get("/service/metrics")
        assert refused.status_code == 403 and "app_request_total" not in refused.text
    finally:
        await stop_server(server, task)


async def test_stats_are_computed_at_most_every_five_seconds(
    client: httpx.AsyncClient, live: Running
) -> None:
    live.state.caches.pop("stats", None)
    before = (await client.get("/stats")).json()
    await make_user(client)
    after = (await client.get("/stats")).json()
    assert after["users"] == before["users"]  # the cached count
    assert after["uptime_seconds"] >= before["uptime_seconds"]
    live.state.caches.pop("stats", None)  # as if five seconds had passed
    assert (await client.get("/stats")).json()["users"] == before["users"] + 1


async def test_a_constraint_violation_is_a_409(tmp_path: Path) -> None:
    app = create_app(test_settings(tmp_path))

    @app.get("/boom")
    async def boom() -> None:
        raise IntegrityError("INSERT ...", {}, Exception("UNIQUE constraint failed"))

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/boom")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "The request conflicts with the current state",
        "code": "conflict",
    }
