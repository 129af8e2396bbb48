"""HTTP routes for blocks (any user) and bans (admins)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from parley.server.db.models import Ban, Block
from parley.server.deps import CurrentUser, IdPath, SessionDep, StateDep, check_admin
from parley.server.moderation import service
from parley.server.moderation.schemas import BanCreate, BanPublic, BlockCreate, BlockPublic

router = APIRouter(prefix="/service/api", tags=["moderation"])


def _block(block: Block) -> BlockPublic:
    return BlockPublic(
        user_id=block.blocked_id, created_at=block.created_at, expires_at=block.expires_at
    )


def _ban(ban: Ban) -> BanPublic:
    return BanPublic(
        user_id=ban.user_id,
        banned_by=ban.banned_by,
        reason=ban.reason,
        created_at=ban.created_at,
        expires_at=ban.expires_at,
    )


@router.post("/block", status_code=201)
async def block(
    body: BlockCreate, me: CurrentUser, session: SessionDep, state: StateDep
) -> BlockPublic:
    created = await service.block_user(
        session,
        state.broker,
        user_id=me.id,
        target_id=body.user_id,
        duration_seconds=body.duration_seconds,
        now=state.clock(),
    )
    return _block(created)


@router.get("/block")
async def list_blocks(me: CurrentUser, session: SessionDep, state: StateDep) -> list[BlockPublic]:
    blocks = await service.list_blocks(session, user_id=me.id, now=state.clock())
    return [_block(b) for b in blocks]


@router.delete("/block/{user_id}", status_code=204)
async def unblock(
    user_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await service.unblock_user(
        session, state.broker, user_id=me.id, target_id=user_id, now=state.clock()
    )
    return Response(status_code=204)


@router.post("/admin/bans", status_code=201)
async def ban(body: BanCreate, me: CurrentUser, session: SessionDep, state: StateDep) -> BanPublic:
    check_admin(me)
    created = await service.ban_user(
        session,
        state.broker,
        admin_id=me.id,
        user_id=body.user_id,
        duration_seconds=body.duration_seconds,
        reason=body.reason,
        now=state.clock(),
    )
    return _ban(created)


@router.get("/admin/bans")
async def list_bans(me: CurrentUser, session: SessionDep, state: StateDep) -> list[BanPublic]:
    check_admin(me)
    return [_ban(b) for b in await service.list_bans(session, now=state.clock())]


@router.delete("/admin/bans/{user_id}", status_code=204)
async def unban(user_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep) -> Response:
    check_admin(me)
    await service.unban_user(
        session, state.broker, user_id=user_id, admin_id=me.id, now=state.clock()
    )
    return Response(status_code=204)
