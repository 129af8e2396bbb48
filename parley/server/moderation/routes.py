"""HTTP routes for blocks (any user) and bans (admins)."""

from __future__ import annotations

from fastapi import APIRouter

from parley.server.db.models import Ban, Block
from parley.server.deps import NO_CONTENT, AdminContextDep, ContextDep, IdPath, check_admin
from parley.server.moderation import service
from parley.server.moderation.schemas import BanCreate, BanPublic, BlockCreate, BlockPublic

router = APIRouter(prefix="/service/api", tags=["moderation"])


def _block(block: Block) -> BlockPublic:
    return BlockPublic(
        user_id=block.blocked_id, created_at=block.created_at, expires_at=block.expires_at
    )


def _ban(ban: Ban) -> BanPublic:
    return BanPublic.model_validate(ban, from_attributes=True)


@router.post("/block", status_code=201)
async def block(body: BlockCreate, ctx: ContextDep) -> BlockPublic:
    created = await service.block_user(
        ctx.session,
        ctx.broker,
        ctx.actor,
        target_id=body.user_id,
        duration_seconds=body.duration_seconds,
    )
    return _block(created)


@router.get("/block")
async def list_blocks(ctx: ContextDep) -> list[BlockPublic]:
    blocks = await service.list_blocks(ctx.session, ctx.actor)
    return [_block(b) for b in blocks]


@router.delete("/block/{user_id}", **NO_CONTENT)
async def unblock(user_id: IdPath, ctx: ContextDep) -> None:
    await service.unblock_user(ctx.session, ctx.broker, ctx.actor, target_id=user_id)


@router.post("/admin/bans", status_code=201)
async def ban(body: BanCreate, ctx: ContextDep) -> BanPublic:
    check_admin(ctx.me)
    created = await service.ban_user(
        ctx.session,
        ctx.broker,
        ctx.actor,
        user_id=body.user_id,
        duration_seconds=body.duration_seconds,
        reason=body.reason,
    )
    return _ban(created)


@router.get("/admin/bans")
async def list_bans(ctx: AdminContextDep) -> list[BanPublic]:
    return [_ban(b) for b in await service.list_bans(ctx.session, now=ctx.now())]


@router.delete("/admin/bans/{user_id}", **NO_CONTENT)
async def unban(user_id: IdPath, ctx: ContextDep) -> None:
    check_admin(ctx.me)
    await service.unban_user(
        ctx.session, ctx.broker, user_id=user_id, admin_id=ctx.user_id, now=ctx.now()
    )
